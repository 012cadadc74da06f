"""What an operator meets at the command line: bad changeset files, a closed standard input and
a database URL that names no file each get one clear line and an exit code, never a traceback
or a database that vanishes when the command ends."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.ops_support import ME, ServeProcess
from tests.test_db_commands import FIELDSYNC, cli, no_traceback


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
