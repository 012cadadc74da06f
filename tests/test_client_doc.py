"""docs/client.md: its shell examples run, in order, against a fresh `fieldsync serve --demo`,
and print what the page shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ops_support import ServeProcess, demo_token
from tests.test_newcomer import ROOT, SCRATCH_DIRECTORY, run_shell_examples

REPLACED = (
    "export PATH=",
    SCRATCH_DIRECTORY,
    "export FIELDSYNC_SERVER=",
    "export FIELDSYNC_TOKEN=",
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")
def test_the_client_doc_examples_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    server = ServeProcess(tmp_path, url, "--demo")
    try:
        token = demo_token(url)
        variables = {"FIELDSYNC_SERVER": server.base, "FIELDSYNC_TOKEN": token}
        result = run_shell_examples(ROOT / "docs" / "client.md", tmp_path, REPLACED, variables)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    stdout, stderr = result.stdout, result.stderr
    for shown in (
        "│ images       │   3,922 │       0 │       0 │      0 │   0 B │",
        "exit status 0",
        '{"complete":true,"images":{"created":0,"updated":0,"deleted":0,"failed":0,"bytes":0}}',
        "(2500,)\n('Elevation (full)', 'ELEVATION', 40.0, 'ACRE')",
        "wrote 3,929 features to demo.geojson",
        "3 2500 2500\n0\n1 [(1, 'latitude: must be less than or equal to 90')]\n"
        "NotFoundError NOT_FOUND",
        "uploaded 2 (2 new, 0 updated), skipped 0 already there, 1 without GPS",
        "exit status 3",
        '"uploaded": 0,\n  "skipped": 2,\n  "without_gps": 1,',
        '"camera": "DJI FC6310",\n    "latitude": 45.3251,',
        '"captured_at": "2024-06-12T14:06:00-05:00"',
    ):
        assert shown in stdout, f"{shown!r} not in the output:\n{stdout}\n{stderr}"
    last = stdout.splitlines()[-1]
    assert last.startswith("True ") and last.endswith("== []")
    assert "DJI_0003.JPG: not uploaded: no GPS data in its EXIF" in stderr
    assert not (ROOT / "flight").exists() and not (ROOT / "demo-mirror").exists()
