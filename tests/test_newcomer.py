"""A newcomer's first steps, run as real processes: which commands create a SQLite file (only
`serve` and `db upgrade`, saying so), a busy port refused before anything is written, and a
clear message when the PostgreSQL driver is missing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.conftest import LiveServer
from tests.ops_support import free_port
from tests.test_db_commands import FIELDSYNC, cli, no_traceback

USER = "n000001_US_Newcomer_CV_test_abc123_240101_000000"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


# -- a missing SQLite file ----------------------------------------------------------------------

REFUSING = {
    "load": ("load", "-"),
    "token-create": ("token", "create", USER),
    "token-revoke": ("token", "revoke", "fst_whatever"),
    "db-status": ("db", "status"),
}


@pytest.mark.parametrize("command", list(REFUSING.values()), ids=list(REFUSING))
def test_commands_refuse_a_sqlite_file_that_does_not_exist(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "fieldsync.db"
    result = cli(*command, "--database-url", sqlite_url(missing), stdin="{}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"Error: no database at '{missing}': check the path, or create it with "
        "'fieldsync db upgrade' (or 'fieldsync serve')"
    )
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_a_new_file_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    first = cli("db", "upgrade", "--database-url", sqlite_url(path))
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == f"created new database {path}"
    assert path.is_file()
    again = cli("db", "upgrade", "--database-url", sqlite_url(path))
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stderr
    status = cli("db", "status", "--database-url", sqlite_url(path))
    assert status.returncode == 0 and "up to date" in status.stdout


@pytest.mark.parametrize("command", [("db", "upgrade"), ("db", "status"), ("load", "-")])
def test_a_missing_directory_is_an_error_and_is_not_created(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "no-such-dir" / "fieldsync.db"
    result = cli(*command, "--database-url", sqlite_url(path), stdin="{}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: no directory '{path.parent}' for the SQLite database '{path}': create the "
        "directory first, or fix the path"
    )
    assert not path.parent.exists()
    no_traceback(result)


def start_serve(*args: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    return subprocess.Popen(
        [*FIELDSYNC, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def serve_stderr_until_started(process: subprocess.Popen[str]) -> list[str]:
    """stderr lines up to uvicorn's 'Uvicorn running' line; the process is stopped after."""
    assert process.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Uvicorn running" in line:
                break
    finally:
        process.terminate()
        process.communicate(timeout=30)
    return lines


def test_serve_creates_a_new_file_once_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "fieldsync.db"
    port = str(free_port())
    first = serve_stderr_until_started(
        start_serve("--port", port, "--database-url", sqlite_url(path))
    )
    assert f"created new database {path}" in first
    assert any("Uvicorn running" in line for line in first), first
    second = serve_stderr_until_started(
        start_serve("--port", port, "--database-url", sqlite_url(path))
    )
    assert any("Uvicorn running" in line for line in second), second
    assert not any("created new database" in line for line in second)


# -- a busy port --------------------------------------------------------------------------------


def test_serve_demo_on_a_busy_port_writes_nothing(tmp_path: Path, busy_port: int) -> None:
    path = tmp_path / "fieldsync.db"
    process = start_serve("--demo", "--port", str(busy_port), "--database-url", sqlite_url(path))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "fst_" not in out + err
    assert out == ""
    assert (
        err.strip() == f"Error: port {busy_port} on 127.0.0.1 is in use: choose another with --port"
    )
    assert not path.exists()  # no database, no demo, no token


def test_serve_with_workers_on_sqlite_refuses_before_creating_anything(tmp_path: Path) -> None:
    path = tmp_path / "fieldsync.db"
    result = cli("serve", "--workers", "2", "--database-url", sqlite_url(path))
    assert result.returncode == 2
    no_traceback(result)
    assert "--workers above 1 needs PostgreSQL" in result.stderr
    assert not path.exists()


# -- the PostgreSQL driver ----------------------------------------------------------------------


def test_missing_postgresql_driver_names_the_extra() -> None:
    blocked = (
        "import sys; sys.modules['psycopg'] = None; "  # as if psycopg were not installed
        "from fieldsync.cli import main; sys.argv[0] = 'fieldsync'; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "db", "status", "--database-url", "postgresql://u@h/db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "pip install 'fieldsync[postgresql]'" in result.stderr
    assert "ModuleNotFoundError" not in result.stderr
    no_traceback(result)


# -- GraphiQL without internet ------------------------------------------------------------------

ASSET_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
}


