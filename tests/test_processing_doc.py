"""The shell examples of docs/processing.md run, in order, against a real `fieldsync serve
--demo` on the embedded default: a GeoTIFF made, uploaded and imported becomes a valid COG
through the in-process worker, with nothing written into the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ops_support import ServeProcess, demo_token
from tests.test_newcomer import ROOT, SCRATCH_DIRECTORY, run_shell_examples

REPLACED = ("export PATH=", SCRATCH_DIRECTORY, "export URL=", "export TOKEN=")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")
def test_the_processing_examples_run_against_a_demo_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    server = ServeProcess(tmp_path, url, "--demo")
    try:
        token = demo_token(url)
        variables = {"FIELDSYNC_DATABASE_URL": url, "URL": f"{server.base}/graphql", "TOKEN": token}
        result = run_shell_examples(ROOT / "docs" / "processing.md", tmp_path, REPLACED, variables)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["PUT: HTTP 200", '{"status":"PENDING"}'], result.stdout
    assert '{"status":"SUCCESS","max_zoom":21,"error":null}' in lines, result.stdout
    assert "elk-river-cog.tif is a valid cloud optimized GeoTIFF" in lines, result.stdout
    assert "tile: HTTP 200 image/png" in lines, result.stdout
    assert lines[-1].startswith(f"{server.base}/map/61sgabq_CO_AcmeAg"), result.stdout
    assert not (ROOT / "elk-river.tif").exists() and not (ROOT / "elk-river-cog.tif").exists()
