"""The HTTP transport, through a real server: GET, POST, GraphiQL, auth, request errors, limits.

Every error is a GraphQL-shaped JSON body with `errors[0].extensions.code`, and none of them
ever carries a traceback.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from fieldsync.changeset import apply_changeset
from fieldsync.hashing import encode_hash
from fieldsync.tokens import create_token, revoke_token
from tests.builder import World, build_world, image_record, sid
from tests.conftest import LiveServer, ServerClient

ME = "{ me { sentera_id last_name } }"
SYNC_IMAGES = """
query SyncImages($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id content_hash }
    deleted { sentera_id content_hash }
    failed { key message details }
  }
}
"""


@pytest.fixture
def world(engine) -> World:
    return build_world(engine)


@pytest.fixture
def token(engine, world: World) -> str:
    return create_token(engine, world.user)


def base_url(server: ServerClient) -> str:
    return server.url.removesuffix("/graphql")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    body: dict[str, Any] = response.json()
    assert body["errors"], body
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert body["errors"][0]["message"], body
    assert "data" not in body or body["data"] is None
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- requests that work --------------------------------------------------------------------


def test_post_and_get_requests(app_server: ServerClient, world: World, token: str) -> None:
    # POST, application/json.
    response = app_server.post(ME, token=token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"me": {"sentera_id": world.user, "last_name": "Lovelace"}}}

    # POST with variables and an operation name picking one of two operations.
    query = SYNC_IMAGES + "\nquery Me { me { sentera_id } }"
    variables = {"survey": world.survey, "hashes": []}
    payload: dict[str, Any] = {
        "query": query,
        "variables": variables,
        "operationName": "SyncImages",
    }
    response = app_server.http.post(app_server.url, json=payload, headers=bearer(token))
    assert response.status_code == 200, response.text
    result = response.json()["data"]["sync_images"]
    assert {item["sentera_id"] for item in result["upserted"]} == {world.image, world.image2}
    assert result["remaining_count"] == 0 and result["deleted"] == [] and result["failed"] is None
    payload["operationName"] = "Me"
    response = app_server.http.post(app_server.url, json=payload, headers=bearer(token))
    assert response.json() == {"data": {"me": {"sentera_id": world.user}}}

    # Variables sent as a JSON string, as some clients do.
    payload = {"query": SYNC_IMAGES, "variables": json.dumps(variables)}
    response = app_server.http.post(app_server.url, json=payload, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["sync_images"] == result

    # POST, application/graphql.
    response = app_server.http.post(
        app_server.url,
        content=ME.encode(),
        headers={**bearer(token), "Content-Type": "application/graphql"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["sentera_id"] == world.user

    # GET with a query string.
    response = app_server.http.get(
        app_server.url,
        params={"query": SYNC_IMAGES, "variables": json.dumps(variables)},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["sync_images"] == result
    response = app_server.http.get(app_server.url, params={"query": ME}, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["data"]["me"]["sentera_id"] == world.user


def test_graphiql_and_healthz(app_server: ServerClient, token: str) -> None:
    # A browser asking for /graphql without a query gets GraphiQL (no token needed).
    response = app_server.http.get(
        app_server.url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "graphiql" in response.text.lower()

    # A program doing the same gets a clear 400.
    assert_error(app_server.http.get(app_server.url, headers=bearer(token)), 400, "BAD_REQUEST")

    response = app_server.http.get(base_url(app_server) + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# -- authentication ------------------------------------------------------------------------


def test_missing_bad_expired_and_revoked_tokens_are_401(
    engine, app_server: ServerClient, world: World, token: str
) -> None:
    # No token, by POST and by GET.
    response = app_server.post(ME)
    body = assert_error(response, 401, "UNAUTHENTICATED")
    assert len(body["errors"]) == 1
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert_error(app_server.http.get(app_server.url, params={"query": ME}), 401, "UNAUTHENTICATED")

    # A header that is not a bearer token.
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Token " + token, token):
        response = app_server.http.post(
            app_server.url, json={"query": ME}, headers={"Authorization": header}
        )
        assert_error(response, 401, "UNAUTHENTICATED")

    # Bad tokens.
    for bad in ("nonsense", "fst_" + "A" * 43, token + "x", token[:-1], token.upper()):
        assert_error(app_server.post(ME, token=bad), 401, "UNAUTHENTICATED")

    # The token is checked before the query is looked at.
    assert_error(app_server.post("{ nope", token="nonsense"), 401, "UNAUTHENTICATED")
    assert_error(app_server.post("{ nope }", token="nonsense"), 401, "UNAUTHENTICATED")

    # The scheme is case-insensitive.
    response = app_server.http.post(
        app_server.url, json={"query": ME}, headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200

    # A revoked token stops working; the user's other tokens do not.
    other = create_token(engine, world.user)
    assert app_server.post(ME, token=token).status_code == 200
    revoke_token(engine, token)
    assert_error(app_server.post(ME, token=token), 401, "UNAUTHENTICATED")
    assert app_server.post(ME, token=other).status_code == 200

    # An expired token stops working; one that is still valid keeps working.
    short = create_token(engine, world.user, timedelta(seconds=1))
    assert app_server.post(ME, token=short).status_code == 200
    long = create_token(engine, world.user, timedelta(hours=8))
    time.sleep(1.2)
    assert_error(app_server.post(ME, token=short), 401, "UNAUTHENTICATED")
    assert app_server.post(ME, token=long).status_code == 200


@pytest.mark.slow
def test_bad_token_is_refused_before_the_query_is_parsed(
    database_url: str, live_server: LiveServer
) -> None:
    """A caller without a valid token cannot make the server parse and validate a large
    document: it is refused first. (Parsing and validating this one takes seconds.)"""
    if not database_url.startswith("sqlite"):
        pytest.skip("the order of checks does not depend on the backend: checked on SQLite")
    rng = random.Random(7)
    literal = " ".join(json.dumps(encode_hash(rng.randbytes(12))) for _ in range(100_000))
    query = (
        f'{{ sync_images(survey_sentera_id: "x", content_hashes: [{literal}]) '
        "{ remaining_count } }"
    )
    bad_token = "fst_not-a-real-token"

    def timed(payload: dict[str, Any]) -> float:
        started = time.monotonic()
        response = live_server.http.post(live_server.url, json=payload, headers=bearer(bad_token))
        elapsed = time.monotonic() - started
        assert_error(response, 401, "UNAUTHENTICATED")
        return elapsed

    # The cost of carrying a body of the same size, which any request pays.
    padding = {"query": ME, "variables": {"pad": "x" * len(query)}}
    baseline = max(timed(padding) for _ in range(2))
    elapsed = timed({"query": query})
    assert elapsed < baseline + 0.6, (
        f"an unauthenticated request kept the server busy for {elapsed:.1f}s "
        f"(a body of the same size takes {baseline:.2f}s)"
    )


# -- bad requests --------------------------------------------------------------------------


def post_raw(server: ServerClient, body: bytes, token: str, **headers: str) -> httpx.Response:
    return server.http.post(
        server.url,
        content=body,
        headers={**bearer(token), "Content-Type": "application/json", **headers},
    )


MALFORMED_BODIES = [b"{", b'{"query": "{ me { sentera_id } }"', b"not json", b"", b"\xff\xfe{}"]
NOT_OBJECTS: list[Any] = [[], [{"query": ME}], "query", 42, None, True]
WITHOUT_QUERY: list[Any] = [
    {},
    {"query": ""},
    {"query": "   "},
    {"query": None},
    {"query": 5},
    {"variables": {}},
]
SYNTAX_ERRORS = [
    "{ me { sentera_id }",
    "query {",
    "{ me(",
    "}",
    "query Q($x: ) { me { sentera_id } }",
]
INVALID_QUERIES = [
    "{ me { nope } }",
    "{ nope }",
    '{ sync_images(survey_sentera_id: "x") { remaining_count } }',
    '{ sync_images(survey_sentera_id: "x", content_hashes: [], bogus: 1) { remaining_count } }',
    "{ sync_images }",
    '{ sync_files(owners: [{owner_type: PLANET, sentera_id: "x"}], content_hashes: []) '
    "{ remaining_count } }",
    '{ sync_images(survey_sentera_id: "x", content_hashes: [1]) { remaining_count } }',
    "mutation { me { sentera_id } }",
]
BAD_VARIABLES: list[dict[str, Any] | None] = [
    {"survey": "x", "hashes": 5},
    {"survey": "x", "hashes": [1, 2]},
    {"survey": "x", "hashes": [None]},
    {"survey": "x", "hashes": {"a": 1}},
    {"survey": None, "hashes": []},
    {"hashes": []},
    {"survey": ["x"], "hashes": []},
    None,
]


def test_bad_requests_are_400(app_server: ServerClient, token: str) -> None:
    for body in MALFORMED_BODIES:
        assert_error(post_raw(app_server, body, token), 400, "BAD_REQUEST")
    for payload in NOT_OBJECTS + WITHOUT_QUERY:
        response = post_raw(app_server, json.dumps(payload).encode(), token)
        assert_error(response, 400, "BAD_REQUEST")
    for payload in (
        {"query": ME, "variables": "{not json"},
        {"query": ME, "variables": [1, 2]},
        {"query": ME, "variables": 3},
        {"query": ME, "operationName": 7},
    ):
        response = post_raw(app_server, json.dumps(payload).encode(), token)
        assert_error(response, 400, "BAD_REQUEST")
    response = app_server.http.get(
        app_server.url, params={"query": ME, "variables": "{oops"}, headers=bearer(token)
    )
    assert_error(response, 400, "BAD_REQUEST")


def test_graphql_request_errors_are_400(app_server: ServerClient, token: str) -> None:
    for query in SYNTAX_ERRORS:
        body = assert_error(app_server.post(query, token=token), 400, "GRAPHQL_PARSE_FAILED")
        assert "Syntax Error" in body["errors"][0]["message"]
        assert body["errors"][0]["locations"]
        response = app_server.http.get(
            app_server.url, params={"query": query}, headers=bearer(token)
        )
        assert_error(response, 400, "GRAPHQL_PARSE_FAILED")

    for query in INVALID_QUERIES:
        response = app_server.post(query, token=token)
        body = assert_error(response, 400, "GRAPHQL_VALIDATION_FAILED")
        assert all(e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for e in body["errors"])

    for variables in BAD_VARIABLES:
        response = app_server.post(SYNC_IMAGES, variables, token)
        body = assert_error(response, 400, "BAD_USER_INPUT")
        assert "$" in body["errors"][0]["message"], body

    payload = {"query": ME, "operationName": "Nope"}
    assert_error(post_raw(app_server, json.dumps(payload).encode(), token), 400, "BAD_USER_INPUT")
    two = "query A { me { sentera_id } } query B { me { last_name } }"
    assert_error(app_server.post(two, token=token), 400, "BAD_USER_INPUT")

    # A scope that is not there is an error of the field, not of the request.
    missing = sid("CO")
    response = app_server.post(SYNC_IMAGES, {"survey": missing, "hashes": []}, token)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"sync_images": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert body["errors"][0]["path"] == ["sync_images"]
    assert missing in body["errors"][0]["message"]
    assert "Traceback" not in response.text


# -- limits --------------------------------------------------------------------------------


@pytest.fixture
def small_server(engine, database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(engine, database_url, max_body_bytes=64 * 1024)
    yield server
    server.stop()


def test_body_over_the_limit_is_413(small_server: LiveServer, world: World, token: str) -> None:
    padding = " " * (64 * 1024)
    response = small_server.post(ME + padding, token=token)
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(64 * 1024) in body["errors"][0]["message"]

    # Without a Content-Length (chunked), the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "' + ME.encode() + b'", "pad": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    response = small_server.http.post(
        small_server.url,
        content=chunks(),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    # Just under the limit is fine, and the server still answers afterwards.
    under = ME + " " * (64 * 1024 - 200)
    response = small_server.post(under, token=token)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["sentera_id"] == world.user
    response = small_server.http.get(base_url(small_server) + "/healthz")
    assert response.json() == {"status": "ok"}


@pytest.mark.slow
def test_one_hundred_thousand_hashes(engine, database_url: str, live_server: LiveServer) -> None:
    """A client holding 100,000 hashes (1,000 real ones) gets the right page, inline or not."""
    world = build_world(engine)
    survey = sid("CO")
    images = [sid("IM") for _ in range(1500)]
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "surveys": [{"sentera_id": survey, "field_sentera_id": world.field}],
                "images": [
                    image_record(i, survey, f"IMG_{n:05d}.jpg") for n, i in enumerate(images)
                ],
            },
        },
    )
    token = create_token(engine, world.user)

    def sync(hashes: list[str]) -> dict[str, Any]:
        response = live_server.post(SYNC_IMAGES, {"survey": survey, "hashes": hashes}, token)
        assert response.status_code == 200, response.text[:500]
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]["sync_images"]
        return result

    first = sync([])
    assert first["remaining_count"] == 500
    assert [item["sentera_id"] for item in first["upserted"]] == images[:1000]
    current = {item["sentera_id"]: item["content_hash"] for item in first["upserted"]}
    current.update(
        {
            item["sentera_id"]: item["content_hash"]
            for item in sync(list(current.values()))["upserted"]
        }
    )
    assert set(current) == set(images)

    rng = random.Random(20240601)
    held_ids = set(rng.sample(images, 1000))
    noise = {encode_hash(rng.randbytes(12)) for _ in range(99_000)} - set(current.values())
    while len(noise) < 99_000:
        noise.add(encode_hash(rng.randbytes(12)))
    hashes = [current[i] for i in held_ids] + sorted(noise)
    rng.shuffle(hashes)
    assert len(set(hashes)) == 100_000
    expected = [{"sentera_id": i, "content_hash": current[i]} for i in images if i not in held_ids]

    def check(result: dict[str, Any]) -> None:
        assert result["remaining_count"] == 0
        assert result["deleted"] == []
        assert result["failed"] is None
        assert result["upserted"] == expected

    # As a variable.
    check(sync(hashes))

    # Inline: 100,000 literals in the query text. The list reaches the resolver the same way
    # on both backends, and parsing it is the slow part, so one backend is enough.
    if database_url.startswith("sqlite"):
        literal = " ".join(json.dumps(h) for h in hashes)
        inline = (
            f'{{ sync_images(survey_sentera_id: "{survey}", content_hashes: [{literal}]) '
            "{ remaining_count upserted { sentera_id content_hash } "
            "deleted { sentera_id content_hash } failed { key message details } } }"
        )
        response = live_server.post(inline, token=token)
        assert response.status_code == 200, response.text[:500]
        assert "errors" not in response.json()
        check(response.json()["data"]["sync_images"])

    # Malformed strings among real hashes: each is reported once; the page is the same.
    bad = ["short", "n0VjjgvV44vx2/8", "way-too-long-to-be-a-hash", "!!!!!!!!!!!!!!!!", ""]
    mixed = [current[i] for i in held_ids] + bad + [noise.pop()] + bad
    result = sync(mixed)
    assert result["upserted"] == expected
    assert result["remaining_count"] == 0
    assert [f["details"] for f in result["failed"]] == [{"content_hash": b} for b in bad]
    assert {f["key"] for f in result["failed"]} == {"invalid_content_hash"}
