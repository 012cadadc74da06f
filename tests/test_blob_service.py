"""The upload services' rules and gc, store URLs, settings and the shared signing key; and
proof that the S3 front is needed (moto alone accepts a tampered link)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, update

from fieldsync.blobs import uploads
from fieldsync.blobs.context import open_blob_store, signing_key
from fieldsync.blobs.gc import GRACE, GcReport, collect_garbage
from fieldsync.blobs.local import LocalBlobStore
from fieldsync.blobs.s3 import S3BlobStore
from fieldsync.blobs.store import BlobStoreUrlError, blob_key
from fieldsync.config import Settings, SettingsError
from fieldsync.errors import FieldSyncError, InvalidArgumentError
from fieldsync.storage import tables as t
from tests.blob_support import BlobEnv, md5_b64
from tests.builder import sid

LIFETIME = 86_400


def create(env: BlobEnv, data: bytes, **overrides: object) -> uploads.UploadTicket:
    values: dict[str, object] = {
        "filename": "a.bin",
        "byte_size": len(data),
        "checksum": md5_b64(data),
        "content_type": None,
    }
    values.update(overrides)
    with env.tx() as conn:
        return uploads.create_upload(conn, env.ctx, env.user, base_url=env.base, **values)  # type: ignore[arg-type]


def sent(env: BlobEnv, data: bytes) -> uploads.UploadTicket:
    ticket = create(env, data)
    answer = env.server.http.put(ticket.upload_url, content=data, headers=ticket.headers)
    assert answer.status_code == 200
    return ticket


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"checksum": "not base64!"}, "not the base64 of a 16-byte MD5"),
        ({"checksum": "AAAA"}, "not the base64 of a 16-byte MD5"),
        ({"byte_size": -1}, "is not from 0 to"),
        ({"byte_size": 5 * 1024**3 + 1}, "create_multipart_file_upload"),
        ({"filename": "  "}, "filename is empty"),
        ({"content_type": "text/\nplain"}, "content_type must be a media type"),
    ],
)
@pytest.mark.parametrize("blob_env", ["local"], indirect=True)
def test_create_upload_refuses_bad_input(
    blob_env: BlobEnv, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        create(blob_env, b"x", **overrides)
    with blob_env.engine.connect() as conn:
        assert conn.execute(select(t.blob_uploads)).all() == []


def test_attach_rules(blob_env: BlobEnv) -> None:
    env = blob_env
    data = os.urandom(300)
    ticket = create(env, data)
    with pytest.raises(uploads.UploadIncompleteError) as incomplete, env.tx() as conn:
        uploads.attach(conn, env.ctx, env.user, ticket.id)
    assert incomplete.value.code == "UPLOAD_INCOMPLETE"
    assert "PUT them to upload_url" in str(incomplete.value)
    env.server.http.put(ticket.upload_url, content=data, headers=ticket.headers)
    with pytest.raises(uploads.UploadNotFoundError), env.tx() as conn:
        uploads.attach(conn, env.ctx, env.user + 999, ticket.id)  # another user's upload
    with (
        pytest.raises(uploads.UploadNotFoundError, match="no upload with file_key"),
        env.tx() as conn,
    ):
        uploads.attach(conn, env.ctx, env.user, "nope")
    later = datetime.now(UTC) + timedelta(seconds=LIFETIME + 1)
    with pytest.raises(uploads.UploadExpiredError, match="has expired"), env.tx() as conn:
        uploads.attach(conn, env.ctx, env.user, ticket.id, now=later)
    with env.tx() as conn:
        first = uploads.attach(conn, env.ctx, env.user, ticket.id)
        again = uploads.attach(conn, env.ctx, env.user, ticket.id)
    assert first == again
    with env.engine.connect() as conn:
        row = conn.execute(select(t.blob_uploads).where(t.blob_uploads.c.id == ticket.id)).one()
    assert row.attached_at is not None and row.blob_key == first.blob_key


def test_prepare_part_rules(blob_env: BlobEnv) -> None:
    env = blob_env
    with env.tx() as conn:
        ticket = uploads.create_multipart_upload(conn, env.ctx, env.user, "m.bin", None)
    for number in (0, 10_001):
        with pytest.raises(InvalidArgumentError, match="part_number"), env.tx() as conn:
            uploads.prepare_part(
                conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, number, env.base
            )
    with pytest.raises(uploads.UploadNotFoundError), env.tx() as conn:
        uploads.prepare_part(conn, env.ctx, env.user, "other/key", ticket.upload_id, 1, env.base)


def _reference(engine: Engine, file_sentera_id: str, key: str) -> None:
    """What attaching does to a file row (the upsert mutations write it)."""
    with engine.begin() as conn:
        conn.execute(
            update(t.files).where(t.files.c.sentera_id == file_sentera_id).values(blob_key=key)
        )


def test_gc_removes_expired_uploads_and_unreferenced_bytes(blob_env: BlobEnv) -> None:
    env = blob_env
    kept_data, dropped_data, pending_data = os.urandom(100), os.urandom(200), os.urandom(300)
    kept = sent(env, kept_data)
    with env.tx() as conn:
        kept_key = uploads.attach(conn, env.ctx, env.user, kept.id).blob_key
    _reference(env.engine, env.world.survey_file, kept_key)
    dropped = sent(env, dropped_data)  # never attached
    with env.tx() as conn:
        multipart = uploads.create_multipart_upload(conn, env.ctx, env.user, "m", None)
        part_url = uploads.prepare_part(
            conn, env.ctx, env.user, multipart.s3_key, multipart.upload_id, 1, env.base
        )
    assert env.server.http.put(part_url, content=b"part").status_code == 200
    assert collect_garbage(env.engine, env.ctx) == GcReport()
    assert len(env.stored_files()) >= 2  # nothing is old yet: everything is kept

    later = datetime.now(UTC) + timedelta(seconds=LIFETIME) + GRACE + timedelta(seconds=5)
    pending = create(env, pending_data, filename="new.bin")
    with env.engine.begin() as conn:  # make it young at `later`
        conn.execute(
            update(t.blob_uploads)
            .where(t.blob_uploads.c.id == pending.id)
            .values(created_at=later - timedelta(seconds=60))
        )
    env.server.http.put(pending.upload_url, content=pending_data, headers=pending.headers)
    report = collect_garbage(env.engine, env.ctx, later)
    assert report.uploads_removed == 3  # kept (attached), dropped and the multipart
    assert report.blobs_removed == 1
    names = [name.rsplit("/", 1)[-1] for name in env.stored_files()]
    assert sorted(names) == sorted([kept_key, f"{blob_key(md5_b64(pending_data), 300)}"])
    with env.engine.connect() as conn:
        left = conn.execute(select(t.blob_uploads.c.id)).scalars().all()
    assert left == [pending.id]
    with pytest.raises(uploads.UploadNotFoundError), env.tx() as conn:
        uploads.attach(conn, env.ctx, env.user, dropped.id)
    with env.engine.begin() as conn:  # the file is deleted: its bytes go at the next gc
        conn.execute(
            update(t.files)
            .where(t.files.c.sentera_id == env.world.survey_file)
            .values(deleted_at=datetime.now(UTC))
        )
    assert collect_garbage(env.engine, env.ctx, later).blobs_removed == 1


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_blob_store("file:///srv/blobs").root == Path("/srv/blobs")  # type: ignore[attr-defined]
    assert open_blob_store("file://./x/y").root == Path("x/y")  # type: ignore[attr-defined]
    assert open_blob_store("relative/dir").root == Path("relative/dir")  # type: ignore[attr-defined]
    assert isinstance(open_blob_store("file://./fieldsync-blobs"), LocalBlobStore)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    store = open_blob_store("s3://bucket/some/prefix/")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.staging_key("u1")) == ("bucket", "some/prefix/uploads/u1")
    assert getattr(store.client.meta.config, "signature_version") == "s3v4"  # noqa: B009
    for bad in ("ftp://x/y", "s3://", "file://host/x", "  ", "s3://b/p?x=1"):
        with pytest.raises(BlobStoreUrlError):
            open_blob_store(bad)
    assert list(tmp_path.iterdir()) == []  # opening a store creates nothing


def test_blob_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings.from_environment().blobs()
    assert (defaults.store_url, defaults.upload_lifetime, defaults.gc_interval) == (
        "file://./fieldsync-blobs",
        86_400,
        3_600,
    )
    monkeypatch.setenv("FIELDSYNC_BLOB_STORE", "s3://b/p")
    monkeypatch.setenv("FIELDSYNC_UPLOAD_LIFETIME", "600")
    monkeypatch.setenv("FIELDSYNC_BLOB_GC_INTERVAL", "0")
    monkeypatch.setenv("FIELDSYNC_PUBLIC_URL", "https://files.example.test")
    settings = Settings.from_environment()
    assert settings.blobs().public_url == "https://files.example.test"
    assert Settings.from_environment() == settings
    assert settings.to_environment()["FIELDSYNC_BLOB_GC_INTERVAL"] == "0"
    monkeypatch.setenv("FIELDSYNC_UPLOAD_LIFETIME", "0")
    with pytest.raises(SettingsError, match="FIELDSYNC_UPLOAD_LIFETIME"):
        Settings.from_environment()


def test_signing_key_is_made_once_and_shared(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIELDSYNC_SECRET_KEY", raising=False)
    first = signing_key(engine)
    assert len(first) == 64 and signing_key(engine) == first
    monkeypatch.setenv("FIELDSYNC_SECRET_KEY", "a configured secret of some length")
    assert signing_key(engine) == b"a configured secret of some length"


def test_moto_alone_accepts_a_tampered_link(
    s3_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the front exists: moto itself takes a PUT whose signature was changed."""
    from tests.s3_support import S3Server

    assert isinstance(s3_server, S3Server)
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    store = open_blob_store(f"s3://fs-{sid('FI')[1:7]}-x/p")
    assert isinstance(store, S3BlobStore)
    store.client.create_bucket(Bucket=store.bucket)
    data = b"tampered"
    target = store.presign_put(
        blob_key(md5_b64(data), len(data)), len(data), md5_b64(data), None, ""
    )
    bad = target.url.replace("X-Amz-Signature=", "X-Amz-Signature=00")
    direct = bad.replace(s3_server.url, s3_server.moto_url)
    assert httpx.put(direct, content=data, headers=target.headers).status_code == 200
    assert httpx.put(bad, content=data, headers=target.headers).status_code == 403


