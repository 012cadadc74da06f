"""Requests an attacker would send: each answered with a clear 4xx, never a traceback or a 500.

Every test here reproduces a probe that once went wrong (a 500 with a traceback in the server
log, or an error that did not say what to do).
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.observability import OPERATION_LABELS
from fieldsync.tokens import create_token
from tests.builder import World, build_world
from tests.conftest import DEFAULT_BODY_LIMIT, InProcessServer, LiveServer

ME = "{ me { sentera_id } }"


@pytest.fixture
def world(engine) -> World:
    return build_world(engine)


@pytest.fixture
def token(engine, world: World) -> str:
    return create_token(engine, world.user)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["extensions"]["code"] == code, error
    return error


def test_a_client_leaving_mid_body_is_no_server_error(
    live_server: LiveServer, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Content-Length promises more than is sent, then the connection closes: the server
    logged `ClientDisconnect` at ERROR with a traceback and counted a 500."""
    address = urlsplit(live_server.url)
    body = json.dumps({"query": ME}).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    with caplog.at_level(logging.INFO):
        with socket.create_connection((address.hostname, address.port)) as client:
            client.sendall(head + body)
        deadline = time.monotonic() + 5
        while not any("before sending the whole body" in r.message for r in caplog.records):
            assert time.monotonic() < deadline, "the server never noticed the client leaving"
            time.sleep(0.05)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert live_server.post(ME, token=token).status_code == 200


def test_a_field_repeated_hundreds_of_times_gets_an_actionable_error(
    app_server: InProcessServer, token: str
) -> None:
    """Under the field limit, graphql-core's comparison budget ran out: "Validation aborted."
    with GRAPHQL_VALIDATION_FAILED, which said nothing about what to change."""
    query = "{ me { " + "sentera_id " * 998 + "} }"
    error = error_of(app_server.post(query, token=token), 400, "TOO_MANY_FIELDS")
    assert "select each field once" in error["message"]


@pytest.mark.parametrize("encoding", ["deflate", "br", "gzip, deflate"])
def test_a_body_compressed_other_than_with_gzip_is_refused(
    app_server: InProcessServer, token: str, encoding: str
) -> None:
    """A compressed body was read as JSON: "The body is not valid JSON: str is not valid UTF-8"."""
    response = post_encoded(
        app_server, token, gzip.compress(json.dumps({"query": ME}).encode()), encoding
    )
    error = error_of(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert f"Content-Encoding '{encoding}'" in error["message"]
    assert "gzip-compressed or uncompressed" in error["message"]


def post_encoded(
    server: InProcessServer, token: str, body: bytes, encoding: str = "gzip"
) -> httpx.Response:
    return server.http.post(
        server.url,
        content=body,
        headers={**bearer(token), "Content-Type": "application/json", "Content-Encoding": encoding},
    )


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip"])
def test_a_gzip_body_is_answered_like_the_plain_one(
    app_server: InProcessServer, token: str, world: World, encoding: str
) -> None:
    payload = json.dumps({"query": ME}).encode()
    response = post_encoded(app_server, token, gzip.compress(payload), encoding)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"me": {"sentera_id": world.user}}}


def test_a_gzip_body_is_bounded_once_decompressed(app_server: InProcessServer, token: str) -> None:
    """Some 30 KiB of gzip that expand past the 32 MiB limit are refused, not expanded."""
    bomb = gzip.compress(b'{"query": "' + b" " * (DEFAULT_BODY_LIMIT + 10) + b'"}')
    assert len(bomb) < DEFAULT_BODY_LIMIT // 100
    error = error_of(post_encoded(app_server, token, bomb), 413, "PAYLOAD_TOO_LARGE")
    assert error["message"] == (
        f"Request body is larger than the limit of {DEFAULT_BODY_LIMIT} bytes once decompressed"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"query": ME}).encode(), "The body is not valid gzip"),
        (gzip.compress(json.dumps({"query": ME}).encode())[:-6], "The gzip body is truncated"),
        (
            gzip.compress(b'{"query": "{ me { sentera_id } }"}') + b"junk",
            "The body goes on after its gzip stream",
        ),
    ],
    ids=["not-gzip", "truncated", "trailing-bytes"],
)
def test_a_broken_gzip_body_gets_a_400(
    app_server: InProcessServer, token: str, body: bytes, message: str
) -> None:
    assert error_of(post_encoded(app_server, token, body), 400, "BAD_REQUEST")["message"] == message


