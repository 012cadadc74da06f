"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL is reached at FIELDSYNC_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres); each test session (each pytest-xdist worker is
one) creates its own database, named after the worker, and drops it at the end. Without a
reachable server the PostgreSQL leg is skipped with a reason, except under CI (CI=true), where
an unreachable server fails the run.

Two servers speak the same small client interface (`ServerClient`: `.post`, `.url`, `.http`):
`app_server` runs the app in process (no socket), for tests of GraphQL and HTTP semantics;
`live_server` is a real uvicorn server on a loopback port, for tests that need real HTTP.
See docs/testing.md.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from fieldsync.storage.database import make_engine, normalize_url
from fieldsync.storage.migrate import upgrade


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Accept pyproject's `--numprocesses`/`--dist` addopts when pytest-xdist is off
    (`-p no:xdist`), so the suite then runs serially instead of failing to start."""
    if pluginmanager.has_plugin("xdist"):
        return
    parser.addoption(
        "--numprocesses",
        dest="numprocesses",
        default=None,
        help="ignored: pytest-xdist is disabled, tests run serially",
    )
    parser.addoption("--dist", dest="dist", default="no", help="ignored without pytest-xdist")


settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

POSTGRES_ADMIN_URL = os.environ.get(
    "FIELDSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
"""The pytest-xdist worker running this process (`gw0`, `gw1`, ...), or `main` without xdist."""


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the PostgreSQL server's admin database (skips without one)."""
    engine = create_engine(normalize_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        if IN_CI:
            raise RuntimeError(
                f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL} under CI: {exc}"
            ) from exc
        pytest.skip(f"PostgreSQL leg skipped: no server at {POSTGRES_ADMIN_URL}")
    yield engine
    engine.dispose()


class PostgresDatabases:
    """Creates uniquely named, empty PostgreSQL databases and drops them all at the end."""

    def __init__(self, admin: Engine, prefix: str) -> None:
        self.admin = admin
        self.prefix = prefix
        self.names: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}_{WORKER}_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(scope="session")
