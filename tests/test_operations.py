"""Operations: request ids, one structured log line per request, Prometheus metrics in one and
in several processes, health and readiness, the GraphiQL switch, and graceful shutdown of a
real `fieldsync serve` process."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from fieldsync.config import Settings
from fieldsync.demo import DemoInfo, install_demo
from fieldsync.observability import OperationLabels, sync_items_served
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from tests.ops_support import (
    ME,
    SYNC_IMAGES,
    ServeProcess,
    table_locked,
    thread_server,
    wait_for_lock_waiters,
)

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def demo(engine: Engine) -> DemoInfo:
    info = install_demo(engine)
    assert info.token is not None
    return info


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent) in Prometheus text."""
    for family in text_string_to_metric_families(metrics_text):
        for entry in family.samples:
            if entry.name == name and all(entry.labels.get(k) == v for k, v in labels.items()):
                return float(entry.value)
    return 0.0


# --- request ids ------------------------------------------------------------------------------


def test_request_id_is_echoed_when_sane_and_generated_otherwise(
    engine: Engine, database_url: str, demo: DemoInfo
) -> None:
    with thread_server(engine, database_url=database_url) as server:
        url = server.base + "/graphql"
        sane = server.http.post(url, json={"query": ME}, headers={"X-Request-ID": "trace-4.2:a"})
        too_long = server.http.post(url, json={"query": ME}, headers={"X-Request-ID": "a" * 129})
        odd = server.http.post(url, json={"query": ME}, headers={"X-Request-ID": "a b;c"})
        bad_json = server.http.post(url, content=b"{", headers={"Content-Type": "application/json"})
        ok = server.post(ME, demo.token)
    assert sane.headers["x-request-id"] == "trace-4.2:a"
    assert sane.json()["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED",
        "request_id": "trace-4.2:a",
    }
    for response in (too_long, odd, bad_json, ok):
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), response.headers
    assert bad_json.status_code == 400
    assert (
        bad_json.json()["errors"][0]["extensions"]["request_id"]
        == (bad_json.headers["x-request-id"])
    )
    assert len({r.headers["x-request-id"] for r in (too_long, odd, bad_json, ok)}) == 4


# --- logs -------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_demo(tmp_path: Path) -> tuple[str, DemoInfo]:
    url = f"sqlite:///{tmp_path}/ops.db"
    engine = make_engine(url)
    upgrade(engine)
    info = install_demo(engine)
    engine.dispose()
    return url, info


def test_serve_logs_one_json_line_per_request(
    tmp_path: Path, sqlite_demo: tuple[str, DemoInfo]
) -> None:
    """By default every stderr line of `serve` is a JSON object; the request line has the
    request id, operation, status, duration and items, and never the token or a hash."""
    url, info = sqlite_demo
    server = ServeProcess(tmp_path, url)
    try:
        headers = {"Authorization": f"Bearer {info.token}", "X-Request-ID": "sync-1"}
        body = {"query": SYNC_IMAGES, "variables": {"s": info.survey_sentera_id}}
        response = httpx.post(server.base + "/graphql", json=body, headers=headers, timeout=30)
        assert response.status_code == 200
        hashes = [
            item["content_hash"] for item in response.json()["data"]["sync_images"]["upserted"]
        ]
        again = {
            "query": "query Again($s: ID!, $h: [String!]!) { sync_images(survey_sentera_id: $s, "
            "content_hashes: $h) { remaining_count } }",
            "variables": {"s": info.survey_sentera_id, "h": hashes},
        }
        httpx.post(server.base + "/graphql", json=again, headers=headers, timeout=30)
    finally:
        server.stop()
    lines = server.stderr().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is JSON
    requests = [entry for entry in entries if entry["logger"] == "fieldsync.request"]
    assert len(requests) == 2
    first = requests[0]
    assert first["request_id"] == "sync-1"
    assert first["operation"] == "SyncSurveyImages"
    assert (first["status"], first["upserted"], first["deleted"]) == (200, 1000, 0)
    assert first["duration_ms"] > 0
    text = server.stderr()
    assert info.token is not None and info.token not in text
    assert not [h for h in hashes if h in text]


