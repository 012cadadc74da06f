"""Servers for the operations tests: an in-thread server with any settings, a `fieldsync serve`
subprocess, a throwaway PostgreSQL cluster that may be stopped and started, and table locks
that make requests slow on purpose."""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from fieldsync.config import Settings
from fieldsync.storage.database import make_engine, normalize_url
from fieldsync.tokens import create_token
from tests.conftest import serve_in_thread, stop_thread_server

ME = "query Me { me { sentera_id } }"
SYNC_IMAGES = (
    "query SyncSurveyImages($s: ID!) { sync_images(survey_sentera_id: $s, content_hashes: []) "
    "{ remaining_count upserted { sentera_id content_hash } deleted { sentera_id } } }"
)


_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_TEST_PORT = 20_000
_PICKER = random.SystemRandom()  # not reseeded by any test's fixed seed


def _first_ephemeral_port() -> int:
    """The lowest port the kernel gives to the local end of an outgoing connection."""
    try:
        return int(_LOCAL_PORT_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range.

    A port from that range (what binding port 0 gives) may become the local end of some other
    test's outgoing connection before the server that was to listen on it starts, which then
    finds it in use."""
    top = _first_ephemeral_port()
    for _ in range(100) if top > _LOWEST_TEST_PORT + 1_000 else ():
        port = _PICKER.randrange(_LOWEST_TEST_PORT, top)
        with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)):
            return port
    with socket.create_server(("127.0.0.1", 0)) as sock:
        chosen: int = sock.getsockname()[1]
        return chosen


class ThreadServer:
    """A real FieldSync HTTP server on a free loopback port, with the given settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        import uvicorn

        from fieldsync.api.http import create_app

        config = uvicorn.Config(
            create_app(engine, settings), host="127.0.0.1", port=0, log_level="warning"
        )
        self._server, self._thread, port = serve_in_thread(config)
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=200))

    def post(
        self, query: str, token: str | None, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(
            self.base + "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    def stop(self) -> None:
        self.http.close()
        stop_thread_server(self._server, self._thread)


@contextlib.contextmanager
def thread_server(engine: Engine, **settings: Any) -> Iterator[ThreadServer]:
    server = ThreadServer(engine, Settings(**settings))
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def table_locked(database_url: str, table: str) -> Iterator[Engine]:
    """Hold an ACCESS EXCLUSIVE lock on a PostgreSQL table: readers of it wait."""
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            yield engine
    finally:
        engine.dispose()


def wait_for_lock_waiters(database_url: str, count: int, timeout: float = 20) -> None:
    """Until `count` sessions of this database wait for a lock (requests are held)."""
    engine = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                ).scalar_one()
            if waiting >= count:
                return
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"fewer than {count} sessions waited for the lock")


DEMO_USER = "uhb3jhj_US_AcmeAg_FS_demo_1a2b3c4_240301_153000"
"""Jordan, the demo's admin of its root organization."""


def demo_token(database_url: str) -> str:
    """A new token of the demo user, made in the database of a `serve --demo`."""
    engine = make_engine(database_url)
    try:
        return create_token(engine, DEMO_USER)
    finally:
        engine.dispose()


class PortTakenError(RuntimeError):
    """The port chosen for a server was taken before the server could listen on it."""


class ServeProcess:
    """`fieldsync serve` in a subprocess, its standard error kept in a file."""

    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        *options: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        # No FIELDSYNC_* setting of the calling shell leaks in: only what the test passes.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
        environment = {**inherited, "FIELDSYNC_DATABASE_URL": database_url, **(env or {})}
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        for attempt in range(1 if port else 3):
            self._start(tmp_path, port or free_port(), options, environment)
            try:
                self.wait_until_up()
                return
            except PortTakenError:
                if port or attempt == 2:
                    raise

    def _start(
        self, tmp_path: Path, port: int, options: tuple[str, ...], environment: dict[str, str]
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.stderr_path = tmp_path / f"serve-{port}.log"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fieldsync", "serve", "--port", str(port), *options],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=tmp_path,
            )

    def wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = PortTakenError if " is in use" in self.stderr() else RuntimeError
                raise error(f"serve exited: {self.stderr()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not start: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free loopback port,
    that a test may stop and start (the machine's shared server is never touched)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="fieldsync-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def start_if_stopped(self) -> None:
        command = [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if subprocess.run(command, capture_output=True, timeout=30).returncode != 0:
            self.start()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None
