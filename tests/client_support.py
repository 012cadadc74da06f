"""A world served by a real `fieldsync serve` process, and `fieldsync pull` run against it as a
user would: a subprocess, its JSON summary read back, its mirror compared with the database."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from fieldsync.client import FieldSyncClient
from fieldsync.client.queries import KINDS
from fieldsync.storage import tables
from fieldsync.tokens import create_token
from tests.blob_support import md5_b64
from tests.builder import Changeset, World, build_world, field_record, image_record, numbered_id
from tests.ops_support import ServeProcess

FIELDS_ADDED = 620  # with the world's own, three pages of sync_fields (300 a page)
IMAGES_ADDED = 2_300  # with the world's own, three pages of sync_images (1,000 a page)
TAIL = "Acme_CV_test_abc123_240101_000000"
SERVE_OPTIONS = ("--rate-limit", "0")


def client_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}


def grow(engine: Engine, world: World, *, fields: int) -> None:
    """`fields` more fields in the world's organization and many images in its survey."""
    changeset = Changeset(actor=world.user)
    changeset.add(
        "fields", *(field_record(numbered_id("fx", n, "AS", TAIL), world.org, name=f"Field {n}")
                    for n in range(fields))
    )  # fmt: skip
    changeset.add(
        "images",
        *(image_record(numbered_id("ix", n, "IM", TAIL), world.survey, f"IMG_{n:05d}.JPG")
          for n in range(IMAGES_ADDED)),
    )  # fmt: skip
    changeset.apply(engine)


def server_hashes(engine: Engine) -> dict[str, dict[str, str]]:
    """Every live item of every synced type, sentera_id -> content hash, from the database."""
    found: dict[str, dict[str, str]] = {}
    with engine.connect() as conn:
        for name in KINDS:
            table = getattr(tables, name)
            rows = conn.execute(
                select(table.c.sentera_id, table.c.content_hash).where(table.c.deleted_at.is_(None))
            )
            found[name] = {sid: base64.b64encode(digest).decode() for sid, digest in rows}
    return found


def mirror_hashes(directory: Path) -> dict[str, dict[str, str]]:
    with sqlite3.connect(directory / "mirror.sqlite") as db:
        return {
            name: dict(db.execute(f"SELECT sentera_id, content_hash FROM {name}").fetchall())
            for name in KINDS
        }


def mirror_rows(directory: Path, table: str) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(directory / "mirror.sqlite") as db:
        db.row_factory = sqlite3.Row
        return {row["sentera_id"]: dict(row) for row in db.execute(f"SELECT * FROM {table}")}


@dataclass
class PullSetup:
    """A grown world behind a `fieldsync serve` process, and a token of its user."""

    engine: Engine
    database_url: str
    tmp_path: Path
    world: World
    server: ServeProcess
    token: str

    @property
    def mirror(self) -> Path:
        return self.tmp_path / "mirror"

    def command(self, *options: str, directory: Path | None = None) -> list[str]:
        return [
            sys.executable, "-m", "fieldsync", "pull", "--server", self.server.base,
            "--to", str(directory or self.mirror), "--token", self.token, "--json", *options,
        ]  # fmt: skip

    def pull(self, *options: str, expect: int = 0) -> dict[str, Any]:
        """Run a pull to its end; its JSON summary."""
        done = subprocess.run(
            self.command(*options),
            env=client_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == expect, done.stderr + done.stdout
        assert "Traceback" not in done.stderr, done.stderr
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary

    def start_pull(self, *options: str) -> subprocess.Popen[str]:
        """A pull running in the background, which Ctrl-C (SIGINT) stops as at a terminal."""
        return subprocess.Popen(
            self.command(*options),
            env=client_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_sigint_as_at_a_terminal,
        )

    def client(self) -> FieldSyncClient:
        return FieldSyncClient(self.server.base, self.token)

    def restart_server(self) -> None:
        self.server.stop()
        self.server = ServeProcess(
            self.tmp_path, self.database_url, *SERVE_OPTIONS, port=self.server.port
        )

    def attach_bytes(self, owner: tuple[str, str], name: str, data: bytes) -> str:
        """Upload `data` as a new file of `owner` through the API; the file's sentera_id."""
        with self.client() as client:
            upload = client.execute(
                "mutation U($f: String!, $n: BigInt!, $c: String!) { u: create_file_upload("
                "filename: $f, byte_size: $n, checksum: $c, content_type: "
                '"application/octet-stream") { id upload_url headers } }',
                {"f": name, "n": len(data), "c": md5_b64(data)},
            )["u"]
            put = httpx.put(upload["upload_url"], content=data, headers=upload["headers"])
            assert put.status_code == 200, put.text
            result = client.upsert_files(
                owner, [{"filename": name, "file_type": "OTHER", "file_key": upload["id"]}]
            )
        assert not result.failed, result.failed
        sentera_id: str = result.succeeded[0]["sentera_id"]
        return sentera_id

    def stop(self) -> None:
        self.server.stop()


def _sigint_as_at_a_terminal() -> None:
    """SIGINT back to its default in the pull's process. A shell starting the test run in the
    background without job control (`bash -c '… &'`, nohup) makes every process under it
    ignore SIGINT, and Python then leaves it ignored: the pull would not see a Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pull_setup(engine: Engine, database_url: str, tmp_path: Path, *, fields: int = 0) -> PullSetup:
    """The world grown by many images (and `fields` fields), served with no rate limit (a
    pull of many small scopes would otherwise wait for the limit's window to pass)."""
    world = build_world(engine)
    grow(engine, world, fields=fields)
    token = create_token(engine, world.user)
    server = ServeProcess(tmp_path, database_url, *SERVE_OPTIONS)
    return PullSetup(engine, database_url, tmp_path, world, server, token)
