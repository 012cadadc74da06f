"""Bytes in and out through both blob stores, over real HTTP, on both databases: upload and
download every byte, wrong MD5 and size, tampered and expired links, a resumed ranged
download, a 25 MB multipart upload out of order with a retried part, and two clients at once.

The S3 leg runs against moto's standalone server behind the verifying front of
tests/s3_support.py (signatures, expiry and Content-MD5 are checked there, not by moto).
"""

from __future__ import annotations

import os
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from fieldsync.blobs import uploads
from fieldsync.blobs.store import InvalidPartError, blob_key
from tests.blob_support import BlobEnv, md5_b64, md5_hex

MIB = 1024 * 1024


def upload(
    env: BlobEnv, data: bytes, filename: str = "ortho.tif", content_type: str | None = "image/tiff"
) -> uploads.UploadTicket:
    with env.tx() as conn:
        return uploads.create_upload(
            conn, env.ctx, env.user, filename, len(data), md5_b64(data), content_type, env.base
        )


def attach(env: BlobEnv, file_key: str) -> uploads.StoredBytes:
    with env.tx() as conn:
        return uploads.attach(conn, env.ctx, env.user, file_key)


def link(env: BlobEnv, stored: uploads.StoredBytes, name: str = "North 40 ortho.tif") -> str:
    return uploads.download_url(env.ctx, stored.blob_key, name, stored.content_type, env.base)


