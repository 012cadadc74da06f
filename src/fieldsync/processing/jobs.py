"""The COG job queue: claiming, lease renewal, and recording each outcome on the COG.

Jobs live in the database (`cog_jobs`), queued in the transaction that imports the mosaic, so
a crash never loses one. A worker claims a job with a lease (`lease_seconds`) and renews it
while it works; a worker that dies leaves the lease to expire, and the job is claimed again,
at most `max_attempts` times in all. Every change a worker makes names its claim, so one that
lost its lease cannot finish the job another worker took over.

The COG follows the work, each step a new version that sync reports: PENDING (queued),
PROCESSING (claimed), then SUCCESS (with `max_zoom`, `clipped` and the COG's bytes as a file of
the mosaic with `file_type` COG) or FAIL with an `error`. A job given back to the queue after
an unexpected error is PENDING again until it is claimed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Engine

from fieldsync.blobs.store import CompletedBlob
from fieldsync.ids import TypeCode, new_sentera_id
from fieldsync.model import kinds as k
from fieldsync.processing.cog import CogResult
from fieldsync.storage import cog_jobs
from fieldsync.storage.cog_jobs import ClaimedJob
from fieldsync.storage.database import read_snapshot, side_transaction, write_transaction
from fieldsync.storage.rows import rows_by_sentera_id
from fieldsync.write.documents import write_document

log = logging.getLogger("fieldsync.processing")

COG_CONTENT_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    lease_seconds: float = 60.0
    """How long a claim lasts without renewal; a killed worker's job waits this long."""
    retry_delay_seconds: float = 10.0
    """A job given back after an unexpected error waits this long times its attempt number."""


def _now() -> datetime:
    return datetime.now(UTC)


def claim(engine: Engine, worker: str, settings: QueueSettings) -> ClaimedJob | None:
    """The next job to work on, marked PROCESSING; None when there is none now.

    Jobs found cancelled in passing (their COG deleted) or out of attempts are closed here.
    """
    while True:
        with read_snapshot(engine) as conn:
            if not cog_jobs.any_claimable(conn, _now()):
                return None
        with write_transaction(engine) as conn:
            now = _now()
            job = cog_jobs.claim_next(conn, worker, now, settings.lease_seconds)
            if job is None:
                return None
            if job.cog_deleted:
                cog_jobs.finish(conn, job, cog_jobs.CANCELLED, now)
                continue
            if job.attempt > job.max_attempts:
                _give_up(conn, job, now)
                continue
            _write_cog(conn, job, {"status": "PROCESSING"}, now)
            log.info(
                "claimed COG job %s (COG %s, attempt %s of %s)",
                job.id,
                job.cog_sentera_id,
                job.attempt,
                job.max_attempts,
            )
            return job


def _give_up(conn: Any, job: ClaimedJob, now: datetime) -> None:
    error = (
        f"Processing stopped without finishing {job.max_attempts} times (the worker was "
        "stopped or ran out of memory): import the mosaic again to retry"
    )
    cog_jobs.finish(conn, job, cog_jobs.FAILED, now, error=error)
    _write_cog(conn, job, {"status": "FAIL", "error": error}, now)
    log.warning("COG job %s failed: %s", job.id, error)


def renew(engine: Engine, job: ClaimedJob, settings: QueueSettings) -> bool:
    """Extend the lease; False when the job was cancelled or claimed by another worker."""
    with side_transaction(engine) as conn:
        return cog_jobs.renew_lease(conn, job, _now(), settings.lease_seconds)


def succeed(engine: Engine, job: ClaimedJob, stored: CompletedBlob, result: CogResult) -> bool:
    """Record the COG's bytes as a file of the mosaic and the COG as SUCCESS."""
    with write_transaction(engine) as conn:
        if not cog_jobs.is_current(conn, job):
            return False
        now = _now()
        file_id = new_sentera_id(TypeCode.FILE)
        document = _document(
            job,
            {
                "status": "SUCCESS",
                "max_zoom": result.max_zoom,
                "clipped": result.clipped,
                "error": None,
            },
        )
        document["upsert"]["files"] = [_cog_file(job, file_id)]
        write_document(conn, document, None, now, {file_id: _StoredCog(stored)})
        output = rows_by_sentera_id(conn, k.FILE.table, [file_id])[file_id]
        cog_jobs.finish(conn, job, cog_jobs.DONE, now, output_file_id=int(output["id"]))
        return True


def fail(engine: Engine, job: ClaimedJob, error: str) -> bool:
    """Record the COG as FAIL with an error the user can act on (no retry)."""
    with write_transaction(engine) as conn:
        now = _now()
        if not cog_jobs.finish(conn, job, cog_jobs.FAILED, now, error=error):
            return False
        _write_cog(conn, job, {"status": "FAIL", "error": error}, now)
        return True


def retry_or_fail(engine: Engine, job: ClaimedJob, error: str, settings: QueueSettings) -> None:
    """After an unexpected error: back to the queue while attempts remain, else FAIL."""
    if job.attempt >= job.max_attempts:
        fail(engine, job, f"FieldSync could not make the COG ({error}): import the mosaic again")
        return
    with write_transaction(engine) as conn:
        due = _now() + timedelta(seconds=settings.retry_delay_seconds * job.attempt)
        if cog_jobs.retry_later(conn, job, due, error):
            _write_cog(conn, job, {"status": "PENDING"}, _now())


def release(engine: Engine, job: ClaimedJob) -> None:
    """Give a job back at once, its attempt not counted (the worker is shutting down)."""
    with write_transaction(engine) as conn:
        if cog_jobs.release(conn, job, _now()):
            _write_cog(conn, job, {"status": "PENDING"}, _now())


def _document(job: ClaimedJob, values: dict[str, Any]) -> dict[str, Any]:
    cog = {"sentera_id": job.cog_sentera_id, "mosaic_sentera_id": job.mosaic_sentera_id}
    return {"actor_sentera_id": job.actor_sentera_id, "upsert": {"cogs": [cog | values]}}


def _write_cog(conn: Any, job: ClaimedJob, values: dict[str, Any], now: datetime) -> None:
    live = rows_by_sentera_id(conn, k.COG.table, [job.cog_sentera_id])[job.cog_sentera_id]
    if live["deleted_at"] is None:
        write_document(conn, _document(job, values), None, now)


def _cog_file(job: ClaimedJob, file_id: str) -> dict[str, Any]:
    stem = PurePosixPath(job.source_filename).stem or job.cog_sentera_id
    return {
        "sentera_id": file_id,
        "owner_type": "MOSAIC",
        "owner_sentera_id": job.mosaic_sentera_id,
        "filename": f"{stem}_cog.tif",
        "file_type": "COG",
    }


@dataclass(frozen=True, slots=True)
class _StoredCog:
    """The produced COG's bytes as an item records them."""

    blob: CompletedBlob

    @property
    def blob_key(self) -> str:
        return self.blob.key

    @property
    def checksum(self) -> str:
        return self.blob.checksum

    @property
    def byte_size(self) -> int:
        return self.blob.byte_size

    @property
    def content_type(self) -> str | None:
        return COG_CONTENT_TYPE
