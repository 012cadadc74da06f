"""The demo world of `fieldsync serve --demo`: its shape, idempotence, and that the `curl`
example its banner prints really works against a running server."""

from __future__ import annotations

import shlex
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from fieldsync.changeset import apply_changeset
from fieldsync.demo import (
    SYNC_IMAGES_QUERY,
    DemoInfo,
    demo_world,
    install_demo,
    sync_images_payload,
)
from fieldsync.hashing import encode_hash
from fieldsync.ids import SENTERA_ID_RE, type_code_of
from fieldsync.model.kinds import KIND_BY_CHANGESET_KEY
from fieldsync.storage import tables as t
from tests.conftest import LiveServer

EXPECTED_COUNTS = {
    "organizations": 4,
    "users": 4,
    "fields": 7,
    "surveys": 12,
    "images": 3922,
    "mosaics": 35,
    "cogs": 35,
    "feature_sets": 16,
    "logos": 1,
    "files": 88,
    "flight_tasks": 17,
}
ME = "query { me { sentera_id } }"


def live_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            key: conn.execute(
                select(func.count())
                .select_from(kind.table)
                .where(kind.table.c.deleted_at.is_(None))
            ).scalar_one()
            for key, kind in KIND_BY_CHANGESET_KEY.items()
        }


def table_sizes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }


def survey_images(engine: Engine, survey_sentera_id: str) -> dict[str, str]:
    """sentera_id -> content hash of the live images of a survey, read from the database."""
    images, surveys = t.images, t.surveys
    with engine.connect() as conn:
        rows = conn.execute(
            select(images.c.sentera_id, images.c.content_hash)
            .join(surveys, surveys.c.id == images.c.survey_id)
            .where(surveys.c.sentera_id == survey_sentera_id, images.c.deleted_at.is_(None))
        )
        return {row.sentera_id: encode_hash(row.content_hash) for row in rows}


def parse_curl(banner: str) -> tuple[str, dict[str, str], str]:
    """The URL, headers and body of the `curl` command printed in a banner."""
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("curl "))
    command: list[str] = []
    for line in lines[start:]:
        command.append(line.removesuffix("\\"))
        if not line.endswith("\\"):
            break
    words = shlex.split(" ".join(command))
    assert words[0] == "curl"
    url, body, headers = "", "", {}
    rest = iter(words[1:])
    for word in rest:
        if word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest)
        elif not word.startswith("-"):
            url = word
    return url, headers, body


