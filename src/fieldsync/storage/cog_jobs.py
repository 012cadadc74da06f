"""The SQL of `cog_jobs`, the durable queue of COG generation (see fieldsync.processing.jobs).

Every state change of a running job is conditional on `attempts`, the number of its current
claim: a worker that lost its lease (it was killed, or stalled past the lease and the job was
claimed again) changes nothing, so no job is finished twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, func, insert, or_, select, update

from fieldsync.storage import tables as t
from fieldsync.storage.database import is_sqlite

_jobs = t.cog_jobs

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
OPEN_STATES = (QUEUED, RUNNING)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)


@dataclass(frozen=True, slots=True)
class NewCogJob:
    cog_id: int
    source_file_id: int
    mosaic_type: str
    clip_boundary: str | None
    actor_id: int
    max_attempts: int


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job as a worker claimed it, with what it needs to do the work."""

    id: int
    attempt: int
    """The number of this claim: every later change of the job names it."""
    max_attempts: int
    cog_id: int
    cog_sentera_id: str
    cog_deleted: bool
    mosaic_sentera_id: str
    mosaic_name: str | None
    mosaic_type: str
    clip_boundary: str | None
    source_blob_key: str | None
    source_filename: str
    actor_sentera_id: str


def enqueue(conn: Connection, job: NewCogJob, now: datetime) -> int:
    values = {name: getattr(job, name) for name in NewCogJob.__slots__}
    result = conn.execute(
        insert(_jobs)
        .values(
            **values,
            state=QUEUED,
            attempts=0,
            run_after=now,
            created_at=now,
            updated_at=now,
        )
        .returning(_jobs.c.id)
    )
    return int(result.scalar_one())


def cancel_jobs_of_cogs(conn: Connection, cog_ids: Iterable[int], now: datetime) -> int:
    """Cancel the open jobs of these COGs (a running one's worker finds out at its next lease
    renewal and drops its work). Returns how many were cancelled."""
    ids = list(cog_ids)
    if not ids:
        return 0
    result = conn.execute(
        update(_jobs)
        .where(_jobs.c.cog_id.in_(ids), _jobs.c.state.in_(OPEN_STATES))
        .values(state=CANCELLED, lease_expires_at=None, updated_at=now, finished_at=now)
    )
    return result.rowcount


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(_jobs.c.state == QUEUED, _jobs.c.run_after <= now),
        and_(_jobs.c.state == RUNNING, _jobs.c.lease_expires_at < now),
    )


def _next_claimable_id(conn: Connection, now: datetime) -> int | None:
    query = select(_jobs.c.id).where(_claimable(now)).order_by(_jobs.c.id).limit(1)
    if not is_sqlite(conn):  # SQLite has one writer at a time: nothing to skip
        query = query.with_for_update(skip_locked=True)
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def any_claimable(conn: Connection, now: datetime) -> bool:
    """Whether a job could be claimed now (read only: an idle worker's cheap poll)."""
    return conn.execute(select(_jobs.c.id).where(_claimable(now)).limit(1)).first() is not None


def claim_next(
    conn: Connection, worker: str, now: datetime, lease_seconds: float
) -> ClaimedJob | None:
    """Take the oldest claimable job (queued and due, or running with an expired lease)."""
    job_id = _next_claimable_id(conn, now)
    if job_id is None:
        return None
    claimed = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _claimable(now))
        .values(
            state=RUNNING,
            attempts=_jobs.c.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker=worker,
            updated_at=now,
        )
        .returning(_jobs.c.attempts)
    ).scalar()
    if claimed is None:  # pragma: no cover - the row is locked (PG) or the writer is alone
        return None
    return _claimed(conn, job_id, int(claimed))


def _claimed(conn: Connection, job_id: int, attempt: int) -> ClaimedJob:
    cogs, mosaics, files, users = t.cogs, t.mosaics, t.files, t.users
    row = conn.execute(
        select(
            _jobs.c.max_attempts,
            _jobs.c.cog_id,
            cogs.c.sentera_id.label("cog_sentera_id"),
            cogs.c.deleted_at.label("cog_deleted_at"),
            mosaics.c.sentera_id.label("mosaic_sentera_id"),
            mosaics.c.name.label("mosaic_name"),
            _jobs.c.mosaic_type,
            _jobs.c.clip_boundary,
            files.c.blob_key,
            files.c.filename,
            users.c.sentera_id.label("actor_sentera_id"),
        )
        .join(cogs, cogs.c.id == _jobs.c.cog_id)
        .join(mosaics, mosaics.c.id == cogs.c.mosaic_id)
        .join(files, files.c.id == _jobs.c.source_file_id)
        .join(users, users.c.id == _jobs.c.actor_id)
        .where(_jobs.c.id == job_id)
    ).one()
    return ClaimedJob(
        id=job_id,
        attempt=attempt,
        max_attempts=row.max_attempts,
        cog_id=row.cog_id,
        cog_sentera_id=row.cog_sentera_id,
        cog_deleted=row.cog_deleted_at is not None,
        mosaic_sentera_id=row.mosaic_sentera_id,
        mosaic_name=row.mosaic_name,
        mosaic_type=row.mosaic_type,
        clip_boundary=row.clip_boundary,
        source_blob_key=row.blob_key,
        source_filename=row.filename,
        actor_sentera_id=row.actor_sentera_id,
    )