def tampered(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_upload_and_download_every_byte(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(3 * MIB + 17)
    ticket = upload(env, data)
    assert ticket.headers["Content-MD5"] == md5_b64(data)
    assert ticket.headers["Content-Length"] == str(len(data))
    assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200
    stored = attach(env, ticket.id)
    assert stored.blob_key == blob_key(md5_b64(data), len(data)) == f"{md5_hex(data)}-{len(data)}"
    assert (stored.checksum, stored.byte_size, stored.content_type) == (
        md5_b64(data),
        len(data),
        "image/tiff",
    )
    got = http.get(link(env, stored, "Fält ortho.tif"))
    assert got.status_code == 200
    assert got.content == data and md5_b64(got.content) == stored.checksum
    assert got.headers["content-type"] == "image/tiff"
    assert "filename*=UTF-8''F%C3%A4lt%20ortho.tif" in got.headers["content-disposition"]
    assert got.headers["etag"].strip('"') == md5_hex(data)


def test_same_bytes_are_stored_once(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = b"the same bytes"
    for _ in range(2):
        ticket = upload(env, data, "a.txt", "text/plain")
        assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200
        attach(env, ticket.id)
    assert [name.rsplit("/", 1)[-1] for name in env.stored_files()] == [
        f"{md5_hex(data)}-{len(data)}"
    ]


def test_wrong_md5_is_refused_and_nothing_is_stored(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(4096)
    ticket = upload(env, data)
    other = os.urandom(4096)
    refused = http.put(ticket.upload_url, content=other, headers=ticket.headers)
    assert refused.status_code == 400
    if env.kind == "local":
        assert refused.json()["errors"][0]["extensions"]["code"] == "CHECKSUM_MISMATCH"
    assert env.stored_files() == []
    with pytest.raises(uploads.UploadIncompleteError, match="PUT them to upload_url"):
        attach(env, ticket.id)


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_size_is_refused_and_nothing_is_stored(blob_env: BlobEnv, delta: int) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(2048)
    ticket = upload(env, data)
    body = data[:delta] if delta < 0 else data + b"x"
    headers = {**ticket.headers, "Content-Length": str(len(body))}
    refused = http.put(ticket.upload_url, content=body, headers=headers)
    # S3 signs Content-Length: another length breaks the signature (403); locally 400.
    assert refused.status_code == (400 if env.kind == "local" else 403)
    assert env.stored_files() == []
    with pytest.raises(uploads.UploadIncompleteError):
        attach(env, ticket.id)


def test_tampered_links_get_403(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(1000)
    ticket = upload(env, data)
    signature = "signature" if env.kind == "local" else "X-Amz-Signature"
    bad = tampered(ticket.upload_url, signature, "0" * 64)
    assert http.put(bad, content=data, headers=ticket.headers).status_code == 403
    assert env.stored_files() == []
    assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200
    url = link(env, attach(env, ticket.id), "report.pdf")
    renamed = "filename" if env.kind == "local" else "response-content-disposition"
    assert http.get(tampered(url, renamed, "attachment; filename=evil.exe")).status_code == 403
    assert http.get(tampered(url, signature, "1" * 64)).status_code == 403
    assert http.get(url).content == data


def test_expired_links_get_403(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(1000)
    ticket = upload(env, data)
    assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200
    url = link(env, attach(env, ticket.id))
    if env.kind == "local":
        path, _, query = url.removeprefix(env.base).partition("?")
        params = {k: v for k, v in parse_qsl(query) if k not in ("expires", "signature")}
        expired = env.base + env.ctx.signer.sign(path, params, expires_at=1_000_000_000)
        answer = http.get(expired)
        assert answer.json()["errors"][0]["message"].startswith("the link has expired")
    else:
        assert env.s3 is not None
        env.s3.front.clock_offset = env.ctx.settings.link_seconds + 60
        try:
            answer = http.get(url)
        finally:
            env.s3.front.clock_offset = 0
    assert answer.status_code == 403
    assert http.get(url).content == data  # within 60 minutes the same link works


def test_ranged_download_resumed_in_the_middle(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(2 * MIB + 3)
    ticket = upload(env, data)
    assert http.put(ticket.upload_url, content=data, headers=ticket.headers).status_code == 200
    url = link(env, attach(env, ticket.id))
    received = bytearray()
    with http.stream("GET", url) as first:  # the client stops half way
        for chunk in first.iter_bytes():
            received += chunk
            if len(received) >= MIB:
                break
    rest = http.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {len(received)}-{len(data) - 1}/{len(data)}"
    assert bytes(received) + rest.content == data


def test_multipart_25_mb_out_of_order_with_a_retried_part(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    data = os.urandom(25_000_000)
    chunks = [data[start : start + 5 * MIB] for start in range(0, len(data), 5 * MIB)]
    assert len(chunks) == 5
    with env.tx() as conn:
        ticket = uploads.create_multipart_upload(
            conn, env.ctx, env.user, "big.tif", "image/tiff", len(data), md5_b64(data)
        )
    etags: dict[int, str] = {}
    garbage = os.urandom(len(chunks[1]))
    sends = [(3, chunks[2]), (1, chunks[0]), (5, chunks[4]), (2, garbage), (4, chunks[3])]
    for number, body in [*sends, (2, chunks[1])]:  # part 2 is retried with the right bytes
        with env.tx() as conn:
            url = uploads.prepare_part(
                conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, number, env.base
            )
        answer = http.put(url, content=body)
        assert answer.status_code == 200, answer.text
        etags[number] = answer.headers["etag"]
    assert etags[2].strip('"') == md5_hex(chunks[1])
    parts = [(number, etags[number]) for number in (5, 3, 1, 4, 2)]  # any order
    with pytest.raises(InvalidPartError, match="etag"), env.tx() as conn:
        wrong = [(n, '"' + "0" * 32 + '"' if n == 4 else e) for n, e in parts]
        uploads.complete_multipart_upload(
            conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, wrong
        )
    with env.tx() as conn:
        file_key = uploads.complete_multipart_upload(
            conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, parts
        )
    assert file_key == ticket.id
    stored = attach(env, file_key)
    assert (stored.blob_key, stored.checksum) == (f"{md5_hex(data)}-{len(data)}", md5_b64(data))
    got = http.get(link(env, stored))
    assert md5_hex(got.content) == md5_hex(data) and len(got.content) == len(data)
    assert [name.rsplit("/", 1)[-1] for name in env.stored_files()] == [stored.blob_key]


def test_multipart_small_part_and_missing_part_are_refused(blob_env: BlobEnv) -> None:
    env, http = blob_env, blob_env.server.http
    with env.tx() as conn:
        ticket = uploads.create_multipart_upload(conn, env.ctx, env.user, "x.bin", None)
    etags = {}
    for number, body in ((1, b"a" * 1000), (2, b"b" * 10)):
        with env.tx() as conn:
            url = uploads.prepare_part(
                conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, number, env.base
            )
        etags[number] = http.put(url, content=body).headers["etag"]
    with pytest.raises(InvalidPartError, match="at least 5242880"), env.tx() as conn:
        uploads.complete_multipart_upload(
            conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, list(etags.items())
        )
    with pytest.raises(InvalidPartError, match="part 3 was never uploaded"), env.tx() as conn:
        uploads.complete_multipart_upload(
            conn, env.ctx, env.user, ticket.s3_key, ticket.upload_id, [(3, etags[1])]
        )
    with pytest.raises(uploads.UploadIncompleteError, match="not complete"):
        attach(env, ticket.id)


def test_two_clients_upload_at_once(blob_env: BlobEnv) -> None:
    env = blob_env
    same = os.urandom(MIB)
    bodies = [same, same, os.urandom(MIB), os.urandom(MIB + 1)]
    tickets = [upload(env, body) for body in bodies]
    statuses: list[int] = []

    def send(ticket: uploads.UploadTicket, body: bytes) -> None:
        with httpx.Client(timeout=60) as client:
            statuses.append(
                client.put(ticket.upload_url, content=body, headers=ticket.headers).status_code
            )

    threads = [
        threading.Thread(target=send, args=pair) for pair in zip(tickets, bodies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    for ticket, body in zip(tickets, bodies, strict=True):
        assert env.server.http.get(link(env, attach(env, ticket.id))).content == body
    assert len(env.stored_files()) == 3