def test_a_form_body_is_told_which_content_types_work(
    app_server: InProcessServer, token: str
) -> None:
    """A multipart body got only "The body is not valid JSON: no digit after sign"."""
    response = app_server.http.post(
        app_server.url,
        content=b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{ me }\r\n--x--\r\n',
        headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=x"},
    )
    error = error_of(response, 400, "BAD_REQUEST")
    assert "'multipart/form-data'" in error["message"]
    assert "application/json" in error["message"]
    assert "application/graphql" in error["message"]


def test_json_sent_with_any_content_type_still_works(
    app_server: InProcessServer, token: str
) -> None:
    """`curl -d` sends application/x-www-form-urlencoded; a JSON body is still read as JSON,
    and only exactly `application/graphql` means the body is the query text."""
    for content_type in (
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/graphql-response+json",
        "application/json; charset=utf-8",
    ):
        response = app_server.http.post(
            app_server.url,
            content=json.dumps({"query": ME}).encode(),
            headers={**bearer(token), "Content-Type": content_type},
        )
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["data"]["me"]["sentera_id"]


@pytest.mark.parametrize("name", [0, False, [], {}])
def test_an_operation_name_that_is_not_a_string_is_refused(
    app_server: InProcessServer, token: str, name: object
) -> None:
    """0, false, [] and {} were silently taken as "no operation name"."""
    response = app_server.http.post(
        app_server.url,
        json={"query": ME, "operationName": name},
        headers=bearer(token),
    )
    error_of(response, 400, "BAD_REQUEST")


def test_requests_without_a_valid_token_claim_no_operation_label(
    app_server: InProcessServer, token: str
) -> None:
    """Each process keeps the first 100 operation names as metric labels; 100 requests with
    made-up names and no token took them all, and every real client's name became `other`."""
    squatters = [f"Squat{uuid.uuid4().hex}" for _ in range(3)]
    for name in squatters:
        query = f"query {name} {{ me {{ sentera_id }} }}"
        assert app_server.post(query).status_code == 401
        assert app_server.post(query, token="fst_not-a-token").status_code == 401
    assert not OPERATION_LABELS.known.intersection(squatters)
    real = f"Real{uuid.uuid4().hex}"
    assert app_server.post(f"query {real} {{ me {{ sentera_id }} }}", token=token).is_success
    metrics = app_server.http.get(app_server.url.removesuffix("/graphql") + "/metrics").text
    assert 'operation="unauthenticated",status="401"' in metrics
    assert not any(name in metrics for name in squatters)
    if len(OPERATION_LABELS.known) < OPERATION_LABELS.limit:
        assert f'operation="{real}"' in metrics


@pytest.mark.parametrize(
    "query",
    [
        "{ me { sentera_i } }",
        "{ organizaton { name } }",
        "{ organizations(paginaton: {page: 1}) { total_count } }",
        "query($p: PaginationInput) { organizations(pagination: $p) { total_count } }",
    ],
)
def test_without_introspection_errors_suggest_no_schema_names(
    engine, token: str, query: str
) -> None:
    """With introspection off, "Did you mean 'sentera_id'?" still told the schema, one typo
    at a time."""
    request = GraphQLRequest(query, {"p": {"pag": 1}})
    hidden = GraphQLExecutor(build_fieldsync_schema(), engine, introspection=False)
    response = hidden.run(token, request)
    assert response.status == 400, response.body
    assert "Did you mean" not in json.dumps(response.body)
    shown = GraphQLExecutor(build_fieldsync_schema(), engine).run(token, request)
    assert "Did you mean" in json.dumps(shown.body)