def _ours(job: ClaimedJob) -> ColumnElement[bool]:
    return and_(_jobs.c.id == job.id, _jobs.c.attempts == job.attempt, _jobs.c.state == RUNNING)


def renew_lease(conn: Connection, job: ClaimedJob, now: datetime, lease_seconds: float) -> bool:
    """Extend the lease; False when the job is no longer ours (cancelled, or claimed again)."""
    result = conn.execute(
        update(_jobs)
        .where(_ours(job))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return result.rowcount == 1


def finish(
    conn: Connection,
    job: ClaimedJob,
    state: str,
    now: datetime,
    *,
    error: str | None = None,
    output_file_id: int | None = None,
) -> bool:
    """Record the end of the work (DONE, FAILED or CANCELLED); False when it is not ours."""
    result = conn.execute(
        update(_jobs)
        .where(_ours(job))
        .values(
            state=state,
            last_error=error,
            output_file_id=output_file_id,
            lease_expires_at=None,
            updated_at=now,
            finished_at=now,
        )
    )
    return result.rowcount == 1


def retry_later(conn: Connection, job: ClaimedJob, run_after: datetime, error: str) -> bool:
    """Give the job back to the queue, due at `run_after`; False when it is not ours."""
    result = conn.execute(
        update(_jobs)
        .where(_ours(job))
        .values(
            state=QUEUED,
            run_after=run_after,
            last_error=error,
            lease_expires_at=None,
            updated_at=run_after,
        )
    )
    return result.rowcount == 1


def release(conn: Connection, job: ClaimedJob, now: datetime) -> bool:
    """Give the job back at once without counting this attempt; False when it is not ours."""
    result = conn.execute(
        update(_jobs)
        .where(_ours(job))
        .values(
            state=QUEUED,
            attempts=_jobs.c.attempts - 1,
            run_after=now,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def is_current(conn: Connection, job: ClaimedJob) -> bool:
    """Whether the job is still ours to finish (inside the transaction that finishes it)."""
    return conn.execute(select(_jobs.c.id).where(_ours(job))).first() is not None


def replaced_by_import(conn: Connection, mosaic_id: int) -> list[str]:
    """What importing the mosaic again replaces: its live COGs, and its live files of type
    MOSAIC (the GeoTIFF) and COG (the bytes made from it). Sentera ids, oldest first."""
    cogs, files = t.cogs, t.files
    cog_ids = select(cogs.c.sentera_id, cogs.c.id).where(
        cogs.c.mosaic_id == mosaic_id, cogs.c.deleted_at.is_(None)
    )
    file_ids = select(files.c.sentera_id, files.c.id).where(
        files.c.scope_type == "MOSAIC",
        files.c.scope_id == mosaic_id,
        files.c.file_type.in_(("MOSAIC", "COG")),
        files.c.deleted_at.is_(None),
    )
    found = [
        *conn.execute(cog_ids.order_by(cogs.c.id)),
        *conn.execute(file_ids.order_by(files.c.id)),
    ]
    return [str(row.sentera_id) for row in found]


def counts_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(_jobs.c.state, func.count()).group_by(_jobs.c.state))
    return {str(state): int(count) for state, count in rows}


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    cog_id: int
    state: str
    attempts: int
    max_attempts: int
    worker: str | None
    last_error: str | None
    output_file_id: int | None


def jobs_of_cogs(conn: Connection, cog_ids: Iterable[int]) -> list[JobRow]:
    """Every job of these COGs, oldest first (for status commands and tests)."""
    ids = list(cog_ids)
    columns = [_jobs.c[name] for name in JobRow.__slots__]
    rows = conn.execute(select(*columns).where(_jobs.c.cog_id.in_(ids)).order_by(_jobs.c.id))
    return [JobRow(*row) for row in rows]
