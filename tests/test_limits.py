"""The cost limits of one request (docs/limits.md), each over a real HTTP server on both
backends: the measured attacks now end quickly with HTTP 400 (or 503 for the time limit) and
a code of their own, and ordinary queries still answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from fieldsync.api.limits import Limits
from fieldsync.demo import DemoInfo, install_demo
from fieldsync.storage.database import is_sqlite, read_snapshot, statement_deadline
from tests.conftest import LiveServer

LIMITS = Limits()
BIG_SURVEY = "61sgabq_CO_AcmeAg_FS_demo_1a2b3c4_240610_140200"  # 2,500 images
SYNC_IMAGES = (
    "sync_images(survey_sentera_id: $s, content_hashes: []) "
    "{ upserted { sentera_id content_hash created_by { first_name } } }"
)


@pytest.fixture
def demo(engine: Engine) -> DemoInfo:
    return install_demo(engine)


@pytest.fixture
def token(demo: DemoInfo) -> str:
    assert demo.token is not None
    return demo.token


@pytest.fixture
def limited_server(engine: Engine, database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Starts live servers with some settings changed (Settings field names)."""
    servers: list[LiveServer] = []

    def start(**settings: Any) -> LiveServer:
        server = LiveServer(engine, database_url, max_body_bytes=32 * 1024 * 1024, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def refused(response: httpx.Response, code: str, status: int = 400) -> str:
    """The message of the `code` error of a request refused as a whole (other limits the
    same request exceeds are reported beside it)."""
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert "data" not in body
    messages = {error["extensions"]["code"]: error["message"] for error in body["errors"]}
    assert code in messages, body
    message: str = messages[code]
    return message


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def nested_survey_images(levels: int, page_size: int | None = None) -> str:
    """survey → images → results → survey → images … (the measured 283-byte attack)."""
    images = "images" if page_size is None else f"images(pagination: {{page_size: {page_size}}})"
    inner = "sentera_id"
    for _ in range(levels):
        inner = f"{images} {{ results {{ survey {{ {inner} }} }} }}"
    return f'{{ survey(sentera_id: "{BIG_SURVEY}") {{ {inner} }} }}'


# -- the document --------------------------------------------------------------------------


def test_nested_query_is_refused_before_it_runs(live_server: LiveServer, token: str) -> None:
    deep = nested_survey_images(8)
    assert len(deep) < 400
    response, seconds = timed(lambda: live_server.post(deep, token=token))
    message = refused(response, "QUERY_TOO_DEEP")
    assert f"more than {LIMITS.max_depth} levels" in message
    assert "FIELDSYNC_MAX_QUERY_DEPTH" in message
    assert seconds < 5

    # Within the depth limit, default pages of 100 multiply: 100^4 images estimated.
    message = refused(live_server.post(nested_survey_images(4), token=token), "QUERY_TOO_COSTLY")
    assert "FIELDSYNC_MAX_QUERY_COST" in message and f"{LIMITS.max_cost:,}" in message


def test_small_pages_keep_a_nested_query_cheap(live_server: LiveServer, token: str) -> None:
    response = live_server.post(nested_survey_images(4, page_size=1), token=token)
    assert response.status_code == 200, response.text[:300]
    assert "errors" not in response.json()


def test_aliases_are_limited(live_server: LiveServer, token: str) -> None:
    many_me = "{" + " ".join(f"a{i}: me {{ sentera_id }}" for i in range(10_000)) + "}"
    response, seconds = timed(lambda: live_server.post(many_me, token=token))
    message = refused(response, "TOO_MANY_ALIASES")
    assert "10,000" in message and f"limit of {LIMITS.max_aliases}" in message
    assert seconds < 5

    syncs = "query($s: ID!) {" + " ".join(f"a{i}: {SYNC_IMAGES}" for i in range(1000)) + "}"
    response, seconds = timed(
        lambda: live_server.post(syncs, variables={"s": BIG_SURVEY}, token=token)
    )
    refused(response, "TOO_MANY_ALIASES")
    assert seconds < 5


def test_repeated_fields_count_with_fragments_expanded(live_server: LiveServer, token: str) -> None:
    repeated = "{" + " me { sentera_id }" * 2000 + "}"
    message = refused(live_server.post(repeated, token=token), "TOO_MANY_FIELDS")
    assert f"limit of {LIMITS.max_fields:,}" in message

    # 12 fragments, each spreading the previous one twice: 2^12 fields from a short text.
    fragments = ["fragment F0 on User { sentera_id }"] + [
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 13)
    ]
    doubling = "{ me { ...F12 } } " + " ".join(fragments)
    refused(live_server.post(doubling, token=token), "TOO_MANY_FIELDS")