def sync_images(server: LiveServer, token: str, survey: str, held: list[str]) -> dict[str, Any]:
    response = server.post(SYNC_IMAGES_QUERY, sync_images_payload(survey, held)["variables"], token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    page: dict[str, Any] = body["data"]["sync_images"]
    return page


def client_loop(
    server: LiveServer, token: str, survey: str, held: dict[str, str]
) -> tuple[dict[str, str], int]:
    """Apply pages until remaining_count is 0; return what the client holds and the call count."""
    calls = 0
    while True:
        page = sync_images(server, token, survey, sorted(held.values()))
        calls += 1
        assert page["failed"] is None
        gone = {entry["content_hash"] for entry in page["deleted"]}
        held = {sid: h for sid, h in held.items() if h not in gone}
        for item in page["upserted"]:
            held[item["sentera_id"]] = item["content_hash"]
        if page["remaining_count"] == 0:
            return held, calls
        assert calls < 20, "the client loop does not converge"


# -- the world itself (no database) -------------------------------------------------------------


def test_world_is_deterministic_and_well_formed() -> None:
    world = demo_world()
    assert demo_world.__wrapped__() == world  # same seed, same ids, same values
    assert world.counts == EXPECTED_COUNTS
    upsert = world.changeset["upsert"]
    ids = [record["sentera_id"] for records in upsert.values() for record in records]
    assert len(ids) == len(set(ids))
    for key, records in upsert.items():
        for record in records:
            assert SENTERA_ID_RE.match(record["sentera_id"]), record["sentera_id"]
            assert type_code_of(record["sentera_id"]) == KIND_BY_CHANGESET_KEY[key].code

    orgs = {o["sentera_id"]: o for o in upsert["organizations"]}
    roots = [o for o in orgs.values() if o["parent_sentera_id"] is None]
    assert [r["sentera_id"] for r in roots] == [world.organization_sentera_id]
    depth = {
        sid: 1 + (orgs[o["parent_sentera_id"]]["parent_sentera_id"] is not None)
        for sid, o in orgs.items()
        if o["parent_sentera_id"]
    }
    assert sorted(depth.values()) == [1, 1, 2]  # two children, one grandchild

    images_per_survey = Counter(i["survey_sentera_id"] for i in upsert["images"])
    assert images_per_survey.most_common(1)[0] == (world.survey_sentera_id, 2500)
    assert world.survey_image_count == 2500  # more than two pages of sync_images (1,000)
    image_survey = {i["sentera_id"]: i["survey_sentera_id"] for i in upsert["images"]}
    for mosaic in upsert["mosaics"]:
        assert mosaic["image_sentera_ids"]
        assert {image_survey[i] for i in mosaic["image_sentera_ids"]} == {
            mosaic["survey_sentera_id"]
        }
    assert len({m["mosaic_type"] for m in upsert["mosaics"]}) == 8

    cog_status = Counter(c["status"] for c in upsert["cogs"])
    assert {"SUCCESS", "FAIL", "PENDING"} <= cog_status.keys()
    assert all(c["error"] for c in upsert["cogs"] if c["status"] == "FAIL")
    owner_types = {f["owner_type"] for f in upsert["files"]}
    assert owner_types == {"SURVEY", "MOSAIC", "FIELD", "FEATURE_SET", "LOGO"}
    task_orgs = {task["organization_sentera_id"] for task in upsert["flight_tasks"]}
    assert task_orgs == set(orgs)
    assert len({task["status"] for task in upsert["flight_tasks"]}) >= 6


# -- installing ---------------------------------------------------------------------------------


def test_install_fills_an_empty_database(engine: Engine) -> None:
    info = install_demo(engine)
    assert info.created
    assert info.token is not None and info.token.startswith("fst_")
    assert dict(info.counts) == EXPECTED_COUNTS
    assert live_counts(engine) == EXPECTED_COUNTS
    assert len(survey_images(engine, info.survey_sentera_id)) == info.survey_image_count == 2500
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.memberships)).scalar_one() == 4
        links = conn.execute(select(func.count()).select_from(t.mosaic_images)).scalar_one()
    assert links == sum(
        len(m["image_sentera_ids"]) for m in demo_world().changeset["upsert"]["mosaics"]
    )
    banner = info.banner("http://127.0.0.1:8000/graphql")
    assert "loaded 4 organizations" in banner
    assert info.token in banner
    assert "Headers tab" in banner


def test_second_install_creates_nothing_and_mints_a_working_token(
    engine: Engine, live_server: LiveServer
) -> None:
    first = install_demo(engine)
    before = table_sizes(engine)
    second = install_demo(engine)
    after = table_sizes(engine)
    assert not second.created
    assert second.counts == {}
    assert second.token is not None and second.token != first.token
    assert after.pop("api_tokens") == before.pop("api_tokens") + 1
    assert after == before
    assert "already holds the demo data" in second.banner(live_server.url)
    for token in (first.token, second.token):
        response = live_server.post(ME, token=token)
        assert response.status_code == 200
        assert response.json()["data"]["me"]["sentera_id"] == first.user_sentera_id


def test_database_with_other_data_is_left_alone(engine: Engine) -> None:
    org = "other00_OR_Other_CV_prod_abc123_240101_000000"
    user = "other00_US_Other_CV_prod_abc123_240101_000000"
    apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [{"sentera_id": org, "name": "Other Co"}],
                "users": [
                    {"sentera_id": user, "email": "x@other.test", "organization_sentera_ids": [org]}
                ],
            }
        },
    )
    before = table_sizes(engine)
    info = install_demo(engine)
    assert not info.created
    assert info.token is None
    assert table_sizes(engine) == before
    banner = info.banner("http://127.0.0.1:8000/graphql")
    assert "no demo token was created" in banner
    assert "fieldsync token create" in banner
    assert info.curl("http://127.0.0.1:8000/graphql") is None


