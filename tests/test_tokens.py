"""Token operations: `token list` (never the secret), revoke by id, the last use noted at most
once a minute without ever making a request wait, and token writes that never wait behind a
bulk load on PostgreSQL and wait clearly (or fail saying the token is STILL VALID) on SQLite."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import Connection, Engine, select, text, update

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.storage import tables as t
from fieldsync.storage.database import WRITER_LOCK_KEY, write_transaction
from fieldsync.tokens import TokenUseRecorder, create_token, revoke_token, token_hash
from tests.worlds import build_world

ME = "{ me { sentera_id } }"
WAITING = "waiting for another writer to finish"


def _fieldsync_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("fieldsync")
    if beside_python.is_file():
        return [str(beside_python)]
    return [sys.executable, "-m", "fieldsync"]


FIELDSYNC = _fieldsync_command()


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `fieldsync` command, with no FIELDSYNC_* settings inherited."""
    result = subprocess.run(
        [*FIELDSYNC, *args], capture_output=True, text=True, timeout=timeout, env=_environment()
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def status_of(engine: Engine, token: str) -> int:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    return executor.run(token, GraphQLRequest(query=ME)).status


def last_used(engine: Engine, token: str) -> datetime | None:
    with engine.connect() as conn:
        moment: datetime | None = conn.execute(
            select(t.api_tokens.c.last_used_at).where(
                t.api_tokens.c.token_hash == token_hash(token)
            )
        ).scalar_one()
    return moment


def token_id_of(engine: Engine, token: str) -> int:
    with engine.connect() as conn:
        token_id: int = conn.execute(
            select(t.api_tokens.c.id).where(t.api_tokens.c.token_hash == token_hash(token))
        ).scalar_one()
    return token_id


# -- token list, revoke by id ------------------------------------------------------------------


def test_token_list_shows_every_token_of_a_user_but_never_a_secret(
    engine: Engine, database_url: str
) -> None:
    world = build_world(engine)
    used = create_token(engine, world.user, timedelta(days=30))
    expired = create_token(engine, world.user, timedelta(seconds=1))
    revoked = create_token(engine, world.user)
    revoke_token(engine, revoked)
    executor = GraphQLExecutor(
        build_fieldsync_schema(), engine, token_uses=TokenUseRecorder(engine)
    )
    assert executor.run(used, GraphQLRequest(query=ME)).status == 200
    time.sleep(1.1)

    listed = cli("token", "list", world.user, "--json", "--database-url", database_url)
    table = cli("token", "list", world.user, "--database-url", database_url)

    assert listed.returncode == 0 and table.returncode == 0, listed.stderr + table.stderr
    for secret in (used, expired, revoked):
        for shown in (listed.stdout, table.stdout):
            assert secret not in shown and token_hash(secret) not in shown
            assert "fst_" not in shown
    entries = json.loads(listed.stdout)
    ids = [token_id_of(engine, token) for token in (used, expired, revoked)]
    assert [entry["id"] for entry in entries] == ids
    assert [entry["status"] for entry in entries] == ["active", "expired", "revoked"]
    assert set(entries[0]) == {
        "id",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }
    assert entries[0]["last_used_at"] is not None and entries[0]["expires_at"] is not None
    assert entries[1]["last_used_at"] is None and entries[2]["revoked_at"] is not None
    assert entries[2]["expires_at"] is None
    assert all(entry["created_at"].endswith("Z") for entry in entries)

    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "status", "created", "expires", "revoked", "last", "used"]
    assert [line.split()[:2] for line in lines[1:]] == [
        [str(ids[0]), "active"],
        [str(ids[1]), "expired"],
        [str(ids[2]), "revoked"],
    ]

    unknown = cli("token", "list", "nobody", "--database-url", database_url)
    assert unknown.returncode == 1 and "no user 'nobody'" in unknown.stderr


def test_a_token_is_revoked_by_its_id_and_still_by_its_secret(
    engine: Engine, database_url: str
) -> None:
    world = build_world(engine)
    by_id, by_secret = create_token(engine, world.user), create_token(engine, world.user)
    token_id = token_id_of(engine, by_id)

    revoked = cli("token", "revoke", str(token_id), "--database-url", database_url)

    assert revoked.returncode == 0 and revoked.stderr.strip() == "revoked", revoked.stderr
    assert WAITING not in revoked.stderr
    assert status_of(engine, by_id) == 401
    assert status_of(engine, by_secret) == 200
    again = cli("token", "revoke", str(token_id), "--database-url", database_url)
    assert again.returncode == 1
    assert f"no token with id {token_id}, or it was revoked already" in again.stderr
    assert cli("token", "revoke", by_secret, "--database-url", database_url).returncode == 0
    assert status_of(engine, by_secret) == 401
    neither = cli("token", "revoke", "my-token", "--database-url", database_url)
    assert neither.returncode != 0 and "neither a token" in neither.stderr


# -- last use ----------------------------------------------------------------------------------


