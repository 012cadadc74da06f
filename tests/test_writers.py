"""Writers take turns: `fieldsync load` waits for another writer with one clear line, up to
`--write-wait` / FIELDSYNC_WRITE_WAIT seconds, then fails with one clear line and exit code 1,
nothing written. The other writer is a real write transaction held open by the test."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.storage.database import write_transaction
from tests.test_db_commands import FIELDSYNC

ORG = "w000001_OR_Writers_CV_test_abc123_240101_000000"
NEW_ORG = "w000002_OR_Writers_CV_test_abc123_240101_000000"
WAITING = "waiting for another writer to finish"


def organization_count(engine: Engine, sentera_id: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(t.organizations.c.sentera_id == sentera_id)
        return int(conn.execute(query).scalar_one())


def start_load(database_url: str, tmp_path: Path, write_wait: float) -> subprocess.Popen[str]:
    """`fieldsync load` of a changeset that adds NEW_ORG, as a real process."""
    changeset = tmp_path / "new-org.json"
    document = {"upsert": {"organizations": [{"sentera_id": NEW_ORG, "name": "New"}]}}
    changeset.write_text(json.dumps(document), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(FIELDSYNC_DATABASE_URL=database_url, FIELDSYNC_WRITE_WAIT=str(write_wait))
    return subprocess.Popen(
        [*FIELDSYNC, "load", str(changeset)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def hold_the_lock(engine: Engine) -> None:
    apply_changeset(engine, {"upsert": {"organizations": [{"sentera_id": ORG, "name": "Old"}]}})


def test_load_waits_for_a_writer_then_writes(engine: Engine, database_url: str, tmp_path) -> None:
    hold_the_lock(engine)
    with write_transaction(engine) as conn:
        conn.execute(update(t.organizations).values(name="Being rewritten"))
        load = start_load(database_url, tmp_path, write_wait=120)
        assert load.stderr is not None
        first_line = load.stderr.readline()  # printed while this transaction still runs
        assert WAITING in first_line, first_line
        assert load.poll() is None
    out, err = load.communicate(timeout=120)
    assert load.returncode == 0, err
    assert out.strip() == "created 1, updated 0, unchanged 0, deleted 0"
    assert WAITING not in err  # said once
    assert "Traceback" not in err
    assert organization_count(engine, NEW_ORG) == 1


def test_load_gives_up_after_the_bound_with_one_line(
    engine: Engine, database_url: str, tmp_path
) -> None:
    hold_the_lock(engine)
    with write_transaction(engine) as conn:
        conn.execute(update(t.organizations).values(name="Being rewritten"))
        started = time.monotonic()
        load = start_load(database_url, tmp_path, write_wait=3)
        out, err = load.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert load.returncode == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert WAITING in lines[0] and "up to 3 s" in lines[0]
    assert lines[1] == (
        "Error: another writer held the database for more than 3 s; nothing was written: try "
        "again when it has finished (--write-wait sets how long to wait)"
    )
    assert 3 <= elapsed < 30
    assert organization_count(engine, NEW_ORG) == 0


def test_load_on_a_free_database_does_not_wait(engine: Engine, database_url: str, tmp_path):
    load = start_load(database_url, tmp_path, write_wait=0)
    out, err = load.communicate(timeout=60)
    assert load.returncode == 0, err
    assert err == ""
    assert out.strip() == "created 1, updated 0, unchanged 0, deleted 0"
    assert organization_count(engine, NEW_ORG) == 1