# -- the printed example against a real server ---------------------------------------------------


def test_banner_curl_example_works(engine: Engine, live_server: LiveServer) -> None:
    info = install_demo(engine)
    url, headers, body = parse_curl(info.banner(live_server.url))
    assert url == live_server.url
    assert headers["Content-Type"] == "application/json"
    response = httpx.post(url, content=body.encode("utf-8"), headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    page = response.json()["data"]["sync_images"]
    expected = survey_images(engine, info.survey_sentera_id)
    assert page["remaining_count"] == 1500  # the first of three pages
    assert page["deleted"] == []
    assert page["failed"] is None
    assert len(page["upserted"]) == 1000
    assert {
        i["sentera_id"]: i["content_hash"] for i in page["upserted"]
    }.items() <= expected.items()
    first = page["upserted"][0]
    assert first["filename"].endswith("-FW00001.jpg")
    assert first["captured_at"].endswith("Z")
    # Without the header the same request is refused.
    del headers["Authorization"]
    refused = httpx.post(url, content=body.encode("utf-8"), headers=headers, timeout=60)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_client_loop_converges_to_the_survey_images(
    engine: Engine, live_server: LiveServer
) -> None:
    info = install_demo(engine)
    assert isinstance(info, DemoInfo) and info.token is not None
    survey = info.survey_sentera_id
    held, calls = client_loop(live_server, info.token, survey, {})
    assert held == survey_images(engine, survey)
    assert calls == 3  # 2,500 images: pages of 1,000, 1,000 and 500

    # Nothing changed: one more call returns nothing.
    page = sync_images(live_server, info.token, survey, sorted(held.values()))
    assert page == {"remaining_count": 0, "upserted": [], "deleted": [], "failed": None}

    # The server changes: two images deleted, one moved, one edited.
    upsert = demo_world().changeset["upsert"]
    mine = [i["sentera_id"] for i in upsert["images"] if i["survey_sentera_id"] == survey]
    other_survey = next(s["sentera_id"] for s in upsert["surveys"] if s["sentera_id"] != survey)
    # A mosaic may link only images of its own survey: unlink the image that moves.
    unlinked = [
        {
            "sentera_id": m["sentera_id"],
            "image_sentera_ids": [i for i in m["image_sentera_ids"] if i != mine[2]],
        }
        for m in upsert["mosaics"]
        if mine[2] in m["image_sentera_ids"]
    ]
    assert unlinked
    apply_changeset(
        engine,
        {
            "actor_sentera_id": info.user_sentera_id,
            "upsert": {
                "images": [
                    {"sentera_id": mine[2], "survey_sentera_id": other_survey},
                    {"sentera_id": mine[3], "altitude": 400.0},
                ],
                "mosaics": unlinked,
            },
            "delete": mine[:2],
        },
    )
    old = dict(held)
    page = sync_images(live_server, info.token, survey, sorted(held.values()))
    assert {(d["sentera_id"], d["content_hash"]) for d in page["deleted"]} == {
        (sid, old[sid]) for sid in mine[:3]
    }
    assert [u["sentera_id"] for u in page["upserted"]] == [mine[3]]
    held, _ = client_loop(live_server, info.token, survey, held)
    assert held == survey_images(engine, survey)
    assert len(held) == 2497


@pytest.mark.parametrize("bad", ["not-a-hash"])
def test_malformed_hash_in_the_example_query_is_reported(
    engine: Engine, live_server: LiveServer, bad: str
) -> None:
    info = install_demo(engine)
    assert info.token is not None
    page = sync_images(live_server, info.token, info.survey_sentera_id, [bad])
    assert page["failed"] == [
        {
            "key": "invalid_content_hash",
            "message": page["failed"][0]["message"],
            "details": {"content_hash": bad},
        }
    ]
    assert len(page["upserted"]) == 1000
