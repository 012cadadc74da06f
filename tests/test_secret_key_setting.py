"""A FIELDSYNC_SECRET_KEY too short to sign links with is refused before serve starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.test_db_commands import FIELDSYNC


def test_a_short_secret_key_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env["FIELDSYNC_SECRET_KEY"] = "too-short"
    database = tmp_path / "fieldsync.db"
    result = subprocess.run(
        [*FIELDSYNC, "serve", "--database-url", f"sqlite:///{database}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FIELDSYNC_SECRET_KEY must hold at least 16 characters" in result.stderr
    assert "Traceback" not in result.stderr
    assert not database.exists()