def page_references(html: str) -> list[str]:
    """Every src= and href= of a page, in order."""
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


def test_graphiql_page_and_its_assets_come_from_the_server(live_server: LiveServer) -> None:
    page = live_server.http.get(live_server.url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = page_references(page.text)
    assert len(references) == 4, references  # GraphiQL's stylesheet and three scripts
    assert "://" not in page.text, "the page names an external host"
    for reference in references:
        assert urlsplit(reference).netloc == "", reference
        asset = live_server.http.get(urljoin(live_server.url, reference))
        assert asset.status_code == 200, reference
        content_type = asset.headers["content-type"].split(";")[0]
        assert content_type in ASSET_TYPES[Path(reference).suffix], (reference, content_type)
        assert len(asset.content) > 1000
    graphiql = live_server.http.get(urljoin(live_server.url, "graphql/static/graphiql.min.js"))
    assert b"window.GraphiQL" in graphiql.content


def test_graphiql_assets_and_their_licenses_are_package_data() -> None:
    import fieldsync.api

    static = Path(fieldsync.api.__file__).with_name("static")
    names = {path.name for path in static.iterdir()}
    assert {
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "LICENSE.graphiql",
        "LICENSE.react",
        "LICENSE.react-dom",
    } <= names
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8")
    assert '"api/static/*"' in pyproject


# -- the examples in the docs -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
# A shell redirection into a relative path (`> farm.json`), not `2>&1`, `->` or `>=`.
WRITES_A_FILE = re.compile(r"(?<![0-9&=<>-])>\s*([A-Za-z_][\w.-]*)")
SCRATCH_DIRECTORY = 'cd "$(mktemp -d)"'


def shell_examples(path: Path) -> list[tuple[str, str | None]]:
    """Each ```sh block of a document, with the ```text block right after it (its output)."""
    text = path.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    examples: list[tuple[str, str | None]] = []
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        if block.group(1) != "sh":
            continue
        adjacent = following is not None and not text[block.end() : following.start()].strip()
        output = (
            following.group(2) if following and adjacent and following.group(1) == "text" else None
        )
        examples.append((block.group(2), output))
    return examples


def run_shell_examples(
    path: Path, tmp_path: Path, replaced: tuple[str, ...], variables: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a document's shell examples in order, as one script in a scratch directory: the
    first block's setup less the lines starting with `replaced` (the test sets `variables`
    instead), then every other block. Only the test's own FIELDSYNC_* variables are set."""
    examples = [example for example, _ in shell_examples(path)]
    setup, steps = examples[0], examples[1:]
    assert SCRATCH_DIRECTORY in setup
    kept = [line for line in setup.splitlines() if not line.startswith(replaced)]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment.update(variables)
    return subprocess.run(
        ["bash", "-c", "\n".join([*kept, *steps])],
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.name for path in DOCUMENTS])
def test_doc_examples_write_files_only_into_a_scratch_directory(path: Path) -> None:
    moved = False
    for example, _ in shell_examples(path):
        moved = moved or SCRATCH_DIRECTORY in example
        written = WRITES_A_FILE.findall(example)
        assert moved or not written, (
            f"{path.name}: an example writes {written} before any `{SCRATCH_DIRECTORY}`"
        )


def test_changeset_examples_run_from_a_scratch_directory(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fieldsync.db")
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env["PATH"] = f"{Path(FIELDSYNC[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FIELDSYNC_DATABASE_URL"] = url
    examples = shell_examples(ROOT / "docs" / "changeset.md")
    setup = [example for example, _ in examples if SCRATCH_DIRECTORY in example]
    assert len(setup) == 1  # replaced here by `scratch` and the test database
    checked = 0
    for example, output in examples:
        if example in setup:
            continue
        result = subprocess.run(
            ["bash", "-c", example],
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        if output is not None:
            assert result.stdout == output, example
            checked += 1
    assert checked == 5
    assert {"farm.json", "broken.json", "delete-survey.json"} <= {p.name for p in scratch.iterdir()}
    for name in ("farm.json", "broken.json", "delete-survey.json"):
        assert not (ROOT / name).exists()


def test_psycopg_is_a_default_dependency_and_the_extra_still_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(dependency.startswith("psycopg[binary]") for dependency in project["dependencies"])
    assert project["optional-dependencies"]["postgresql"] == []
