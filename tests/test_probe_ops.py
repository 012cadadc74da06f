"""What an operator meets at the command line: bad changeset files, a closed standard input and
a database URL that names no file each get one clear line and an exit code, never a traceback
or a database that vanishes when the command ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from fieldsync.storage.database import normalize_url
from tests.ops_support import (
    ME,
    SYNC_IMAGES,
    ServeProcess,
    table_locked,
    wait_for_lock_waiters,
)
from tests.test_db_commands import FIELDSYNC, cli, no_traceback

DEMO_USER = "uhb3jhj_US_AcmeAg_FS_demo_1a2b3c4_240301_153000"
DEMO_SURVEY = "61sgabq_CO_AcmeAg_FS_demo_1a2b3c4_240610_140200"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    created = cli("db", "upgrade", "--database-url", url)
    assert created.returncode == 0, created.stderr
    return url


def test_a_deeply_nested_changeset_is_rejected_with_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    changeset = tmp_path / "deep.json"
    changeset.write_text('{"a":' * 100_000, encoding="utf-8")
    result = cli("load", str(changeset), "--database-url", sqlite_url)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "not valid JSON for a changeset: nested too deeply",
        "changeset rejected: 1 error(s); nothing was written",
    ]


@pytest.mark.parametrize("content", ["", "   \n\t  "])
def test_an_empty_changeset_says_it_is_empty(sqlite_url: str, tmp_path: Path, content: str) -> None:
    changeset = tmp_path / "empty.json"
    changeset.write_text(content, encoding="utf-8")
    result = cli("load", str(changeset), "--database-url", sqlite_url)
    no_traceback(result)
    assert result.returncode == 1
    assert "the changeset is empty" in result.stderr.splitlines()[0]


def test_load_from_a_closed_standard_input_says_so(sqlite_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    result = subprocess.run(
        [*FIELDSYNC, "load", "-", "--database-url", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=lambda: os.close(0),
    )
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: no standard input to read the changeset from ('-')"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
@pytest.mark.parametrize(
    "command",
    [("token", "list", "uhb3jhj_US_AcmeAg_FS_demo_1a2b3c4_240301_153000"), ("db", "upgrade")],
)
def test_a_sqlite_url_without_a_file_is_refused(url: str, command: tuple[str, ...]) -> None:
    result = cli(*command, "--database-url", url)
    no_traceback(result)
    assert result.returncode == 2
    assert "names no file" in result.stderr
    assert "use sqlite:///PATH" in result.stderr


def test_worker_processes_log_each_request_once(
    new_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    """With several workers, uvicorn's access log stays off: one line per request, ours."""
    server = ServeProcess(tmp_path, new_postgres_database(), "--workers", "2")
    try:
        for _ in range(4):
            assert httpx.post(server.base + "/graphql", json={"query": ME}).status_code == 401
    finally:
        server.stop()
    log = server.stderr()
    assert "uvicorn.access" not in log
    request_lines = [line for line in log.splitlines() if '"logger": "fieldsync.request"' in line]
    assert len(request_lines) == 4


def writer_lock_holder(engine: Engine, timeout: float = 60) -> int:
    """The backend that holds the writers' advisory lock (a load in its transaction)."""
    query = text(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pid = conn.execute(query).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.02)
    raise AssertionError("no load took the writers' lock")


def test_a_load_whose_connection_is_lost_fails_with_one_line(
    new_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_postgres_database()
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    root = "o000001_OR_Lost_CV_test_abc123_240101_000000"
    children = [{"name": f"O{i}", "parent_organization_id": root} for i in range(30_000)]
    changeset = tmp_path / "big.json"
    document = {"upsert": {"organizations": [{"sentera_id": root, "name": "Root"}, *children]}}
    changeset.write_text(json.dumps(document), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    load = subprocess.Popen(
        [*FIELDSYNC, "load", str(changeset), "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    engine = create_engine(normalize_url(url))
    try:
        holder = writer_lock_holder(engine)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        out, err = load.communicate(timeout=120)
        with engine.connect() as conn:
            organizations = conn.execute(text("SELECT count(*) FROM organizations")).scalar()
    finally:
        engine.dispose()
    assert "Traceback" not in err, err
    assert load.returncode == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: the database failed during 'load': ")
    assert "run it again when the database is back" in lines[0]
    assert organizations == 0


@pytest.mark.parametrize("side", ["--from", "--to"])
def test_db_copy_refuses_a_sqlite_url_without_a_file(sqlite_url: str, side: str) -> None:
    other = "--to" if side == "--from" else "--from"
    result = cli("db", "copy", side, "sqlite://", other, sqlite_url)
    no_traceback(result)
    assert result.returncode == 2
    assert "'sqlite://' names no file" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "option"),
    [
        ("FIELDSYNC_PORT", "70000", "--port"),
        ("FIELDSYNC_WORKERS", "0", "--workers"),
        ("FIELDSYNC_LOG_LEVEL", "verbose", "--log-level"),
        ("FIELDSYNC_REQUEST_TIMEOUT", "-1", "--request-timeout"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(variable: str, value: str, option: str) -> None:
    env = {key: val for key, val in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env[variable] = value
    result = subprocess.run(
        [*FIELDSYNC, "serve"], capture_output=True, text=True, timeout=60, env=env
    )
    no_traceback(result)
    assert result.returncode == 2
    assert f"Error: Invalid value for {variable} (for '{option}'): " in result.stderr


def test_shutdown_stops_the_database_work_of_a_cancelled_request(
    new_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    """One worker, a request held by a lock: after Ctrl-C the process exits within
    --shutdown-timeout and a little, not when the request's own time limit runs out."""
    url = new_postgres_database()
    server = ServeProcess(
        tmp_path, url, "--demo", "--shutdown-timeout", "1", "--request-timeout", "40"
    )
    token = cli("token", "create", DEMO_USER, "--database-url", url).stdout.strip()
    answers: list[httpx.Response] = []
    variables = {"s": DEMO_SURVEY}
    headers = {"Authorization": f"Bearer {token}"}

    def sync() -> None:
        body = {"query": SYNC_IMAGES, "variables": variables}
        answers.append(httpx.post(server.base + "/graphql", json=body, headers=headers, timeout=60))

    try:
        with table_locked(url, "images"):
            client = threading.Thread(target=sync)
            client.start()
            wait_for_lock_waiters(url, 1)
            started = time.monotonic()
            server.process.send_signal(signal.SIGINT)  # Ctrl-C
            server.process.wait(timeout=60)
            exited_after = time.monotonic() - started
            client.join(timeout=60)
    finally:
        server.stop()
    assert exited_after < 10, exited_after
    assert [answer.status_code for answer in answers] == [503]
    assert "Traceback" not in server.stderr()
