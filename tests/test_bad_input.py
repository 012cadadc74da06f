"""Bad input gets a clear 400 (or the documented status), never a server error: deeply nested
JSON and GraphQL, lone surrogates, huge owner lists, bad pagination, bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlencode

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from fieldsync.cli import main
from fieldsync.config import Settings, SettingsError
from fieldsync.demo import DemoInfo, install_demo
from fieldsync.ids import TypeCode
from fieldsync.storage.database import read_snapshot
from fieldsync.sync.scopes import locate_many
from tests.conftest import LiveServer

SURVEY = "61sgabq_CO_AcmeAg_FS_demo_1a2b3c4_240610_140200"
ROOT_ORGANIZATION = "ep2v4ph_OR_AcmeAg_FS_demo_1a2b3c4_240301_150000"


@pytest.fixture
def demo(engine: Engine) -> DemoInfo:
    return install_demo(engine)


@pytest.fixture
def token(demo: DemoInfo) -> str:
    assert demo.token is not None
    return demo.token


def post_raw(server: LiveServer, body: bytes, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return server.http.post(server.url, content=body, headers=headers)


def error_code(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text[:500]
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


# -- nesting -------------------------------------------------------------------------------


@pytest.mark.parametrize("with_token", [False, True])
def test_deeply_nested_json_body(live_server: LiveServer, token: str, with_token: bool) -> None:
    def body(depth: int) -> bytes:
        nested = b"[" * depth + b"]" * depth
        return b'{"query": "{ me { first_name } }", "variables": {"a": ' + nested + b"}}"

    caller = token if with_token else None
    # 1,000 levels parse (an unused variable), so the request answers as usual.
    response = post_raw(live_server, body(1000), caller)
    assert response.status_code == (200 if with_token else 401), response.text[:300]
    for too_deep in (body(1100), b"[" * 5000 + b"]" * 5000):
        response = post_raw(live_server, too_deep, caller)
        assert error_code(response) == "BAD_REQUEST"
        assert "not valid JSON: depth limit exceeded" in response.json()["errors"][0]["message"]


def test_nested_variable_value_within_the_json_limit(live_server: LiveServer, token: str) -> None:
    nested = "[" * 1000 + '"x"' + "]" * 1000
    body = (
        '{"query": "query($h: [String!]!) { sync_images(survey_sentera_id: \\"'
        + SURVEY
        + '\\", content_hashes: $h) { remaining_count } }", "variables": {"h": '
        + nested
        + "}}"
    )
    assert error_code(post_raw(live_server, body.encode(), token)) == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "query",
    [
        "{" + "me {" * 3000 + "}" * 3001,
        "{ survey(sentera_id: " + "[" * 3000 + '"x"' + "]" * 3000 + ") { name } }",
        '{ survey(sentera_id: "x") { name } x: organizations(pagination: '
        + "{page: " * 2000
        + "1"
        + "}" * 2000
        + ") { total_count } }",
    ],
    ids=["selections", "list-value", "object-value"],
)
def test_deeply_nested_graphql(live_server: LiveServer, token: str, query: str) -> None:
    response = live_server.post(query, token=token)
    assert error_code(response) in ("GRAPHQL_PARSE_FAILED", "QUERY_TOO_DEEP")


# -- lone surrogates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "query($s: ID!) { survey(sentera_id: $s) { name } }", '
        b'"variables": {"s": "\\ud800"}}',
        b'{"query": "query($o: [FileOwnerInput!]!) { sync_files(owners: $o, '
        b'content_hashes: []) { remaining_count } }", '
        b'"variables": {"o": [{"owner_type": "SURVEY", "sentera_id": "\\ud800"}]}}',
        b'{"query": "query A { me { sentera_id } }", "operationName": "\\udfff"}',
        b'{"query": "{ me { sentera_id } }", "variables": "{\\"a\\": \\"\\\\ud800\\"}"}',
        b'{"query": "{ survey(sentera_id: \\"\\\\ud800\\") { name } }"}',
    ],
    ids=["variable", "owner-id", "operation-name", "variables-string", "graphql-literal"],
)
def test_lone_surrogate_in_a_post(live_server: LiveServer, token: str, body: bytes) -> None:
    assert error_code(post_raw(live_server, body, token)) in (
        "BAD_REQUEST",
        "GRAPHQL_PARSE_FAILED",
    )


ESCAPED_SURROGATE = urlencode(
    {
        "query": "query($s: ID!) { survey(sentera_id: $s) { name } }",
        "variables": '{"s": "\\ud800"}',
    }
)
LITERAL_SURROGATE = urlencode({"query": '{ survey(sentera_id: "\\ud800") { name } }'})
# The UTF-8 bytes of U+D800, percent-encoded: not UTF-8, so they decode to U+FFFD.
RAW_SURROGATE = urlencode({"query": "query A { me { sentera_id } }"}) + "&operationName=%ED%A0%80"


@pytest.mark.parametrize(
    "query_string",
    [ESCAPED_SURROGATE, LITERAL_SURROGATE, RAW_SURROGATE],
    ids=["variables", "graphql-literal", "operation-name"],
)
def test_lone_surrogate_in_a_get(live_server: LiveServer, token: str, query_string: str) -> None:
    response = live_server.http.get(
        f"{live_server.url}?{query_string}", headers={"Authorization": f"Bearer {token}"}
    )
    assert error_code(response) in ("BAD_REQUEST", "GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT")


# -- many owners ---------------------------------------------------------------------------


def test_huge_owner_lists_get_the_owners_limit(live_server: LiveServer, token: str) -> None:
    query = (
        "query($o: [FileOwnerInput!]!) { sync_files(owners: $o, content_hashes: []) "
        "{ remaining_count } }"
    )
    count = 70_000 if "postgresql" in live_server.database_url else 260_000
    owners = [{"owner_type": "SURVEY", "sentera_id": f"{i:07d}_CO_x"} for i in range(count)]
    assert error_code(live_server.post(query, {"o": owners}, token)) == "TOO_MANY_OWNERS"


def test_locate_many_takes_any_number_of_ids(engine: Engine, demo: DemoInfo) -> None:
    wanted = [f"{i:07d}_CO_x" for i in range(70_000)] + [SURVEY]
    with read_snapshot(engine) as conn:
        found = locate_many(conn, TypeCode.SURVEY, wanted)
        organizations = locate_many(
            conn, TypeCode.ORGANIZATION, [ROOT_ORGANIZATION, *wanted[:40_000]]
        )
    assert list(found) == [SURVEY]
    assert list(organizations) == [ROOT_ORGANIZATION]


# -- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pagination", "message"),
    [
        ("{page: 0, page_size: 0}", "pagination.page must be 1 or more"),
        ("{page: 0}", "pagination.page must be 1 or more"),
        ("{page: -3}", "pagination.page must be 1 or more"),
        ("{page_size: 0}", "pagination.page_size must be between 1 and 1000, not 0"),
        ("{page_size: 5000}", "pagination.page_size must be between 1 and 1000, not 5000"),
    ],
)
def test_out_of_range_pagination(
    live_server: LiveServer, token: str, pagination: str, message: str
) -> None:
    response = live_server.post(
        f"{{ organizations(pagination: {pagination}) {{ total_count }} }}", token=token
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert message in body["errors"][0]["message"]


def test_pagination_defaults_and_nulls(live_server: LiveServer, token: str) -> None:
    for pagination in ("{}", "{page: null, page_size: null}", "{page: 1, page_size: 100}"):
        response = live_server.post(
            f"{{ organizations(pagination: {pagination}) {{ page page_size total_count }} }}",
            token=token,
        )
        assert response.json() == {
            "data": {"organizations": {"page": 1, "page_size": 100, "total_count": 4}}
        }


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--log-level", "verbose"], "Invalid value for '--log-level'"),
        (["--port", "99999"], "Invalid value for '--port'"),
        (["--port", "0"], "Invalid value for '--port'"),
        (["--request-timeout", "0"], "Invalid value for '--request-timeout'"),
        (["--max-owners", "100000"], "Invalid value for '--max-owners'"),
    ],
)
def test_bad_serve_options(arguments: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, ["serve", *arguments])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FIELDSYNC_PORT", "99999", "FIELDSYNC_PORT must be a whole number from 1 to 65535"),
        ("FIELDSYNC_PORT", "http", "FIELDSYNC_PORT must be a whole number from 1 to 65535"),
        ("FIELDSYNC_WORKERS", "0", "FIELDSYNC_WORKERS must be a whole number of at least 1"),
        ("FIELDSYNC_LOG_LEVEL", "verbose", "FIELDSYNC_LOG_LEVEL must be one of debug, info"),
        ("FIELDSYNC_REQUEST_TIMEOUT", "soon", "FIELDSYNC_REQUEST_TIMEOUT must be a number"),
        ("FIELDSYNC_INTROSPECTION", "maybe", "FIELDSYNC_INTROSPECTION must be 1/true"),
        ("FIELDSYNC_FAST_PATH", "maybe", "FIELDSYNC_FAST_PATH must be 1/true"),
        ("FIELDSYNC_MAX_HASHES", "-1", "FIELDSYNC_MAX_HASHES must be a whole number"),
    ],
)
def test_bad_environment_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        Settings.from_environment()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_environment_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        port=9001, request_timeout=2.5, max_hashes=7, introspection=False, fast_path=False
    )
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_environment() == settings


def test_worker_with_bad_environment_prints_one_line() -> None:
    environment = {**os.environ, "FIELDSYNC_MAX_QUERY_DEPTH": "deep"}
    result = subprocess.run(
        [sys.executable, "-c", "from fieldsync.api.http import app_from_environment as a; a()"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fieldsync: FIELDSYNC_MAX_QUERY_DEPTH must be a whole number of at least 1, not 'deep'"
    ]
