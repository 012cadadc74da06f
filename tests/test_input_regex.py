"""Input patterns match the whole string: a trailing newline makes a value malformed.

Python's `$` also matches just before a final newline, so `^…$` accepted "AAAAAAAAAAAAAAAA\\n"
as a content hash and a sentera_id followed by a newline as an id; `\\d` accepts digits of
every script. Each input pattern is checked here with such a value.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Engine

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.errors import InvalidArgumentError
from fieldsync.hashing import is_well_formed, parse_client_hashes
from fieldsync.ids import SENTERA_ID_RE, type_code_of
from fieldsync.tokens import create_token, parse_duration
from tests.worlds import World, build_world, sid

HASH = "AAAAAAAAAAAAAAAA"

SYNC_IMAGES = """
query($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count upserted { sentera_id content_hash } failed { key code details }
  }
}
"""


def run(engine: Engine, token: str, query: str, **variables: Any) -> dict[str, Any]:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    response = executor.run(token, GraphQLRequest(query, variables))
    assert response.status == 200, response.body
    return response.body


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def token(engine: Engine, world: World) -> str:
    return create_token(engine, world.user)


# -- content hashes ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00"])
def test_a_hash_with_anything_after_it_is_malformed(suffix: str) -> None:
    assert is_well_formed(HASH)
    assert not is_well_formed(HASH + suffix)
    # Alone (per-hash check) and among well-formed ones (the joined fast path).
    assert parse_client_hashes([HASH + suffix]).malformed == [HASH + suffix]
    mixed = parse_client_hashes(["BBBBBBBBBBBBBBBB", HASH + suffix])
    assert mixed.malformed == [HASH + suffix] and len(mixed.raw) == 1


def test_the_joined_fast_path_rejects_a_final_newline() -> None:
    """Sixteen characters each on average, the last one ending in a newline."""
    hashes = ["BBBBBBBBBBBBBBBB", "AAAAAAAAAAAAAAA\n"]
    parsed = parse_client_hashes(hashes)
    assert parsed.malformed == ["AAAAAAAAAAAAAAA\n"] and len(parsed.raw) == 1


@pytest.mark.parametrize(
    "hashes",
    [
        ["AAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBB"],  # 15 + 17 characters: 32 of the alphabet
        ["AAAAAAAAAAAAAA==", "BBBBBBBBBBBBBBBB"],  # padding inside the joined text
        ["BBBBBBBBBBBBBBBB", "AAAAAAAAAAAAAA=="],  # padding at its end
        ["AAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCC="],
        ["AAAAAAAAAAAAAAA-", "AAAAAAAAAAAAAAA_", "BBBBBBBBBBBBBBBB"],  # URL-safe alphabet
        ["AAAAAAAAAAAAAAAé", "BBBBBBBBBBBBBBBB"],  # outside ASCII
        ["AAAA AAAAAAAAAAA", "BBBBBBBBBBBBBBBB"],
        ["", "BBBBBBBBBBBBBBBB", "B" * 32, "BBBBBBBBBBBBBBBB", ""],  # duplicates count once
        ["abcdefghijklmnop", "ABCDEFGHIJKLMNOP", "abcdefghijklmnop", "0123456789+/+/+/"],
    ],
)
def test_hashes_decoded_together_are_checked_one_by_one(hashes: list[str]) -> None:
    """Whether the hashes are decoded in one call or one by one, each string is judged alone:
    the same decoded values and the same malformed strings, in first-seen order."""
    distinct = list(dict.fromkeys(hashes))
    expected_raw = [base64.b64decode(text) for text in distinct if is_well_formed(text)]
    parsed = parse_client_hashes(hashes)
    assert parsed.raw == expected_raw
    assert parsed.malformed == [text for text in distinct if not is_well_formed(text)]
    assert all(value in parsed.held for value in expected_raw)
    assert base64.b64decode("BBBBBBBBBBBBBBBB") not in parse_client_hashes([]).held


def test_sync_reports_a_held_hash_with_a_newline_as_invalid(
    engine: Engine, world: World, token: str
) -> None:
    """The client's hash of a real image, plus a newline: `invalid_content_hash`, and the
    image is sent again because the client does not hold it in a valid form."""
    first = run(engine, token, SYNC_IMAGES, survey=world.survey, hashes=[])
    held = {i["sentera_id"]: i["content_hash"] for i in first["data"]["sync_images"]["upserted"]}
    bad = held[world.image] + "\n"
    others = [h for s, h in held.items() if s != world.image]
    body = run(engine, token, SYNC_IMAGES, survey=world.survey, hashes=[*others, bad])
    page = body["data"]["sync_images"]
    assert [i["sentera_id"] for i in page["upserted"]] == [world.image]
    assert page["failed"] == [
        {
            "key": "invalid_content_hash",
            "code": "INVALID_CONTENT_HASH",
            "details": {"content_hash": bad},
        }
    ]


# -- sentera_ids -----------------------------------------------------------------------------


def test_an_id_with_a_trailing_newline_is_malformed() -> None:
    good = sid("CO")
    assert type_code_of(good) is not None
    for bad in (good + "\n", good + "\r\n", "\n" + good, good.replace("0", "\u0660")):
        assert type_code_of(bad) is None, repr(bad)
        assert SENTERA_ID_RE.match(bad) is None, repr(bad)


def test_sync_argument_with_a_trailing_newline_is_not_found(
    engine: Engine, world: World, token: str
) -> None:
    body = run(engine, token, SYNC_IMAGES, survey=world.survey + "\n", hashes=[])
    assert body["data"] == {"sync_images": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    files = run(
        engine,
        token,
        "query($o: [FileOwnerInput!]!) { sync_files(owners: $o, content_hashes: []) "
        "{ failed { key details } } }",
        o=[{"owner_type": "SURVEY", "sentera_id": world.survey + "\n"}],
    )
    assert files["data"]["sync_files"]["failed"] == [
        {
            "key": "invalid_object",
            "details": {"owner_type": "SURVEY", "sentera_id": world.survey + "\n"},
        }
    ]


def test_changeset_rejects_ids_with_a_trailing_newline(engine: Engine, world: World) -> None:
    """Neither a new item's id nor a reference may end in a newline (nothing is written)."""
    new_org = sid("OR") + "\n"
    with pytest.raises(ChangesetError) as rejected:
        apply_changeset(
            engine,
            {
                "actor_sentera_id": world.user,
                "upsert": {
                    "organizations": [{"sentera_id": new_org, "name": "Newline"}],
                    "surveys": [{"sentera_id": sid("CO"), "field_sentera_id": world.field + "\n"}],
                },
            },
        )
    messages = {issue.path: issue.message for issue in rejected.value.issues}
    assert "is not a well-formed sentera_id" in messages["upsert.organizations[0].sentera_id"]
    assert "is not a well-formed sentera_id" in messages["upsert.surveys[0].field_sentera_id"]


# -- token durations ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["8h", " 8h ", "8 h", "\t30d"])
def test_durations_accept_spaces_around_the_parts(text: str) -> None:
    assert parse_duration(text).total_seconds() in (8 * 3600, 30 * 86400)


@pytest.mark.parametrize(
    "text", ["8h\n", "8h\r\n", "\n8h", "\u0668h", "8h8h", "1" * 5000 + "d", "999999999999w"]
)
def test_malformed_or_huge_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_duration(text)


def test_token_create_refuses_a_duration_with_a_newline(engine: Engine, world: World) -> None:
    url = engine.url.render_as_string(hide_password=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    result = subprocess.run(
        [sys.executable, "-m", "fieldsync", "token", "create", world.user, "--expires-in", "8h\n"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "FIELDSYNC_DATABASE_URL": url},
    )
    assert result.returncode != 0 and result.stdout == ""
    assert "is not a duration" in result.stderr and "Traceback" not in result.stderr
