"""The upload services the GraphQL mutations call: create a single or multipart upload,
prepare and complete parts, attach the bytes to an item, and sign download links.

Every function takes a `Connection` in the caller's transaction and never opens one itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from fieldsync.blobs.context import BlobContext
from fieldsync.blobs.store import (
    MAX_MULTIPART_BYTES,
    MAX_PART_NUMBER,
    MAX_SINGLE_PUT_BYTES,
    ChecksumMismatchError,
    DownloadTarget,
    InvalidPartError,
    SizeMismatchError,
    blob_key,
    decode_checksum,
)
from fieldsync.errors import FieldSyncError, InvalidArgumentError, NotFoundError
from fieldsync.storage.blob_uploads import (
    UploadRow,
    find_multipart_upload,
    find_upload,
    insert_upload,
    mark_attached,
    mark_completed,
)

MAX_FILENAME = 1024
MAX_CONTENT_TYPE = 255


class UploadNotFoundError(NotFoundError):
    """No such upload, or one another user created (the two look the same)."""


class UploadExpiredError(FieldSyncError):
    code = "UPLOAD_EXPIRED"


class UploadIncompleteError(FieldSyncError):
    code = "UPLOAD_INCOMPLETE"


@dataclass(frozen=True, slots=True)
class UploadTicket:
    id: str
    upload_url: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class MultipartTicket:
    id: str
    s3_key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class StoredBytes:
    """What an item records of the bytes attached to it."""

    blob_key: str
    checksum: str
    byte_size: int
    content_type: str | None
    filename: str


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _check_filename(filename: str) -> str:
    if not filename.strip():
        raise InvalidArgumentError("filename is empty: give the file's name, e.g. 'ortho.tif'")
    if len(filename) > MAX_FILENAME:
        raise InvalidArgumentError(f"filename is longer than {MAX_FILENAME} characters")
    if "\x00" in filename:
        raise InvalidArgumentError("filename may not contain a NUL character (\\u0000)")
    return filename


def _check_content_type(content_type: str | None) -> str | None:
    if content_type is None or not content_type.strip():
        return None
    if len(content_type) > MAX_CONTENT_TYPE or not content_type.isprintable():
        raise InvalidArgumentError(
            "content_type must be a media type such as 'image/tiff' (printable, at most "
            f"{MAX_CONTENT_TYPE} characters)"
        )
    return content_type.strip()


def _check_size(byte_size: int, maximum: int, what: str) -> int:
    if not 0 <= byte_size <= maximum:
        raise InvalidArgumentError(f"byte_size {byte_size} is not from 0 to {maximum} ({what})")
    return byte_size


def _check_checksum(checksum: str) -> str:
    try:
        decode_checksum(checksum)
    except ChecksumMismatchError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return checksum.strip()


def _insert_new(
    conn: Connection,
    upload_id: str,
    user_id: int,
    now: datetime | None,
    *,
    filename: str,
    byte_size: int | None,
    checksum: str | None,
    content_type: str | None,
    storage_key: str,
    store_upload_id: str | None = None,
) -> None:
    """A new upload row; multipart when the store gave an upload id of its own."""
    row = UploadRow(
        id=upload_id,
        multipart=store_upload_id is not None,
        filename=filename,
        byte_size=byte_size,
        checksum=checksum,
        content_type=content_type,
        storage_key=storage_key,
        store_upload_id=store_upload_id,
        blob_key=None,
        created_by_id=user_id,
        created_at=_now(now),
        completed_at=None,
        attached_at=None,
    )
    insert_upload(conn, row)


def create_upload(
    conn: Connection,
    ctx: BlobContext,
    user_id: int,
    filename: str,
    byte_size: int,
    checksum: str,
    content_type: str | None,
    base_url: str,
    *,
    now: datetime | None = None,
) -> UploadTicket:
    """A new single-PUT upload: its id (the `file_key`), URL and the headers to PUT with."""
    _check_filename(filename)
    _check_size(
        byte_size,
        MAX_SINGLE_PUT_BYTES,
        "5 GiB at most in one PUT; larger files use create_multipart_file_upload",
    )
    checksum = _check_checksum(checksum)
    content_type = _check_content_type(content_type)
    key = blob_key(checksum, byte_size)
    upload_id = secrets.token_urlsafe(24)
    target = ctx.store.presign_put(key, byte_size, checksum, content_type, ctx.base_url(base_url))
    _insert_new(
        conn,
        upload_id,
        user_id,
        now,
        filename=filename,
        byte_size=byte_size,
        checksum=checksum,
        content_type=content_type,
        storage_key=key,
    )
    return UploadTicket(upload_id, target.url, target.headers)


def create_multipart_upload(
    conn: Connection,
    ctx: BlobContext,
    user_id: int,
    filename: str,
    content_type: str | None,
    byte_size: int | None = None,
    checksum: str | None = None,
    *,
    now: datetime | None = None,
) -> MultipartTicket:
    """A new multipart upload; parts are prepared one by one with `prepare_part`."""
    _check_filename(filename)
    if byte_size is not None:
        _check_size(byte_size, MAX_MULTIPART_BYTES, "5 TiB at most")
    checksum = None if checksum is None else _check_checksum(checksum)
    content_type = _check_content_type(content_type)
    upload_id = secrets.token_urlsafe(24)
    store_upload_id = ctx.store.create_multipart(upload_id, content_type)
    staging = ctx.store.staging_key(upload_id)
    _insert_new(
        conn,
        upload_id,
        user_id,
        now,
        filename=filename,
        byte_size=byte_size,
        checksum=checksum,
        content_type=content_type,
        storage_key=staging,
        store_upload_id=store_upload_id,
    )
    return MultipartTicket(upload_id, staging, store_upload_id)


def _expired(ctx: BlobContext, row: UploadRow, now: datetime) -> bool:
    return row.created_at + timedelta(seconds=ctx.settings.upload_lifetime) < now


def _own_multipart(
    conn: Connection, ctx: BlobContext, user_id: int, s3_key: str, upload_id: str, now: datetime
) -> UploadRow:
    row = find_multipart_upload(conn, s3_key, upload_id)
    if row is None or row.created_by_id != user_id:
        raise UploadNotFoundError(
            f"no multipart upload {upload_id[:80]!r} at s3_key {s3_key[:200]!r}: use the "
            "s3_key and upload_id create_multipart_file_upload returned"
        )
    if _expired(ctx, row, now):
        raise UploadExpiredError(
            "this multipart upload has expired: start again with create_multipart_file_upload"
        )
    return row


def prepare_part(
    conn: Connection,
    ctx: BlobContext,
    user_id: int,
    s3_key: str,
    upload_id: str,
    part_number: int,
    base_url: str,
    *,
    now: datetime | None = None,
) -> str:
    """The URL to PUT one part to (any order; a retried part replaces the earlier one)."""
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidArgumentError(f"part_number {part_number} is not from 1 to {MAX_PART_NUMBER}")
    row = _own_multipart(conn, ctx, user_id, s3_key, upload_id, _now(now))
    if row.completed_at is not None:
        raise InvalidPartError("this multipart upload is complete already: create a new one")
    assert row.store_upload_id is not None
    return ctx.store.presign_part(row.id, row.store_upload_id, part_number, ctx.base_url(base_url))


def complete_multipart_upload(
    conn: Connection,
    ctx: BlobContext,
    user_id: int,
    s3_key: str,
    upload_id: str,
    parts: Sequence[tuple[int, str]],
    *,
    now: datetime | None = None,
) -> str:
    """Assemble the parts (part-number order) and check them; the `file_key` to attach.
    Completing again after success answers the same `file_key`."""
    moment = _now(now)
    row = _own_multipart(conn, ctx, user_id, s3_key, upload_id, moment)
    if row.completed_at is not None:
        return row.id
    assert row.store_upload_id is not None
    try:
        done = ctx.store.complete_multipart(
            row.id, row.store_upload_id, parts, (row.byte_size, row.checksum)
        )
    except (SizeMismatchError, ChecksumMismatchError):
        ctx.store.abort_multipart(row.id, row.store_upload_id)
        raise
    mark_completed(conn, row.id, done.key, done.checksum, done.byte_size, moment)
    return row.id


def attach(
    conn: Connection,
    ctx: BlobContext,
    user_id: int,
    file_key: str,
    *,
    now: datetime | None = None,
) -> StoredBytes:
    """The bytes of an upload, checked present in the store, for an item to record."""
    moment = _now(now)
    row = find_upload(conn, file_key)
    if row is None or row.created_by_id != user_id:
        raise UploadNotFoundError(
            f"no upload with file_key {file_key[:80]!r}: use the id that create_file_upload "
            "or create_multipart_file_upload returned (uploads are per user)"
        )
    if _expired(ctx, row, moment):
        raise UploadExpiredError(
            f"the upload {file_key!r} has expired (uploads must be attached within "
            f"{ctx.settings.upload_lifetime} s): upload the bytes again"
        )
    stored = _stored_bytes(ctx, row)
    mark_attached(conn, row.id, stored.blob_key, moment)
    return stored


def _stored_bytes(ctx: BlobContext, row: UploadRow) -> StoredBytes:
    if row.multipart:
        if row.blob_key is None or row.checksum is None or row.byte_size is None:
            raise UploadIncompleteError(
                f"the multipart upload {row.id!r} is not complete: call "
                "complete_multipart_file_upload with every part first"
            )
        key, checksum, size = row.blob_key, row.checksum, row.byte_size
    else:
        assert row.checksum is not None and row.byte_size is not None
        key, checksum, size = row.storage_key, row.checksum, row.byte_size
    found = ctx.store.stat(key)
    if found is None or found.size != size:
        raise UploadIncompleteError(
            f"no bytes were uploaded for file_key {row.id!r}: PUT them to upload_url "
            "with its headers first"
        )
    return StoredBytes(key, checksum, size, row.content_type, row.filename)


def download_url(
    ctx: BlobContext,
    blob_key: str,
    download_filename: str,
    content_type: str | None,
    base_url: str,
) -> str:
    """A signed link to the bytes, valid for the link lifetime (60 minutes)."""
    target = DownloadTarget(blob_key, download_filename, content_type)
    return ctx.store.presign_get(target, ctx.base_url(base_url))
