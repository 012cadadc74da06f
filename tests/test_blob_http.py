"""The local store's HTTP: PUT checks (headers, sizes, MD5), part ETags, GET/HEAD with
ranges, ETag, If-None-Match, Content-Disposition, and a `fieldsync serve` killed with SIGKILL
in the middle of a PUT (no partial blob at any key; the PUT works after a restart)."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from fieldsync.blobs import uploads
from fieldsync.blobs.context import BlobSettings, blob_context
from fieldsync.blobs.local import LocalBlobStore
from fieldsync.storage.database import write_transaction
from tests.blob_support import BlobEnv, md5_b64, md5_hex, user_id
from tests.builder import build_world
from tests.ops_support import ServeProcess

LOCAL = pytest.mark.parametrize("blob_env", ["local"], indirect=True)
"""These tests are of the local store's own HTTP: the S3 leg is the bucket's."""


def ticket_for(env: BlobEnv, data: bytes, content_type: str | None = None) -> uploads.UploadTicket:
    with env.tx() as conn:
        return uploads.create_upload(
            conn, env.ctx, env.user, "f.bin", len(data), md5_b64(data), content_type, env.base
        )


def code(answer: httpx.Response) -> str:
    error: str = answer.json()["errors"][0]["extensions"]["code"]
    return error


@LOCAL
def test_put_refuses_missing_or_wrong_headers(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(100)
    ticket = ticket_for(env, data, "text/csv")
    no_md5 = {k: v for k, v in ticket.headers.items() if k != "Content-MD5"}
    answer = http.put(ticket.upload_url, content=data, headers=no_md5)
    assert answer.status_code == 400 and "Content-MD5 header is missing" in answer.text
    wrong_md5 = {**ticket.headers, "Content-MD5": md5_b64(b"other")}
    answer = http.put(ticket.upload_url, content=data, headers=wrong_md5)
    assert (answer.status_code, code(answer)) == (400, "CHECKSUM_MISMATCH")
    wrong_type = {**ticket.headers, "Content-Type": "text/plain"}
    assert http.put(ticket.upload_url, content=data, headers=wrong_type).status_code == 400

    def chunked() -> Iterator[bytes]:
        yield data

    no_length = {k: v for k, v in ticket.headers.items() if k != "Content-Length"}
    answer = http.put(ticket.upload_url, content=chunked(), headers=no_length)
    assert answer.status_code == 400 and "Content-Length" in answer.text
    assert env.stored_files() == []
    assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200


@LOCAL
def test_put_larger_than_the_graphql_body_limit_streams(blob_env: BlobEnv, engine: Engine) -> None:
    env = blob_env
    data = os.urandom(33 * 1024 * 1024)  # over the 32 MiB GraphQL body limit
    ticket = ticket_for(env, data)
    answer = env.server.http.put(ticket.upload_url, content=data, headers=ticket.headers)
    assert answer.status_code == 200
    assert answer.headers["etag"] == f'"{md5_hex(data)}"'


@LOCAL
def test_part_put_returns_its_etag(blob_env: BlobEnv) -> None:
    env = blob_env
    with env.tx() as conn:
        ticket = uploads.create_multipart_upload(conn, env.ctx, env.user, "m.bin", None)
        url = uploads.prepare_part(
            conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, 7, env.base
        )
    answer = env.server.http.put(url, content=b"part seven")
    assert answer.headers["etag"] == f'"{md5_hex(b"part seven")}"'
    bad = env.server.http.put(url, content=b"x", headers={"Content-MD5": md5_b64(b"y")})
    assert (bad.status_code, code(bad)) == (400, "CHECKSUM_MISMATCH")
    other = url.replace("/7?", "/8?")
    assert env.server.http.put(other, content=b"x").status_code == 403


@LOCAL
def test_get_and_head_speak_http_caching_and_ranges(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = bytes(range(256)) * 40
    ticket = ticket_for(env, data, "application/pdf")
    http.put(ticket.upload_url, content=data, headers=ticket.headers)
    with env.tx() as conn:
        stored = uploads.attach(conn, env.ctx, env.user, ticket.id)
    url = uploads.download_url(
        env.ctx, stored.blob_key, 'Résumé "v2".pdf', "application/pdf", env.base
    )
    head = http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["content-type"] == "application/pdf"
    disposition = head.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="R_sum_ _v2_.pdf"')
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22v2%22.pdf" in disposition
    etag = head.headers["etag"]
    assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
    part = http.get(url, headers={"Range": "bytes=100-199"})
    assert (part.status_code, part.content) == (206, data[100:200])
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    stale = http.get(url, headers={"Range": "bytes=100-199", "If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, data)
    fresh = http.get(url, headers={"Range": "bytes=-10", "If-Range": etag})
    assert (fresh.status_code, fresh.content) == (206, data[-10:])
    unsatisfiable = http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"


@LOCAL
def test_links_are_refused_for_other_purposes(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = b"abc"
    ticket = ticket_for(env, data)
    http.put(ticket.upload_url, content=data, headers=ticket.headers)
    as_download = ticket.upload_url.replace("/blobs/put/", "/blobs/get/")
    assert http.get(as_download).status_code == 403
    assert http.get(env.base + "/blobs/get/" + "0" * 32 + "-3").status_code == 403


def _start_put(base: str, url: str, headers: dict[str, str], first: bytes) -> socket.socket:
    """A PUT sent by hand: the headers and only the first bytes of the body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 80))
    lines = [f"PUT {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return sock


def _wait_for_partial(tmp_dir: Path, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size for p in tmp_dir.glob("*")] if tmp_dir.is_dir() else []
        if sizes and max(sizes) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("the server never wrote the first bytes")


@pytest.mark.slow
def test_sigkill_during_a_put_leaves_no_partial_blob(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    store_url = f"file://{root}"
    world = build_world(engine)
    server = ServeProcess(tmp_path, database_url, "--blob-store", store_url)
    ctx = blob_context(engine, BlobSettings(store_url=store_url))
    data = os.urandom(8 * 1024 * 1024)
    with write_transaction(engine) as conn:
        ticket = uploads.create_upload(
            conn,
            ctx,
            user_id(engine, world.user),
            "f.bin",
            len(data),
            md5_b64(data),
            None,
            server.base,
        )
    sock = _start_put(server.base, ticket.upload_url, ticket.headers, data[: 3 * 1024 * 1024])
    try:
        _wait_for_partial(root / "tmp", 1024 * 1024)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    finally:
        sock.close()
    assert not (root / "blobs").exists() or list((root / "blobs").iterdir()) == []
    assert len(list((root / "tmp").iterdir())) == 1  # only the temporary file is left
    restarted = ServeProcess(tmp_path, database_url, "--blob-store", store_url)
    try:
        url = restarted.base + ticket.upload_url.removeprefix(server.base)
        answer = httpx.put(url, content=data, headers=ticket.headers, timeout=60)
        assert answer.status_code == 200, answer.text
    finally:
        restarted.stop()
    with write_transaction(engine) as conn:
        stored = uploads.attach(conn, ctx, user_id(engine, world.user), ticket.id)
    assert (root / "blobs" / stored.blob_key).read_bytes() == data
    store = ctx.store
    assert isinstance(store, LocalBlobStore)
    assert store.remove_stale_temporaries(datetime.now(UTC) + timedelta(days=2)) == 1
    assert list((root / "tmp").iterdir()) == []