def test_sync_page_sizes_count_in_the_cost(live_server: LiveServer, token: str) -> None:
    # 2,000 mosaics a page, each with 1,000 images: two billion values by estimate.
    query = (
        "query($s: ID!) { sync_mosaics(survey_sentera_id: $s, content_hashes: []) "
        "{ upserted { ... on Mosaic { images(pagination: {page_size: 1000}) "
        "{ results { sentera_id } } } } } }"
    )
    refused(live_server.post(query, {"s": BIG_SURVEY}, token), "QUERY_TOO_COSTLY")


def test_ordinary_and_introspection_queries_pass(live_server: LiveServer, token: str) -> None:
    queries = [
        "query($s: ID!) { " + SYNC_IMAGES + " }",
        "query($s: ID!) { sync_mosaics(survey_sentera_id: $s, content_hashes: []) "
        "{ remaining_count upserted { sentera_id content_hash ... on Mosaic { name "
        "images { total_count } cogs { status error } files { filename } } } } }",
        "query($s: ID!) { survey(sentera_id: $s) { name field { name } "
        "images(pagination: {page: 2, page_size: 2}) { total_count results { filename } } "
        "mosaics { results { name cogs { status } } } } }",
        get_introspection_query(descriptions=True),
    ]
    for query in queries:
        response = live_server.post(query, {"s": BIG_SURVEY}, token)
        assert response.status_code == 200, response.text[:300]
        assert "errors" not in response.json()


def test_huge_document_is_refused_cheaply(live_server: LiveServer, token: str) -> None:
    huge = "{ me { " + "sentera_id " * 2_000_000 + "} }"  # 22 MB, two million tokens
    response, seconds = timed(lambda: live_server.post(huge, token=token))
    message = refused(response, "QUERY_TOO_LARGE")
    assert f"{LIMITS.max_tokens:,} tokens" in message and "FIELDSYNC_MAX_QUERY_TOKENS" in message
    assert seconds < 15


# -- the arguments -------------------------------------------------------------------------


def test_hashes_are_limited_per_request(live_server: LiveServer, token: str) -> None:
    query = (
        "query($s: ID!, $h: [String!]!) { a: sync_images(survey_sentera_id: $s, "
        "content_hashes: $h) { remaining_count } b: sync_cogs(survey_sentera_id: $s, "
        "content_hashes: $h) { remaining_count } }"
    )
    hashes = ["AAAAAAAAAAAAAAAA"] * 100_001
    response, seconds = timed(
        lambda: live_server.post(query, {"s": BIG_SURVEY, "h": hashes}, token)
    )
    message = refused(response, "TOO_MANY_HASHES")
    assert "200,002" in message and f"{LIMITS.max_hashes:,}" in message
    assert seconds < 10

    million = ["AAAAAAAAAAAAAAAA"] * 1_000_000
    response, seconds = timed(
        lambda: live_server.post(query, {"s": BIG_SURVEY, "h": million}, token)
    )
    refused(response, "TOO_MANY_HASHES")
    assert seconds < 20


def test_inline_hashes_count_too(limited_server: Callable[..., LiveServer], token: str) -> None:
    server = limited_server(max_hashes=3)
    inline = '"AAAAAAAAAAAAAAAA"'
    query = (
        "query($h: String!) { a: sync_images(survey_sentera_id: "
        f'"{BIG_SURVEY}", content_hashes: [{inline}, {inline}, $h]) {{ remaining_count }} '
        "...More } fragment More on Query { sync_cogs(survey_sentera_id: "
        f'"{BIG_SURVEY}", content_hashes: [{inline}]) {{ remaining_count }} }}'
    )
    message = refused(server.post(query, {"h": "AAAAAAAAAAAAAAAA"}, token), "TOO_MANY_HASHES")
    assert "4" in message and "limit of 3" in message
    fewer = query.replace(f"[{inline}]", "[]")
    assert server.post(fewer, {"h": "AAAAAAAAAAAAAAAA"}, token).status_code == 200


def test_owners_are_limited(live_server: LiveServer, token: str) -> None:
    query = (
        "query($o: [FileOwnerInput!]!) { sync_files(owners: $o, content_hashes: []) "
        "{ remaining_count failed { key } } }"
    )

    def owners(count: int) -> list[dict[str, str]]:
        return [{"owner_type": "SURVEY", "sentera_id": f"{i:07d}_CO_x"} for i in range(count)]

    message = refused(live_server.post(query, {"o": owners(70_000)}, token), "TOO_MANY_OWNERS")
    assert "70,000" in message and f"{LIMITS.max_owners:,}" in message
    response = live_server.post(query, {"o": owners(LIMITS.max_owners)}, token)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["data"]["sync_files"]["failed"]) == LIMITS.max_owners