def test_serve_logs_text_and_hides_graphiql_when_asked(
    tmp_path: Path, sqlite_demo: tuple[str, DemoInfo]
) -> None:
    url, info = sqlite_demo
    server = ServeProcess(tmp_path, url, "--log-format", "text", "--no-graphiql")
    try:
        browser = {"Accept": "text/html,application/xhtml+xml"}
        page = httpx.get(server.base + "/graphql", headers=browser, timeout=30)
        assert page.status_code == 400
        assert page.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        headers = {"Authorization": f"Bearer {info.token}", "X-Request-ID": "me-1"}
        httpx.post(server.base + "/graphql", json={"query": ME}, headers=headers, timeout=30)
        odd_name = json.dumps({"query": ME, "operationName": "M\u00e9\u0007"})  # ASCII escapes
        json_headers = {**headers, "Content-Type": "application/json"}
        httpx.post(server.base + "/graphql", content=odd_name, headers=json_headers, timeout=30)
    finally:
        server.stop()
    text = server.stderr()
    lines = [line for line in text.splitlines() if "fieldsync.request: POST" in line]
    assert "INFO fieldsync.request: POST /graphql 200 Me" in lines[0]
    assert "request_id=me-1" in lines[0] and "status=200" in lines[0]
    assert not lines[0].startswith("{")
    assert "operation=M\\xe9\\x07" in lines[1]  # escaped ASCII
    assert "Logging error" not in text


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_count_requests_items_errors_and_pool(
    engine: Engine, database_url: str, demo: DemoInfo
) -> None:
    with thread_server(engine, database_url=database_url) as server:
        before = server.http.get(server.base + "/metrics").text
        variables = {"s": demo.survey_sentera_id}
        assert server.post(SYNC_IMAGES, demo.token, variables).status_code == 200
        assert server.post(ME, None).status_code == 401
        assert server.post("{ me { sentera_id } }", demo.token).status_code == 200
        response = server.http.get(server.base + "/metrics")
    after = response.text
    assert response.headers["content-type"].startswith("text/plain")

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    count = "fieldsync_request_duration_seconds_count"
    assert grew(count, operation="SyncSurveyImages") == 1
    assert grew(count, operation="unauthenticated") == 1
    assert grew(count, operation="anonymous") == 1
    assert grew("fieldsync_requests_total", operation="unauthenticated", status="401") == 1
    assert grew("fieldsync_sync_items_total", query="sync_images", kind="upserted") == 1000
    assert grew("fieldsync_errors_total", code="UNAUTHENTICATED") == 1
    assert sample(after, "fieldsync_db_pool_size") > 0
    assert sample(after, "fieldsync_db_pool_checked_out") >= 0
    assert "fieldsync_requests_executing" in after


def test_operation_labels_are_bounded() -> None:
    labels = OperationLabels(limit=2)
    assert [labels.label(name) for name in ("A", "B", "C", "A", None, "bad name!")] == [
        "A",
        "B",
        "other",
        "A",
        "anonymous",
        "other",
    ]


def test_sync_items_are_counted_by_field_name_not_alias() -> None:
    """Aliases are chosen by clients: the `query` label is always a schema field (or other)."""
    query = (
        "query Two($s: ID!) { mine: sync_images(survey_sentera_id: $s, content_hashes: []) "
        "{ upserted { sentera_id } deleted { sentera_id } } "
        "sync_mosaics(survey_sentera_id: $s, content_hashes: []) { upserted { sentera_id } } }"
    )
    data: dict[str, Any] = {
        "mine": {"upserted": [{}, {}], "deleted": [{}]},
        "sync_mosaics": {"upserted": [{}], "deleted": []},
    }
    assert sync_items_served(query, None, data) == {
        "sync_images": {"upserted": 2, "deleted": 1},
        "sync_mosaics": {"upserted": 1, "deleted": 0},
    }
    huge = query + " " * 30_000  # too large to read again: only schema names are kept
    assert sync_items_served(huge, None, data) == {
        "other": {"upserted": 2, "deleted": 1},
        "sync_mosaics": {"upserted": 1, "deleted": 0},
    }


