"""Sending a file's bytes to a FieldSync server: one signed PUT for a small file, a multipart
upload for a large one. The answer is the upload's id, the `file_key` an upsert attaches.

Signed URLs are sent no `Authorization` header (S3 refuses a request that carries two kinds of
authentication); their PUTs are idempotent, so each is retried like any other request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fieldsync.client.checksums import file_checksum
from fieldsync.client.errors import ProtocolError
from fieldsync.client.queries import (
    COMPLETE_MULTIPART_UPLOAD,
    CREATE_MULTIPART_UPLOAD,
    CREATE_UPLOAD,
    PREPARE_PART,
)
from fieldsync.client.sdk import FieldSyncClient

MiB = 1024 * 1024
MULTIPART_FROM_BYTES = 64 * MiB
"""Files at least this large go up in parts."""
PART_BYTES = 8 * MiB
MIN_PART_BYTES = 5 * MiB
"""Every part but the last must hold at least this much (as S3 requires)."""
MAX_PARTS = 10_000
READ_BYTES = MiB

ByteCounter = Callable[[int], None]


def upload_file(
    client: FieldSyncClient,
    path: Path,
    *,
    content_type: str,
    on_bytes: ByteCounter | None = None,
    checksum: str | None = None,
    multipart_from: int = MULTIPART_FROM_BYTES,
    part_bytes: int = PART_BYTES,
) -> str:
    """Upload the bytes of `path` and return the upload's id (the `file_key`).

    `on_bytes` is told how many more bytes were sent, never more than the file's size in all
    (a retried request does not count twice). `checksum` saves reading the file once more
    when the caller already has it.
    """
    if part_bytes < MIN_PART_BYTES:
        raise ValueError(f"parts must hold at least {MIN_PART_BYTES} bytes")
    size = path.stat().st_size
    digest = checksum or file_checksum(path)
    counter = _MonotonicCounter(on_bytes)
    if size < multipart_from:
        return _single_upload(client, path, size, digest, content_type, counter)
    return _multipart_upload(client, path, size, digest, content_type, counter, part_bytes)


class _MonotonicCounter:
    """Reports bytes at file offsets not reported before, so a retry does not count twice."""

    def __init__(self, on_bytes: ByteCounter | None) -> None:
        self.on_bytes = on_bytes
        self.reported: dict[int, int] = {}  # part offset -> bytes of it reported

    def sent(self, offset: int, done: int) -> None:
        """`done` bytes of the range starting at `offset` went out."""
        new = done - self.reported.get(offset, 0)
        if new > 0:
            self.reported[offset] = done
            if self.on_bytes is not None:
                self.on_bytes(new)


def _single_upload(
    client: FieldSyncClient,
    path: Path,
    size: int,
    checksum: str,
    content_type: str,
    counter: _MonotonicCounter,
) -> str:
    variables = {
        "filename": path.name,
        "byte_size": size,
        "checksum": checksum,
        "content_type": content_type,
    }
    upload = _answer(client.execute(CREATE_UPLOAD, variables), "upload", "id", "upload_url")
    headers = {str(k): str(v) for k, v in (upload.get("headers") or {}).items()}
    headers.setdefault("Content-Length", str(size))
    http = client.transport.client

    def put() -> Any:
        with path.open("rb") as stream:
            body = _streamed(stream, size, lambda done: counter.sent(0, done))
            return http.put(str(upload["upload_url"]), content=body, headers=headers)

    client.transport.send(put)
    return str(upload["id"])


def _streamed(stream: BinaryIO, length: int, progress: ByteCounter) -> Iterator[bytes]:
    """`length` bytes of `stream` in chunks, telling `progress` the total sent so far."""
    done = 0
    while done < length:
        chunk = stream.read(min(READ_BYTES, length - done))
        if not chunk:
            return
        done += len(chunk)
        yield chunk
        progress(done)


def _multipart_upload(
    client: FieldSyncClient,
    path: Path,
    size: int,
    checksum: str,
    content_type: str,
    counter: _MonotonicCounter,
    part_bytes: int,
) -> str:
    if -(-size // part_bytes) > MAX_PARTS:
        raise ValueError(f"{path.name} needs more than {MAX_PARTS} parts of {part_bytes} bytes")
    variables = {
        "filename": path.name,
        "content_type": content_type,
        "byte_size": size,
        "checksum": checksum,
    }
    started = _answer(
        client.execute(CREATE_MULTIPART_UPLOAD, variables), "upload", "s3_key", "upload_id"
    )
    location = {"s3_key": started["s3_key"], "upload_id": started["upload_id"]}
    parts: list[dict[str, Any]] = []
    with path.open("rb") as stream:
        for number, offset in enumerate(range(0, size, part_bytes), start=1):
            stream.seek(offset)
            body = stream.read(part_bytes)
            etag = _put_part(client, location, number, body)
            counter.sent(offset, len(body))
            parts.append({"part_number": number, "etag": etag})
    completed = client.transport.execute(
        COMPLETE_MULTIPART_UPLOAD, {**location, "parts": parts}, idempotent=False
    )
    return str(_answer(completed, "upload", "id")["id"])


def _put_part(client: FieldSyncClient, location: dict[str, Any], number: int, body: bytes) -> str:
    """PUT one part to the URL the server signs for it; the ETag it answered."""
    signed = _answer(
        client.execute(PREPARE_PART, {**location, "part_number": number}), "part", "url"
    )
    url = str(signed["url"])
    http = client.transport.client
    response = client.transport.send(lambda: http.put(url, content=body))
    etag = response.headers.get("etag")
    if not etag:
        raise ProtocolError(f"the PUT of part {number} answered no ETag")
    return str(etag)


def _answer(data: dict[str, Any], name: str, *fields: str) -> dict[str, Any]:
    """`data[name]`, checked to be an object holding `fields`."""
    value = data.get(name)
    if not isinstance(value, dict) or any(value.get(f) in (None, "") for f in fields):
        raise ProtocolError(f"the server's {name} answer lacks {', '.join(fields) or 'data'}")
    return value
