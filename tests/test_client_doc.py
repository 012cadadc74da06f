"""docs/client.md: its shell examples run, in order, against a fresh `fieldsync serve --demo`,
and print what the page shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fieldsync.storage.database import make_engine
from fieldsync.tokens import create_token
from tests.ops_support import ServeProcess
from tests.test_newcomer import ROOT, SCRATCH_DIRECTORY, shell_examples

DEMO_USER = "uhb3jhj_US_AcmeAg_FS_demo_1a2b3c4_240301_153000"
REPLACED = (
    "export PATH=",
    SCRATCH_DIRECTORY,
    "export FIELDSYNC_SERVER=",
    "export FIELDSYNC_TOKEN=",
)


@pytest.mark.slow
def test_the_client_doc_examples_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    server = ServeProcess(tmp_path, url, "--demo")
    try:
        engine = make_engine(url)
        token = create_token(engine, DEMO_USER)
        engine.dispose()
        stdout, stderr = run_examples(tmp_path, server.base, token)
    finally:
        server.stop()
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


def run_examples(tmp_path: Path, server: str, token: str) -> tuple[str, str]:
    examples = [example for example, _ in shell_examples(ROOT / "docs" / "client.md")]
    setup, steps = examples[0], examples[1:]
    assert SCRATCH_DIRECTORY in setup
    kept = [line for line in setup.splitlines() if not line.startswith(REPLACED)]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    environment.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        FIELDSYNC_SERVER=server,
        FIELDSYNC_TOKEN=token,
    )
    result = subprocess.run(
        ["bash", "-c", "\n".join([*kept, *steps])],
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, result.stderr
