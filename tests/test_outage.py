"""Overload and database outages: quick 503s with Retry-After, never a 500, one log line per
outage episode, and recovery without a restart."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from fieldsync.demo import install_demo
from fieldsync.observability import log_fields
from fieldsync.storage.api_tokens import find_live_token
from fieldsync.storage.database import (
    is_database_unavailable,
    make_engine,
    normalize_url,
    statement_deadline,
)
from fieldsync.storage.migrate import upgrade
from tests.ops_support import (
    ME,
    SYNC_IMAGES,
    ThreadServer,
    ThrowawayPostgres,
    postgres_bindir,
    table_locked,
    thread_server,
    wait_for_lock_waiters,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of this test session's own, which tests stop and start."""
    bindir = postgres_bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) for a throwaway cluster"
        if IN_CI:
            raise RuntimeError(reason + " under CI")
        pytest.skip(reason)
    cluster = ThrowawayPostgres(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def demo_token(engine: Engine) -> str:
    token = install_demo(engine).token
    assert token is not None
    return token


def timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def assert_unavailable(response: httpx.Response, code: str, retry_after: str = "2") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == retry_after
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["request_id"] == response.headers["x-request-id"]


@pytest.fixture
def pg_demo(new_postgres_database: Callable[[], str]) -> Iterator[tuple[str, Engine, str]]:
    """A PostgreSQL database of its own with the demo data: URL, engine, token."""
    url = new_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine, demo_token(engine)
    engine.dispose()


def test_beyond_the_queue_requests_get_503_at_once(pg_demo: tuple[str, Engine, str]) -> None:
    """2 requests execute (held by a table lock), 2 may queue; the other 16 get 503 without
    waiting for anything, the queued ones after the queue timeout, and no 500 at all."""
    url, engine, token = pg_demo
    limits = {"max_concurrent_requests": 2, "max_queued_requests": 2, "queue_timeout": 3.0}
    with thread_server(engine, database_url=url, **limits) as server:
        with ThreadPoolExecutor(20) as pool, table_locked(url, "api_tokens"):
            held = [pool.submit(server.post, ME, token) for _ in range(2)]
            wait_for_lock_waiters(url, 2)
            started = time.monotonic()
            rest = [pool.submit(timed, lambda: server.post(ME, token)) for _ in range(18)]
            refused = [future.result() for future in rest]
            elapsed = time.monotonic() - started
        answered = [future.result() for future in held]
        after = server.post(ME, token)
    for _seconds, response in refused:
        assert_unavailable(response, "SERVER_OVERLOADED")
    latencies = sorted(seconds for seconds, _response in refused)
    assert latencies[15] < 2.0, latencies  # 16 never waited for the 3 s queue timeout
    assert elapsed < 10, elapsed  # not the pool's 30 s of before
    assert [response.status_code for response in answered] == [200, 200]
    assert after.status_code == 200


def gauge(metrics_text: str, name: str) -> float:
    match = re.search(rf"^fieldsync_db_pool_{name} (\S+)$", metrics_text, re.MULTILINE)
    assert match is not None, metrics_text
    return float(match.group(1))


def test_a_busy_connection_pool_gets_503_not_500(pg_demo: tuple[str, Engine, str]) -> None:
    """More executing requests than pooled connections: the wait for one is short and ends in
    503 SERVER_OVERLOADED."""
    url, _engine, token = pg_demo
    small = make_engine(url, pool_size=1, pool_timeout=0.5)  # 1 connection + 1 overflow
    try:
        with thread_server(small, database_url=url, max_queued_requests=0) as server:
            with ThreadPoolExecutor(4) as pool, table_locked(url, "api_tokens"):
                futures = [pool.submit(timed, lambda: server.post(ME, token)) for _ in range(4)]
                wait_for_lock_waiters(url, 2)
                time.sleep(1.0)
                busy = server.http.get(server.base + "/metrics").text
            results = [future.result() for future in futures]
            idle = server.http.get(server.base + "/metrics").text
    finally:
        small.dispose()
    statuses = sorted(response.status_code for _seconds, response in results)
    assert statuses == [200, 200, 503, 503]
    assert (gauge(busy, "checked_out"), gauge(busy, "size")) == (2, 2)
    assert gauge(idle, "checked_out") == 0
    for seconds, response in results:
        if response.status_code == 503:
            assert_unavailable(response, "SERVER_OVERLOADED")
            assert seconds < 3, seconds


def test_many_concurrent_heavy_requests_get_quick_503s(engine: Engine, database_url: str) -> None:
    """60 sync calls of 1,000-image pages from 30 clients at once, on each backend: every answer is
    200 or a quick 503 with Retry-After; none is a 500."""
    info = install_demo(engine)
    assert info.token is not None
    variables = {"s": info.survey_sentera_id}
    limits = {"max_concurrent_requests": 1, "max_queued_requests": 1, "queue_timeout": 0.2}
    with (
        thread_server(engine, database_url=database_url, **limits) as server,
        ThreadPoolExecutor(30) as pool,
    ):
        results = list(
            pool.map(
                lambda _n: timed(lambda: server.post(SYNC_IMAGES, info.token, variables)),
                range(60),
            )
        )
    by_status: dict[int, list[float]] = {}
    for seconds, response in results:
        by_status.setdefault(response.status_code, []).append(seconds)
        if response.status_code == 503:
            assert_unavailable(response, "SERVER_OVERLOADED")
        else:
            assert response.status_code == 200, response.text
            assert len(response.json()["data"]["sync_images"]["upserted"]) == 1000
    assert by_status.keys() == {200, 503}, by_status.keys()
    assert max(by_status[503]) < 5.0, max(by_status[503])  # not a 30 s pool timeout


class Pounder:
    """Clients sending `{ me }` without pause until stopped; every answer kept."""

    def __init__(self, server: ThreadServer, token: str, clients: int = 3) -> None:
        self.server = server
        self.token = token
        self.responses: list[httpx.Response] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.responses.append(self.server.post(ME, self.token))
            time.sleep(0.01)

    def wait_for(self, condition: Callable[[httpx.Response], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.responses)
        while time.monotonic() < deadline:
            if any(condition(response) for response in self.responses[seen:]):
                return
            time.sleep(0.05)
        raise AssertionError("the expected answer never came")

    def stop(self) -> list[httpx.Response]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.responses


def database_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "fieldsync.database"]


def test_postgresql_restart_during_requests(
    throwaway_postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop and start a real PostgreSQL under load: 503 DATABASE_UNAVAILABLE with Retry-After
    while it is down, /readyz 503 and /healthz 200, then 200s again without a restart; one
    warning line and one recovery line in the log, and no traceback."""
    engine = make_engine(throwaway_postgres.url, pool_timeout=1.0)
    upgrade(engine)
    token = demo_token(engine)
    caplog.set_level(logging.INFO)
    try:
        with thread_server(engine, database_url=throwaway_postgres.url) as server:
            pounder = Pounder(server, token)
            pounder.wait_for(lambda response: response.status_code == 200, timeout=10)
            throwaway_postgres.stop("fast")
            pounder.wait_for(lambda response: response.status_code == 503, timeout=10)
            ready = server.http.get(server.base + "/readyz")
            health = server.http.get(server.base + "/healthz")
            throwaway_postgres.start()
            pounder.wait_for(lambda response: response.status_code == 200, timeout=30)
            responses = pounder.stop()
            ready_again = server.http.get(server.base + "/readyz")
    finally:
        throwaway_postgres.start_if_stopped()
        engine.dispose()
    statuses = {response.status_code for response in responses}
    assert statuses == {200, 503}, statuses
    refused = [response for response in responses if response.status_code == 503]
    for response in refused:
        assert_unavailable(response, "DATABASE_UNAVAILABLE")
    assert responses[-1].status_code == 200
    assert (ready.status_code, health.status_code, ready_again.status_code) == (503, 200, 200)
    records = database_records(caplog)
    assert [record.levelname for record in records] == ["WARNING", "INFO"], records
    warning, recovery = records
    assert "\n" not in warning.getMessage()
    fields = log_fields(recovery)
    assert fields["refused_requests"] == len(refused) + 1  # and /readyz
    assert fields["outage_seconds"] > 0
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not [record for record in caplog.records if record.exc_info]


def _terminate_lock_waiters(url: str) -> None:
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
    finally:
        admin.dispose()


def _terminate_other_sessions(database_url: str) -> int:
    """End every other session of the database, as a server restart or an administrator
    would; the number ended."""
    admin = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(ended)


def test_pooled_connections_the_server_ended_are_not_handed_out(
    pg_demo: tuple[str, Engine, str],
) -> None:
    """Sessions ended by the server while idle in the pool are replaced at checkout: every
    request after that is answered 200 (no ping is sent per checkout to find this out)."""
    url, engine, token = pg_demo
    query = "{ organizations { results { sentera_id } } }"
    with thread_server(engine, database_url=url) as server:
        with ThreadPoolExecutor(4) as pool:  # several connections in the pool
            warm = list(pool.map(lambda _: server.post(query, token), range(8)))
        assert [r.status_code for r in warm] == [200] * 8
        assert _terminate_other_sessions(url) >= 1
        time.sleep(0.2)  # the farewell messages arrive
        after = [server.post(query, token) for _ in range(8)]
    assert [r.status_code for r in after] == [200] * 8, after[0].text
    assert after[0].json() == warm[0].json()


def test_connection_lost_inside_a_resolver_is_503(
    throwaway_postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection dies while a resolver runs (after the token check): the whole request is
    answered 503 DATABASE_UNAVAILABLE, not a 200 with an internal error."""
    url = throwaway_postgres.url
    engine = make_engine(url)
    upgrade(engine)
    token = demo_token(engine)
    query = "{ organizations { results { sentera_id } } }"
    try:
        with (
            thread_server(engine, database_url=url) as server,
            ThreadPoolExecutor(1) as pool,
            table_locked(url, "organizations"),
        ):
            future = pool.submit(server.post, query, token)
            wait_for_lock_waiters(url, 1)
            _terminate_lock_waiters(url)
            response = future.result()
    finally:
        engine.dispose()
    assert_unavailable(response, "DATABASE_UNAVAILABLE")
    assert not [record for record in caplog.records if record.exc_info]


def _end_session(url: str, conn: Connection) -> None:
    """End the server session behind a checked-out connection, as a restart would."""
    pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as admin_conn:
            admin_conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    time.sleep(0.2)  # the farewell message arrives


def _token_check(conn: Connection) -> None:
    find_live_token(conn, "0" * 64)


def _snapshot_deadline(conn: Connection) -> None:
    with conn.begin(), statement_deadline(conn, 5.0, lambda: False):
        pass


@pytest.mark.parametrize("read", [_token_check, _snapshot_deadline])
def test_sql_sent_on_the_driver_connection_fails_as_sqlalchemy_would(
    pg_demo: tuple[str, Engine, str], read: Callable[[Connection], None]
) -> None:
    """A session lost under SQL the driver runs directly (a driver-cursor read, the BEGIN
    pipeline) raises SQLAlchemy's error, marked as a lost connection (so a request gets
    503), and the connection is dropped, not pooled again."""
    url, engine, _token = pg_demo
    with engine.connect() as conn:
        _end_session(url, conn)
        with pytest.raises(DBAPIError) as raised:
            read(conn)
        assert conn.invalidated
    assert raised.value.connection_invalidated
    assert is_database_unavailable(raised.value)
    with engine.connect() as conn:
        read(conn)  # a new session


@pytest.mark.parametrize(
    ("table", "query"),
    [("api_tokens", ME), ("images", SYNC_IMAGES)],
    ids=["token-check", "sync-scan"],
)
def test_connection_lost_in_a_driver_read_is_503(
    throwaway_postgres: ThrowawayPostgres,
    caplog: pytest.LogCaptureFixture,
    table: str,
    query: str,
) -> None:
    """The connection dies inside a statement read straight from the driver's cursor (the
    token check, a sync page's scan): 503 DATABASE_UNAVAILABLE with no traceback, the dead
    connection leaves the pool, and the next request is 200."""
    url = throwaway_postgres.url
    engine = make_engine(url)
    upgrade(engine)
    info = install_demo(engine)
    assert info.token is not None
    variables = {"s": info.survey_sentera_id}
    try:
        with thread_server(engine, database_url=url) as server:
            with ThreadPoolExecutor(1) as pool, table_locked(url, table):
                future = pool.submit(server.post, query, info.token, variables)
                wait_for_lock_waiters(url, 1)
                _terminate_lock_waiters(url)
                response = future.result()
            after = server.post(query, info.token, variables)
    finally:
        engine.dispose()
    assert_unavailable(response, "DATABASE_UNAVAILABLE")
    assert after.status_code == 200, after.text
    assert "errors" not in after.json()
    assert not [record for record in caplog.records if record.exc_info]
