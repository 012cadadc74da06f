"""The per-token rate limit: 429 with Retry-After once a token has used its requests of the
minute, one budget per token however many worker processes serve it (PostgreSQL), counted in
memory on SQLite, and off with a limit of 0."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.config import Settings
from fieldsync.ratelimit import (
    DEFAULT_RATE_LIMIT,
    DatabaseRateLimiter,
    InProcessRateLimiter,
    RateLimited,
    RateLimiter,
    rate_limiter_for,
)
from fieldsync.storage import tables as t
from fieldsync.tokens import create_token
from tests.ops_support import ServeProcess
from tests.worlds import build_world

ME = "{ me { sentera_id } }"
T0 = 1_800_000_000.0  # a window start: a multiple of 60


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(engine: Engine, limit: int, clock: FakeClock) -> RateLimiter:
    """The limiter the server would use on this backend, on a clock the test moves."""
    if engine.dialect.name == "sqlite":
        return InProcessRateLimiter(limit, clock)
    return DatabaseRateLimiter(engine, limit, clock)


# -- the limiter -------------------------------------------------------------------------------


def test_a_token_gets_its_limit_per_minute_then_waits_for_the_next_window(engine: Engine) -> None:
    clock = FakeClock(T0 + 45.2)
    limits = limiter(engine, 3, clock)

    assert [limits.check(7) for _ in range(3)] == [None, None, None]
    assert limits.check(7) == RateLimited(limit_per_minute=3, retry_after_seconds=15)
    assert limits.check(8) is None  # another token has its own budget

    clock.now = T0 + 59.9
    assert limits.check(7) == RateLimited(3, 1)  # never "retry after 0"
    clock.now = T0 + 60
    assert [limits.check(7) for _ in range(3)] == [None, None, None]
    assert limits.check(7) == RateLimited(3, 60)


def test_the_database_counts_concurrent_requests_exactly(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite counts in memory; the shared counter table is PostgreSQL's")
    clock = FakeClock(T0 + 1)
    # Two limiters on one database stand for two worker processes.
    workers = [DatabaseRateLimiter(engine, 50, clock), DatabaseRateLimiter(engine, 50, clock)]
    admitted: list[bool] = []
    lock = threading.Lock()

    def hammer(limits: DatabaseRateLimiter) -> None:
        for _ in range(20):
            verdict = limits.check(1)
            with lock:
                admitted.append(verdict is None)

    threads = [threading.Thread(target=hammer, args=(workers[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == 120 and admitted.count(True) == 50
    assert window_counts(engine) == {(1, int(T0)): 120}


def test_old_windows_are_deleted(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite counts in memory; the shared counter table is PostgreSQL's")
    clock = FakeClock(T0)
    limits = DatabaseRateLimiter(engine, 10, clock)
    limits.check(1)
    limits.check(2)
    clock.now = T0 + 61
    limits.check(1)
    assert window_counts(engine) == {(1, int(T0) + 60): 1}


def test_a_limit_of_zero_turns_it_off_and_the_default_is_documented(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rate_limiter_for(engine, 0) is None
    assert rate_limiter_for(engine, 5) is not None
    assert Settings().rate_limit == DEFAULT_RATE_LIMIT == 600
    monkeypatch.setenv("FIELDSYNC_RATE_LIMIT", "0")
    assert Settings.from_environment().rate_limit == 0
    assert Settings(rate_limit=42).to_environment()["FIELDSYNC_RATE_LIMIT"] == "42"


def test_a_limited_request_is_refused_before_it_is_parsed(engine: Engine) -> None:
    world = build_world(engine)
    token = create_token(engine, world.user)
    executor = GraphQLExecutor(
        build_fieldsync_schema(), engine, rate_limiter=limiter(engine, 1, FakeClock(T0 + 20))
    )
    assert executor.run(token, GraphQLRequest(query=ME)).status == 200

    refused = executor.run(token, GraphQLRequest(query="{ this is not GraphQL"))

    assert refused.status == 429
    assert refused.headers == {"Retry-After": "40"}
    (error,) = refused.body["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retry_after_seconds": 40}
    assert "1 requests per minute per token" in error["message"]
    assert "retry after 40 s" in error["message"]
    # No token, or a bad one, is still 401: the limit applies to authenticated tokens only.
    assert executor.run("fst_unknown", GraphQLRequest(query=ME)).status == 401


def window_counts(engine: Engine) -> dict[tuple[int, int], int]:
    windows = t.rate_limit_windows
    with engine.connect() as conn:
        rows = conn.execute(
            select(windows.c.token_id, windows.c.window_start, windows.c.request_count)
        )
        return {(row[0], row[1]): row[2] for row in rows}


def last_use_noted(engine: Engine) -> dict[int, bool]:
    tokens = t.api_tokens
    with engine.connect() as conn:
        rows = conn.execute(select(tokens.c.id, tokens.c.last_used_at))
        return {row[0]: row[1] is not None for row in rows}


# -- a real server -----------------------------------------------------------------------------


class Server(ServeProcess):
    @property
    def url(self) -> str:
        return self.base + "/graphql"

    def worker_cpu_ticks(self) -> dict[int, int]:
        """CPU time (user + system, in clock ticks) of each worker process of the server."""
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            # fields: state, ppid, ..., utime, stime; workers run spawn_main (not the
            # resource tracker, also a child)
            if int(fields[1]) == self.process.pid and b"spawn_main" in command:
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        return ticks


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts `fieldsync serve` as a real process; stops it afterwards."""
    servers: list[Server] = []

    def start(database_url: str, *options: str) -> Server:
        server = Server(tmp_path, database_url, "--log-level", "warning", *options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _well_inside_one_window(burst_seconds: float) -> None:
    """Sleep into the next minute if the burst might cross a window boundary."""
    into_window = time.time() % 60
    if into_window > 60 - burst_seconds:
        time.sleep(60 - into_window + 0.2)


def burst(url: str, token: str, requests: int, clients: int) -> list[httpx.Response]:
    """`requests` POSTs spread over `clients` concurrent connections."""
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(count):
            # A new connection each time, so the server's processes share the requests.
            response = httpx.post(url, json={"query": ME}, headers=headers, timeout=30)
            with lock:
                responses.append(response)

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def assert_rate_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    (error,) = response.json()["errors"]
    extensions = error["extensions"]
    assert extensions.pop("request_id")  # every error carries the request's id
    assert extensions == {"code": "RATE_LIMITED", "retry_after_seconds": retry_after}
    assert f"at most {limit} requests per minute per token" in error["message"]


def test_the_limit_holds_for_the_sum_over_two_worker_processes(
    engine: Engine, database_url: str, serve: Callable[..., Server]
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("several worker processes need PostgreSQL")
    world = build_world(engine)
    token, other = create_token(engine, world.user), create_token(engine, world.user)
    server = serve(database_url, "--workers", "2", "--rate-limit", "30")
    _well_inside_one_window(burst_seconds=30)
    cpu_before = server.worker_cpu_ticks()
    assert len(cpu_before) == 2

    responses = burst(server.url, token, requests=90, clients=9)

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 30 and statuses.count(429) == 60, statuses
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response, 30)
    counts = window_counts(engine)
    assert list(counts.values()) == [90], counts  # every request counted, in one window
    # Both processes served part of the burst: the budget really was shared between them.
    cpu_after = server.worker_cpu_ticks()
    assert all(cpu_after[pid] > cpu_before[pid] for pid in cpu_before), (cpu_before, cpu_after)
    # Another token of the same user is not held back.
    fine = httpx.post(server.url, json={"query": ME}, headers={"Authorization": f"Bearer {other}"})
    assert fine.status_code == 200, fine.text
    assert all(last_use_noted(engine).values())  # the server notes each token's use


def test_sqlite_serves_the_same_limit_from_one_process(
    engine: Engine, database_url: str, serve: Callable[..., Server]
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the PostgreSQL server is tested with two workers above")
    world = build_world(engine)
    token = create_token(engine, world.user)
    server = serve(database_url, "--rate-limit", "5")
    _well_inside_one_window(burst_seconds=10)

    responses = burst(server.url, token, requests=8, clients=2)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 5 + [429] * 3
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response, 5)
    assert all(last_use_noted(engine).values())


def test_counters_that_cannot_be_written_let_requests_through_with_a_warning(
    engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A node on a read-only replica cannot count: it serves, and says why once a minute."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite counts in memory")
    from sqlalchemy import create_engine

    from fieldsync.storage.database import normalize_url

    read_only = create_engine(
        normalize_url(database_url),
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    try:
        limits = DatabaseRateLimiter(read_only, 1, FakeClock(T0))
        with caplog.at_level("WARNING", logger="fieldsync.ratelimit"):
            assert [limits.check(1) for _ in range(3)] == [None, None, None]
    finally:
        read_only.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "fieldsync.ratelimit"]
    assert len(warnings) == 1 and "read-only transaction" in warnings[0], warnings
