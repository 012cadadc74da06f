"""Read-only queries behind tiles and the survey map: a COG's stored bytes, a survey's COGs
and image points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

from fieldsync.storage import tables as t


@dataclass(frozen=True, slots=True)
class CogSource:
    """A live COG: its status and, once a job made it, the content key of its bytes."""

    sentera_id: str
    status: str
    blob_key: str | None


@dataclass(frozen=True, slots=True)
class ImagePoint:
    filename: str
    latitude: float
    longitude: float


def _latest_done_job() -> Any:
    """Per COG, the id of its latest done job."""
    jobs = t.cog_jobs
    return (
        select(jobs.c.cog_id, func.max(jobs.c.id).label("job_id"))
        .where(jobs.c.state == "done", jobs.c.output_file_id.is_not(None))
        .group_by(jobs.c.cog_id)
        .subquery("latest_done")
    )


def _cog_sources() -> Select[Any]:
    cogs, jobs, files = t.cogs, t.cog_jobs, t.files
    latest = _latest_done_job()
    return (
        select(cogs.c.sentera_id, cogs.c.status, files.c.blob_key)
        .outerjoin(latest, latest.c.cog_id == cogs.c.id)
        .outerjoin(jobs, jobs.c.id == latest.c.job_id)
        .outerjoin(files, (files.c.id == jobs.c.output_file_id) & files.c.deleted_at.is_(None))
        .where(cogs.c.deleted_at.is_(None))
    )


_COG_BY_SENTERA_ID = _cog_sources().where(t.cogs.c.sentera_id == bindparam("sentera_id"))
_COGS_OF_SURVEY = (
    _cog_sources()
    .join(t.mosaics, t.mosaics.c.id == t.cogs.c.mosaic_id)
    .where(t.mosaics.c.survey_id == bindparam("survey_id"), t.mosaics.c.deleted_at.is_(None))
    .order_by(t.cogs.c.id)
)
_IMAGE_POINTS = (
    select(t.images.c.filename, t.images.c.latitude, t.images.c.longitude)
    .where(
        t.images.c.survey_id == bindparam("survey_id"),
        t.images.c.deleted_at.is_(None),
        t.images.c.latitude.is_not(None),
        t.images.c.longitude.is_not(None),
    )
    .order_by(t.images.c.id)
)


def cog_source(conn: Connection, cog_sentera_id: str) -> CogSource | None:
    """The live COG with this sentera_id, or None."""
    row = conn.execute(_COG_BY_SENTERA_ID, {"sentera_id": cog_sentera_id}).first()
    return None if row is None else CogSource(row.sentera_id, row.status, row.blob_key)


def survey_cog_sources(conn: Connection, survey_id: int) -> list[CogSource]:
    """The live COGs of the survey's live mosaics, oldest first."""
    rows = conn.execute(_COGS_OF_SURVEY, {"survey_id": survey_id})
    return [CogSource(row.sentera_id, row.status, row.blob_key) for row in rows]


def survey_image_points(conn: Connection, survey_id: int) -> list[ImagePoint]:
    """The survey's live images that have a position."""
    rows = conn.execute(_IMAGE_POINTS, {"survey_id": survey_id})
    return [ImagePoint(row.filename, row.latitude, row.longitude) for row in rows]