# -- the time limit ------------------------------------------------------------------------


def heavy_query(aliases: int = 90) -> str:
    """Many full sync pages: within the document limits, seconds of work on the demo."""
    return "query($s: ID!) {" + " ".join(f"a{i}: {SYNC_IMAGES}" for i in range(aliases)) + "}"


def test_request_time_limit_stops_the_work(
    limited_server: Callable[..., LiveServer], token: str
) -> None:
    server = limited_server(request_timeout=0.3)
    response, seconds = timed(lambda: server.post(heavy_query(), {"s": BIG_SURVEY}, token))
    message = refused(response, "TIMEOUT", status=503)
    assert "limit of 0.3 s" in message and "FIELDSYNC_REQUEST_TIMEOUT" in message
    assert seconds < 3
    me = server.post("{ me { first_name } }", token=token)
    assert me.json() == {"data": {"me": {"first_name": "Jordan"}}}


def test_database_statements_stop_at_the_deadline(engine: Engine) -> None:
    if is_sqlite(engine):
        endless = (
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
        )
    else:
        endless = "SELECT pg_sleep(30)"
    deadline = time.monotonic() + 0.3
    started = time.monotonic()
    with (
        pytest.raises(OperationalError),
        read_snapshot(engine) as conn,
        statement_deadline(conn, 0.3, lambda: time.monotonic() >= deadline),
    ):
        conn.execute(text(endless))
    assert time.monotonic() - started < 5
    # The pooled connection runs the next statement without a deadline.
    with read_snapshot(engine) as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_the_statement_deadline_is_set_in_the_snapshot(engine: Engine) -> None:
    """PostgreSQL: the timeout, sent with the BEGIN, holds for the snapshot's transaction
    only, which is still repeatable read and read only."""
    if is_sqlite(engine):
        pytest.skip("SQLite stops statements by a progress handler, tested above")
    with read_snapshot(engine) as conn, statement_deadline(conn, 12.5, lambda: False):
        settings = [
            conn.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("statement_timeout", "transaction_isolation", "transaction_read_only")
        ]
    assert settings == ["12500ms", "repeatable read", "on"]
    with read_snapshot(engine) as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"


def test_client_disconnect_cancels_the_work(
    limited_server: Callable[..., LiveServer], token: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = limited_server(request_timeout=120)
    query = heavy_query()
    full, full_seconds = timed(lambda: server.post(query, {"s": BIG_SURVEY}, token))
    assert full.status_code == 200
    with caplog.at_level(logging.INFO, logger="fieldsync.api"):
        with pytest.raises(httpx.TimeoutException):
            server.http.post(
                server.url,
                json={"query": query, "variables": {"s": BIG_SURVEY}},
                headers={"Authorization": f"Bearer {token}"},
                timeout=0.3,
            )
        left = time.monotonic()
        while "client disconnected" not in caplog.text and time.monotonic() - left < 30:
            time.sleep(0.05)
        stopped_after = time.monotonic() - left
    assert "client disconnected" in caplog.text
    assert stopped_after < max(1.0, full_seconds / 2), (stopped_after, full_seconds)


# -- the answer ----------------------------------------------------------------------------


def test_response_size_is_bounded(limited_server: Callable[..., LiveServer], token: str) -> None:
    server = limited_server(max_response_bytes=4096)
    query = "query($s: ID!) { " + SYNC_IMAGES + " }"
    message = refused(server.post(query, {"s": BIG_SURVEY}, token), "RESPONSE_TOO_LARGE")
    assert "limit of 4,096 bytes" in message and "FIELDSYNC_MAX_RESPONSE_BYTES" in message
    small = server.post("{ me { first_name } }", token=token)
    assert small.status_code == 200


# -- introspection -------------------------------------------------------------------------


def test_introspection_can_be_turned_off(
    live_server: LiveServer, limited_server: Callable[..., LiveServer], token: str
) -> None:
    schema_query = "{ __schema { queryType { name } } }"
    type_query = '{ __type(name: "Image") { name } }'
    on = live_server.post(schema_query, token=token)
    assert on.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}

    server = limited_server(introspection=False)
    for query in (schema_query, type_query, get_introspection_query()):
        message = refused(server.post(query, token=token), "GRAPHQL_VALIDATION_FAILED")
        assert "introspection has been disabled" in message
    typename = server.post("{ __typename me { __typename first_name } }", token=token)
    assert typename.json()["data"] == {
        "__typename": "Query",
        "me": {"__typename": "User", "first_name": "Jordan"},
    }
