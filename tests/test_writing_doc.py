"""The shell examples of docs/writing.md run, in order, against a real `fieldsync serve --demo`
from a scratch directory: upserts, deletes, roles and the upload walk-through, whose download
must match every byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ops_support import ServeProcess, demo_token
from tests.test_newcomer import ROOT, SCRATCH_DIRECTORY, run_shell_examples

# Lines of the setup block this test replaces: the server's URL, a token and the scratch
# directory are its own.
REPLACED = ("export PATH=", SCRATCH_DIRECTORY, "export URL=", "export TOKEN=")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")
def test_the_writing_examples_run_against_a_demo_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    server = ServeProcess(tmp_path, url, "--demo")
    try:
        token = demo_token(url)
        variables = {"FIELDSYNC_DATABASE_URL": url, "URL": f"{server.base}/graphql", "TOKEN": token}
        result = run_shell_examples(ROOT / "docs" / "writing.md", tmp_path, REPLACED, variables)
    finally:
        server.stop()
    output = result.stdout
    assert result.returncode == 0, result.stderr
    assert "HTTP 500" not in output and "INTERNAL_SERVER_ERROR" not in output, output
    assert "every byte matches" in output, output
    assert "tampered link: HTTP 403" in output, output
    assert " notes, Elk River, 2024-06-12." in output
    assert not (ROOT / "notes.txt").exists() and not (ROOT / "scout.json").exists()