def test_metrics_add_up_across_workers(
    tmp_path: Path, new_postgres_database: Callable[[], str]
) -> None:
    """With --workers 2 every scrape, whichever worker answers it, counts every request; the
    metrics directory is gone after shutdown."""
    url = new_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    token = install_demo(engine).token
    engine.dispose()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = ServeProcess(tmp_path, url, "--workers", "2", env={"TMPDIR": str(scratch)})
    try:
        assert list(scratch.glob("fieldsync-metrics-*"))
        body = {"query": "query Counted { me { sentera_id } }"}
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(
                    lambda _n: (
                        httpx.post(
                            server.base + "/graphql", json=body, headers=headers, timeout=30
                        ).status_code
                    ),
                    range(20),
                )
            )
        assert statuses == [200] * 20
        scrapes = [
            httpx.get(server.base + "/metrics", headers={"Connection": "close"}).text
            for _ in range(6)
        ]
    finally:
        server.stop()
    for text in scrapes:
        assert sample(text, "fieldsync_requests_total", operation="Counted", status="200") == 20
        assert sample(text, "fieldsync_db_pool_size") >= 10  # both workers' pools
    assert server.process.returncode == 0
    assert not list(scratch.glob("fieldsync-metrics-*"))


# --- health, readiness, GraphiQL ----------------------------------------------------------


def test_healthz_needs_no_database_readyz_needs_the_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with thread_server(engine, database_url=database_url) as server:
            empty_health = server.http.get(server.base + "/healthz")
            empty_ready = server.http.get(server.base + "/readyz")
            upgrade(engine)
            ready = server.http.get(server.base + "/readyz")
    finally:
        engine.dispose()
    assert (empty_health.status_code, empty_health.json()) == (200, {"status": "ok"})
    assert empty_ready.status_code == 503
    assert "schema empty is not at head" in empty_ready.json()["reason"]
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_graphiql_can_be_switched_off(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml"}
    with thread_server(engine) as server:
        page = server.http.get(server.base + "/graphql", headers=browser)
    with thread_server(engine, graphiql=False) as server:
        refused = server.http.get(server.base + "/graphql", headers=browser)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    monkeypatch.setenv("FIELDSYNC_GRAPHIQL", "off")
    assert Settings.from_environment().graphiql is False
    monkeypatch.setenv("FIELDSYNC_GRAPHIQL", "maybe")
    with pytest.raises(ValueError, match="must be 1/true/yes/on or 0/false/no/off"):
        Settings.from_environment()


# --- graceful shutdown --------------------------------------------------------------------


@pytest.fixture
def pg_demo_url(new_postgres_database: Callable[[], str]) -> Iterator[tuple[str, str]]:
    url = new_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    token = install_demo(engine).token
    engine.dispose()
    assert token is not None
    yield url, token


def _post_in_background(base: str, token: str) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def post() -> None:
        try:
            headers = {"Authorization": f"Bearer {token}"}
            outcome.append(httpx.post(base + "/graphql", json={"query": ME}, headers=headers))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    return thread, outcome


def test_sigterm_lets_an_in_flight_request_finish(
    tmp_path: Path, pg_demo_url: tuple[str, str]
) -> None:
    url, token = pg_demo_url
    server = ServeProcess(tmp_path, url, "--shutdown-timeout", "10")
    try:
        with table_locked(url, "api_tokens"):
            thread, outcome = _post_in_background(server.base, token)
            wait_for_lock_waiters(url, 1)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.process.poll() is None  # still finishing the request
        thread.join(timeout=30)
        server.process.wait(timeout=15)
    finally:
        server.stop()
    response = outcome[0]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


def test_sigterm_ends_a_stuck_request_within_the_bound(
    tmp_path: Path, pg_demo_url: tuple[str, str]
) -> None:
    url, token = pg_demo_url
    server = ServeProcess(tmp_path, url, "--shutdown-timeout", "1")
    try:
        with table_locked(url, "api_tokens"):
            thread, outcome = _post_in_background(server.base, token)
            wait_for_lock_waiters(url, 1)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=15)
            seconds = time.monotonic() - started
            thread.join(timeout=30)
    finally:
        server.stop()
    assert seconds < 5, seconds  # 1 s graceful timeout, with room for a busy machine
    response = outcome[0]
    assert isinstance(response, httpx.Response) and response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["errors"][0]["extensions"]["code"] == "SHUTTING_DOWN"
    assert "Traceback" not in server.stderr()
