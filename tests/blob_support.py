"""What the blob tests share: a FieldSync server and upload context over each blob store
(a local directory, or a fresh bucket on the moto server behind its verifying front), the
test user's id, and small HTTP functions."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from fieldsync.blobs.context import BlobContext, BlobSettings, blob_context
from fieldsync.blobs.s3 import s3_client
from fieldsync.config import Settings
from fieldsync.storage import tables as t
from fieldsync.storage.database import write_transaction
from fieldsync.tokens import create_token
from tests.builder import World, build_world
from tests.ops_support import ThreadServer
from tests.s3_support import S3Server


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def user_id(engine: Engine, sentera_id: str) -> int:
    with engine.connect() as conn:
        found: int = conn.execute(
            select(t.users.c.id).where(t.users.c.sentera_id == sentera_id)
        ).scalar_one()
    return found


@dataclass
class BlobEnv:
    """A running server on one store, the upload context and the world's user."""

    kind: str
    engine: Engine
    server: ThreadServer
    ctx: BlobContext
    world: World
    user: int
    root: Path | None  # the local store's directory
    s3: S3Server | None
    bucket: str | None

    @property
    def base(self) -> str:
        return self.server.base

    def tx(self) -> Any:
        return write_transaction(self.engine)

    def s3_keys(self) -> list[str]:
        assert self.bucket is not None
        client = s3_client()
        listed = client.list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listed.get("Contents", [])]

    def stored_files(self) -> list[str]:
        """Every object or file of the store, relative names."""
        if self.root is not None:
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        return sorted(self.s3_keys())


CREATE_UPLOAD = """
mutation($name: String!, $size: BigInt!, $md5: String!, $type: String!) {
  create_file_upload(filename: $name, byte_size: $size, checksum: $md5, content_type: $type) {
    id upload_url headers
  }
}"""


class Api:
    """GraphQL calls over the env's server as one user (the world's user by default)."""

    def __init__(self, env: BlobEnv, user: str | None = None) -> None:
        self.env = env
        self.token = create_token(env.engine, user or env.world.user)

    def call(self, document: str, **variables: Any) -> dict[str, Any]:
        response = self.env.server.post(document, self.token, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def data(self, document: str, **variables: Any) -> dict[str, Any]:
        body = self.call(document, **variables)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def upload(
        self, content: bytes, name: str = "notes.pdf", content_type: str = "application/pdf"
    ) -> str:
        ticket = self.data(
            CREATE_UPLOAD,
            name=name,
            size=len(content),
            md5=md5_b64(content),
            type=content_type,
        )["create_file_upload"]
        put = self.env.server.http.put(
            ticket["upload_url"], content=content, headers=ticket["headers"]
        )
        assert put.status_code in (200, 201, 204), put.text
        file_key: str = ticket["id"]
        return file_key


def put(http: httpx.Client, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    return http.put(url, content=body, headers=headers)


def open_blob_env(
    request: pytest.FixtureRequest,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[BlobEnv]:
    """Each blob store, over each database (the `engine` fixture)."""
    monkeypatch.delenv("FIELDSYNC_SECRET_KEY", raising=False)
    s3: S3Server | None = None
    bucket: str | None = None
    root: Path | None = None
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        for name, value in s3.environment().items():
            monkeypatch.setenv(name, value)
        bucket = f"fs-{secrets.token_hex(6)}"
        s3_client().create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/deploy"
    else:
        root = tmp_path / "blobs"
        url = f"file://{root}"
    # COG jobs are run by the tests themselves (tests/processing_support.py), not by serve.
    settings = Settings(database_url=database_url, blob_store=url, cog_worker="off")
    server = ThreadServer(engine, settings)
    world = build_world(engine)
    ctx = blob_context(engine, BlobSettings(store_url=url))
    try:
        yield BlobEnv(
            request.param, engine, server, ctx, world, user_id(engine, world.user), root, s3, bucket
        )
    finally:
        server.stop()
