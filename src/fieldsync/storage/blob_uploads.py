"""The SQL of `blob_uploads` (uploads created by clients) and of the blob keys items hold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, literal, select, union, update

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks
from fieldsync.storage.types import UTCDateTime

_uploads = t.blob_uploads


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    multipart: bool
    filename: str
    byte_size: int | None
    checksum: str | None
    content_type: str | None
    storage_key: str
    store_upload_id: str | None
    blob_key: str | None
    created_by_id: int
    created_at: datetime
    completed_at: datetime | None
    attached_at: datetime | None


_COLUMNS = [_uploads.c[name] for name in UploadRow.__slots__]


def insert_upload(conn: Connection, upload: UploadRow) -> None:
    values = {name: getattr(upload, name) for name in UploadRow.__slots__}
    conn.execute(insert(_uploads).values(**values))


def _storable(*texts: str) -> bool:
    """Whether the texts could be stored at all: PostgreSQL's text holds no NUL character, so
    a key with one names no upload (and would make the driver fail, not just find nothing)."""
    return all("\x00" not in text for text in texts)


def find_upload(conn: Connection, upload_id: str) -> UploadRow | None:
    if not _storable(upload_id):
        return None
    found = conn.execute(select(*_COLUMNS).where(_uploads.c.id == upload_id)).first()
    return None if found is None else UploadRow(*found)


def find_multipart_upload(
    conn: Connection, storage_key: str, store_upload_id: str
) -> UploadRow | None:
    if not _storable(storage_key, store_upload_id):
        return None
    found = conn.execute(
        select(*_COLUMNS).where(
            _uploads.c.storage_key == storage_key,
            _uploads.c.store_upload_id == store_upload_id,
            _uploads.c.multipart.is_(True),
        )
    ).first()
    return None if found is None else UploadRow(*found)


def mark_completed(
    conn: Connection, upload_id: str, blob_key: str, checksum: str, byte_size: int, now: datetime
) -> None:
    conn.execute(
        update(_uploads)
        .where(_uploads.c.id == upload_id)
        .values(blob_key=blob_key, checksum=checksum, byte_size=byte_size, completed_at=now)
    )


def mark_attached(conn: Connection, upload_id: str, blob_key: str, now: datetime) -> None:
    """Completed (if it was not yet) and attached; the first moments are kept."""
    conn.execute(
        update(_uploads)
        .where(_uploads.c.id == upload_id)
        .values(
            blob_key=blob_key,
            completed_at=func.coalesce(_uploads.c.completed_at, literal(now, UTCDateTime())),
            attached_at=func.coalesce(_uploads.c.attached_at, literal(now, UTCDateTime())),
        )
    )


def uploads_created_before(conn: Connection, cutoff: datetime) -> list[UploadRow]:
    return [
        UploadRow(*found)
        for found in conn.execute(
            select(*_COLUMNS).where(_uploads.c.created_at < cutoff).order_by(_uploads.c.id)
        )
    ]


def delete_uploads(conn: Connection, upload_ids: Iterable[str]) -> None:
    for batch in chunks(list(upload_ids)):
        conn.execute(delete(_uploads).where(_uploads.c.id.in_(batch)))


def keys_in_use(conn: Connection) -> set[str]:
    """Blob keys a live image or file holds, or an upload not yet removed may hold."""
    live = [
        select(table.c.blob_key).where(table.c.deleted_at.is_(None), table.c.blob_key.is_not(None))
        for table in (t.images, t.files)
    ]
    pending = [
        select(column).where(column.is_not(None))
        for column in (_uploads.c.blob_key, _uploads.c.storage_key)
    ]
    return {str(key) for (key,) in conn.execute(union(*live, *pending))}
