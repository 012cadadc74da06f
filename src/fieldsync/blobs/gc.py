"""Garbage collection of uploads and bytes: `fieldsync blobs gc`, and `serve` in the
background. Safe to run in several processes at once (every removal tolerates a missing
object)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from fieldsync.blobs.context import BlobContext
from fieldsync.blobs.store import BlobStore
from fieldsync.storage.blob_uploads import (
    UploadRow,
    delete_uploads,
    keys_in_use,
    uploads_created_before,
)
from fieldsync.storage.database import write_transaction

log = logging.getLogger("fieldsync.blobs.gc")
GRACE = timedelta(minutes=10)
"""Upload rows outlive the upload lifetime by this much, so an attach that checked an upload
just before it expired still finds its bytes kept."""


@dataclass(frozen=True, slots=True)
class GcReport:
    uploads_removed: int = 0
    blobs_removed: int = 0
    temporaries_removed: int = 0

    def line(self) -> str:
        return (
            f"blobs gc: removed {self.uploads_removed} expired upload(s), "
            f"{self.blobs_removed} unreferenced blob(s), "
            f"{self.temporaries_removed} stale temporary file(s)"
        )


def _remove_expired_uploads(engine: Engine, store: BlobStore, cutoff: datetime) -> int:
    with engine.connect() as conn:
        expired: list[UploadRow] = uploads_created_before(conn, cutoff)
    for row in expired:
        if row.multipart and row.completed_at is None and row.store_upload_id is not None:
            store.abort_multipart(row.id, row.store_upload_id)
    with write_transaction(engine) as conn:
        delete_uploads(conn, [row.id for row in expired])
    return len(expired)


def _remove_unreferenced(engine: Engine, store: BlobStore, cutoff: datetime) -> int:
    """Bytes written before `cutoff` that no live item and no remaining upload holds."""
    with engine.connect() as conn:
        in_use = keys_in_use(conn)
    removed = 0
    for blob in list(store.list_blobs()):
        if blob.key in in_use or blob.modified_at >= cutoff:
            continue
        again = store.stat(blob.key)  # written again since it was listed: keep it
        if again is not None and again.modified_at < cutoff:
            store.delete(blob.key)
            removed += 1
    return removed


def collect_garbage(engine: Engine, ctx: BlobContext, now: datetime | None = None) -> GcReport:
    """Remove uploads older than the upload lifetime (with their staging bytes), bytes no
    live image or file references, older than the lifetime, and stale temporary files."""
    moment = now or datetime.now(UTC)
    lifetime = timedelta(seconds=ctx.settings.upload_lifetime)
    cutoff = moment - lifetime
    uploads = _remove_expired_uploads(engine, ctx.store, cutoff - GRACE)
    blobs = _remove_unreferenced(engine, ctx.store, cutoff)
    temporaries = ctx.store.remove_stale_temporaries(cutoff)
    return GcReport(uploads, blobs, temporaries)


class PeriodicCollector:
    """One background thread per process running `collect_garbage` every `interval` s."""

    def __init__(self, engine: Engine, ctx: Callable[[], BlobContext], interval: float) -> None:
        self._engine = engine
        self._ctx = ctx
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fieldsync-blob-gc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = collect_garbage(self._engine, self._ctx())
            except Exception:
                log.exception("blob garbage collection failed; trying again next interval")
            else:
                log.info(report.line())