def test_errors_have_codes() -> None:
    for error in (uploads.UploadExpiredError, uploads.UploadIncompleteError):
        assert issubclass(error, FieldSyncError) and error.code.startswith("UPLOAD_")
    assert uploads.UploadNotFoundError.code == "NOT_FOUND"


def test_blobs_gc_command(database_url: str, engine: Engine, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fieldsync.cli import main

    runner = CliRunner()
    store = f"file://{tmp_path}/blobs"
    done = runner.invoke(
        main, ["blobs", "gc", "--database-url", database_url, "--blob-store", store]
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (
        "blobs gc: removed 0 expired upload(s), 0 unreferenced blob(s), 0 stale temporary file(s)"
    )
    bad = runner.invoke(
        main, ["blobs", "gc", "--database-url", database_url, "--blob-store", "ftp://x"]
    )
    assert bad.exit_code == 2 and "unknown scheme 'ftp'" in bad.output


def test_serve_collects_garbage_in_the_background(engine: Engine, tmp_path: Path) -> None:
    from tests.ops_support import thread_server

    stale = tmp_path / "blobs" / "tmp" / "left-by-a-killed-server.partial"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    with thread_server(engine, blob_store=f"file://{tmp_path}/blobs", blob_gc_interval=1):
        deadline = time.monotonic() + 30
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not stale.exists()