def test_the_last_use_is_written_at_most_once_a_minute_across_processes(engine: Engine) -> None:
    world = build_world(engine)
    token = create_token(engine, world.user)
    schema = build_fieldsync_schema()
    # Two executors with their own recorders stand for two worker processes.
    first, second = (
        GraphQLExecutor(schema, engine, token_uses=TokenUseRecorder(engine)) for _ in range(2)
    )
    assert last_used(engine, token) is None

    assert first.run(token, GraphQLRequest(query=ME)).status == 200
    noted = last_used(engine, token)
    assert noted is not None
    for executor in (first, second, first):
        assert executor.run(token, GraphQLRequest(query=ME)).status == 200
    assert last_used(engine, token) == noted

    # A minute later the next use is noted again (here by a third process).
    earlier = noted - timedelta(minutes=2)
    with engine.begin() as conn:
        conn.execute(update(t.api_tokens).values(last_used_at=earlier))
    third = GraphQLExecutor(schema, engine, token_uses=TokenUseRecorder(engine))
    assert third.run(token, GraphQLRequest(query=ME)).status == 200
    latest = last_used(engine, token)
    assert latest is not None and latest > earlier


def hold_the_token_row(conn: Connection, token: str) -> None:
    """Lock the token's row as a load deleting its user would, plus the writer lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
        conn.execute(
            select(t.api_tokens.c.id)
            .where(t.api_tokens.c.token_hash == token_hash(token))
            .with_for_update()
        )
    else:
        conn.execute(update(t.users).values(first_name="Busy"))


def test_noting_the_last_use_never_makes_a_request_wait_for_a_writer(engine: Engine) -> None:
    world = build_world(engine)
    token = create_token(engine, world.user)
    recorder = TokenUseRecorder(engine, retry_after_skip=timedelta(0))
    executor = GraphQLExecutor(build_fieldsync_schema(), engine, token_uses=recorder)

    with write_transaction(engine) as load:
        hold_the_token_row(load, token)
        started = time.monotonic()
        assert executor.run(token, GraphQLRequest(query=ME)).status == 200
        elapsed = time.monotonic() - started
    assert elapsed < 2, f"a request waited {elapsed:.1f} s behind a writer"
    assert last_used(engine, token) is None  # skipped, not waited for

    assert executor.run(token, GraphQLRequest(query=ME)).status == 200
    assert last_used(engine, token) is not None  # and written once the writer is gone


# -- token writes while a load holds the database ---------------------------------------------


def test_postgresql_token_commands_do_not_wait_behind_a_load(
    engine: Engine, database_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite one writer at a time is the file's nature (tested below)")
    world = build_world(engine)
    token = create_token(engine, world.user)

    with write_transaction(engine) as load:
        load.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
        load.execute(update(t.users).values(first_name="Busy"))
        started = time.monotonic()
        revoked = cli("token", "revoke", token, "--database-url", database_url, timeout=60)
        created = cli("token", "create", world.user, "--database-url", database_url, timeout=60)
        elapsed = time.monotonic() - started
        assert revoked.returncode == 0, revoked.stderr
        assert created.returncode == 0 and created.stdout.startswith("fst_"), created.stderr
        assert WAITING not in revoked.stderr + created.stderr
        assert status_of(engine, token) == 401  # revoked while the load still runs
    assert elapsed < 20, f"token commands took {elapsed:.1f} s behind a load"
    assert status_of(engine, created.stdout.strip()) == 200


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*FIELDSYNC, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )


def wait_for_line(stream: IO[str], expected: str, timeout: float = 30) -> str:
    """The first line of a child's output that contains `expected` (read with a deadline)."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.2):
            line = stream.readline()
            if expected in line:
                return line
            assert line, f"output ended before {expected!r}"
    raise AssertionError(f"no {expected!r} within {timeout} s")


def test_sqlite_revoke_waits_for_a_load_with_a_message_and_then_revokes(
    engine: Engine, database_url: str
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL token writes do not wait behind a load (tested above)")
    world = build_world(engine)
    token = create_token(engine, world.user)

    with write_transaction(engine) as load:
        load.execute(update(t.users).values(first_name="Busy"))
        revoking = start_cli("token", "revoke", token, "--database-url", database_url)
        assert revoking.stderr is not None
        assert WAITING in wait_for_line(revoking.stderr, WAITING)
        time.sleep(0.5)
        assert revoking.poll() is None  # still waiting, not failed
    # The load committed: the revocation goes through.
    stdout, stderr = revoking.communicate(timeout=60)
    assert revoking.returncode == 0, stderr
    assert stderr.strip() == "revoked" and "Traceback" not in stderr + stdout
    assert status_of(engine, token) == 401


def test_sqlite_token_commands_that_cannot_wait_long_enough_say_nothing_changed(
    engine: Engine, database_url: str
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL token writes do not wait behind a load (tested above)")
    world = build_world(engine)
    token = create_token(engine, world.user)

    with write_transaction(engine) as load:
        load.execute(update(t.users).values(first_name="Busy"))
        revoked = cli("token", "revoke", token, "--write-wait", "2", "--database-url", database_url)
        by_id = cli(
            "token", "revoke", str(token_id_of(engine, token)), "--write-wait", "1",
            "--database-url", database_url,
        )  # fmt: skip
        created = cli(
            "token", "create", world.user, "--write-wait", "1", "--database-url", database_url
        )

    for result in (revoked, by_id, created):
        assert result.returncode == 1
        assert WAITING in result.stderr and "database is locked" not in result.stderr
        assert "another writer (e.g. a load) held the database for more than" in result.stderr
    assert "nothing was revoked: the token is STILL VALID" in revoked.stderr
    assert "STILL VALID" in by_id.stderr
    assert "no token was created" in created.stderr and created.stdout == ""
    assert status_of(engine, token) == 200  # indeed still valid