def postgres_server_url(postgres_admin: Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    databases = PostgresDatabases(postgres_admin, "fieldsync_test")
    try:
        yield databases.create()
    finally:
        databases.drop_all()


@pytest.fixture
def new_postgres_database(postgres_admin: Engine) -> Iterator[Callable[[], str]]:
    """Makes more fresh PostgreSQL databases on demand; drops them after the test."""
    databases = PostgresDatabases(postgres_admin, "fieldsync_extra")
    try:
        yield databases.create
    finally:
        databases.drop_all()


def _reset_postgres(url: str) -> None:
    """Empty the session database: drop and recreate its public schema."""
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """An empty database of each backend (schema not yet created)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fieldsync.db"
    url: str = request.getfixturevalue("postgres_server_url")
    _reset_postgres(url)
    return url


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per session, copied by `engine` instead of migrating
    every test's database from scratch."""
    path = tmp_path_factory.mktemp("migrated") / "fieldsync.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _copy_sqlite(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as from_db, sqlite3.connect(target) as to_db:
        from_db.backup(to_db)
    from_db.close()
    to_db.close()


@pytest.fixture
def engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    """An engine on a freshly migrated database of each backend."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        _copy_sqlite(request.getfixturevalue("migrated_sqlite_file"), Path(url.database))
    engine = make_engine(database_url)
    upgrade(engine)  # a no-op on the copy; keeps the promise if the copy were behind
    yield engine
    engine.dispose()


DEFAULT_BODY_LIMIT = 32 * 1024 * 1024


class ServerClient(Protocol):
    """What tests use of a server: its `/graphql` URL, an HTTP client, and a GraphQL POST."""

    url: str
    http: httpx.Client

    def post(
        self, query: str, variables: dict[str, object] | None = None, token: str | None = None
    ) -> httpx.Response: ...


def post_graphql(
    http: httpx.Client,
    url: str,
    query: str,
    variables: dict[str, object] | None = None,
    token: str | None = None,
) -> httpx.Response:
    """POST one GraphQL request as JSON, with a bearer token when one is given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post(url, json={"query": query, "variables": variables}, headers=headers)


class InProcessServer:
    """The FieldSync app served in process through Starlette's TestClient: no socket and no
    server, but the same ASGI app (middleware and lifespan included) as a real server."""

    def __init__(
        self, engine: Engine, database_url: str, max_body_bytes: int, **settings: Any
    ) -> None:
        with warnings.catch_warnings():
            # Starlette prefers httpx2 for its TestClient; the project (and every test's
            # types) use httpx, which the TestClient still fully supports.
            warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
            from starlette.testclient import TestClient

        from fieldsync.api.http import create_app
        from fieldsync.config import Settings

        self.engine = engine
        self.database_url = database_url
        self.url = "http://127.0.0.1/graphql"
        self._client = TestClient(
            create_app(
                engine,
                Settings(database_url=database_url, max_body_bytes=max_body_bytes, **settings),
            ),
            base_url="http://127.0.0.1",
            raise_server_exceptions=False,
        )
        # Entering runs the app's startup. With httpx2 installed (rio-tiler depends on it)
        # starlette's TestClient is an httpx2 client: the same API as httpx's.
        self.http = cast(httpx.Client, self._client.__enter__())

    def post(
        self, query: str, variables: dict[str, object] | None = None, token: str | None = None
    ) -> httpx.Response:
        return post_graphql(self.http, self.url, query, variables, token)

    def stop(self) -> None:
        self._client.__exit__(None, None, None)


class LiveServer:
    """A real FieldSync HTTP server on a free loopback port, in a background thread."""

    def __init__(
        self, engine: Engine, database_url: str, max_body_bytes: int, **settings: Any
    ) -> None:
        import uvicorn

        from fieldsync.api.http import create_app
        from fieldsync.config import Settings

        self.engine = engine
        self.database_url = database_url
        config = uvicorn.Config(
            create_app(
                engine,
                Settings(database_url=database_url, max_body_bytes=max_body_bytes, **settings),
            ),
            host="127.0.0.1",
            port=0,
            log_level="warning",
        )
        self._server, self._thread, port = serve_in_thread(config)
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.http = httpx.Client(timeout=120)

    def post(
        self, query: str, variables: dict[str, object] | None = None, token: str | None = None
    ) -> httpx.Response:
        return post_graphql(self.http, self.url, query, variables, token)

    def stop(self) -> None:
        self.http.close()
        stop_thread_server(self._server, self._thread)


def serve_in_thread(config: Any) -> tuple[Any, threading.Thread, int]:
    """A uvicorn server (of `config`, port 0) started in a daemon thread, and its port."""
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


def stop_thread_server(server: Any, thread: threading.Thread, timeout: float = 30) -> None:
    server.should_exit = True
    thread.join(timeout=timeout)


@pytest.fixture
def live_server(engine: Engine, database_url: str) -> Iterator[LiveServer]:
    """A real HTTP server over the `engine` database (each backend), body limit 32 MiB."""
    server = LiveServer(engine, database_url, max_body_bytes=DEFAULT_BODY_LIMIT)
    yield server
    server.stop()


@pytest.fixture
def app_server(engine: Engine, database_url: str) -> Iterator[InProcessServer]:
    """The app in process over the `engine` database (each backend), body limit 32 MiB."""
    server = InProcessServer(engine, database_url, max_body_bytes=DEFAULT_BODY_LIMIT)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto's standalone S3 server behind a verifying front (tests/s3_support.py), one per
    pytest process; each test makes its own bucket."""
    from tests.s3_support import start_s3_server

    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def blob_env(
    request: pytest.FixtureRequest,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """A server and upload context on each blob store (a local directory; a fresh bucket on
    `s3_server`), over each database, with a small world (tests/blob_support.py)."""
    from tests.blob_support import open_blob_env

    yield from open_blob_env(request, engine, database_url, tmp_path, monkeypatch)
