"""`import_mosaic`: attach an uploaded GeoTIFF to a mosaic and queue the COG made from it.

Everything is one write in the caller's transaction: the mosaic (created, or updated), its
files, a new COG with status PENDING, and the job that will make it. Importing a mosaic again
replaces what the last import made: its COGs (their jobs are cancelled) and its files of type
MOSAIC and COG are deleted; other files of the mosaic stay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Connection

from fieldsync.blobs.uploads import StoredBytes
from fieldsync.errors import FieldSyncError, InvalidArgumentError, NotFoundError
from fieldsync.ids import TypeCode, new_sentera_id, type_code_of
from fieldsync.model import kinds as k
from fieldsync.processing.clip_boundary import InvalidClipBoundary, parse_clip_boundary
from fieldsync.storage import cog_jobs
from fieldsync.storage.rows import rows_by_sentera_id
from fieldsync.write.access import WriteAccess
from fieldsync.write.documents import write_document
from fieldsync.write.mutations import Parent, check_parent
from fieldsync.write.plan import ChangesetError

GEOTIFF_SUFFIXES = (".tif", ".tiff")
MAX_FILE_KEYS = 20
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class MosaicImport:
    survey_sentera_id: str
    file_keys: Sequence[str]
    mosaic_type: str
    name: str | None = None
    quality: str | None = None
    mosaic_sentera_id: str | None = None
    clip_boundary: Any = None


@dataclass(frozen=True, slots=True)
class ImportedMosaic:
    mosaic_sentera_id: str
    cog_sentera_id: str
    file_sentera_ids: list[str]


AttachUpload = Callable[[str], StoredBytes]


def import_mosaic(
    conn: Connection,
    access: WriteAccess,
    request: MosaicImport,
    now: datetime,
    attach: AttachUpload,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ImportedMosaic:
    """Write the import and queue its job; FieldSyncError (nothing written) when it cannot."""
    check_parent(access, Parent(TypeCode.SURVEY, request.survey_sentera_id))
    clip = _clip_boundary(request.clip_boundary)
    mosaic_id = _mosaic_to_update(conn, access, request)
    uploads = _uploads(request.file_keys, attach)
    ids = _new_ids(uploads)
    replaced = [] if mosaic_id is None else cog_jobs.replaced_by_import(conn, mosaic_id)
    mosaic_sentera_id = request.mosaic_sentera_id or new_sentera_id(TypeCode.MOSAIC)
    document = {
        "actor_sentera_id": access.user_sentera_id,
        "upsert": {
            "mosaics": [_mosaic_record(request, mosaic_sentera_id, mosaic_id is None)],
            "files": _file_records(mosaic_sentera_id, uploads, ids),
            "cogs": [_cog_record(mosaic_sentera_id, ids.cog)],
        },
        "delete": replaced,
    }
    stored = dict(zip(ids.files, uploads, strict=True))
    try:  # every item is in the survey, checked writable above: ids are given, not looked up
        write_document(conn, document, None, now, stored)
    except ChangesetError as exc:
        raise InvalidArgumentError(_issues_text(exc)) from None
    _enqueue(conn, access, request, ids, clip, now, max_attempts)
    return ImportedMosaic(mosaic_sentera_id, ids.cog, ids.files)


@dataclass(frozen=True, slots=True)
class _NewIds:
    cog: str
    files: list[str]
    geotiff: str
    """The file among `files` the COG is made from."""


def _clip_boundary(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return parse_clip_boundary(value)
    except InvalidClipBoundary as exc:
        raise InvalidArgumentError(f"clip_boundary: {exc}") from None


def _mosaic_to_update(conn: Connection, access: WriteAccess, request: MosaicImport) -> int | None:
    """The id of the mosaic named by `mosaic_sentera_id` (it must be in the survey)."""
    sentera_id = request.mosaic_sentera_id
    if sentera_id is None:
        return None
    missing = NotFoundError(
        f"mosaic {sentera_id!r} does not exist in survey {request.survey_sentera_id!r}: "
        "leave mosaic_sentera_id out to create a mosaic"
    )
    if type_code_of(sentera_id) is not TypeCode.MOSAIC or not access.may_read(sentera_id):
        raise missing
    row = rows_by_sentera_id(conn, k.MOSAIC.table, [sentera_id]).get(sentera_id)
    survey = rows_by_sentera_id(conn, k.SURVEY.table, [request.survey_sentera_id])
    if row is None or row["deleted_at"] is not None:
        raise missing
    if row["survey_id"] != survey[request.survey_sentera_id]["id"]:
        raise missing
    return int(row["id"])


def _uploads(file_keys: Sequence[str], attach: AttachUpload) -> list[StoredBytes]:
    if not file_keys:
        raise InvalidArgumentError(
            "file_keys is empty: pass the file_key of the uploaded GeoTIFF (create_file_upload)"
        )
    if len(file_keys) > MAX_FILE_KEYS:
        raise InvalidArgumentError(
            f"file_keys holds {len(file_keys)} keys; a mosaic takes at most {MAX_FILE_KEYS}"
        )
    if len(set(file_keys)) != len(file_keys):
        raise InvalidArgumentError("file_keys names an upload twice: list each one once")
    uploads = []
    for index, file_key in enumerate(file_keys):
        try:
            uploads.append(attach(file_key))
        except FieldSyncError as exc:
            raise type(exc)(f"file_keys[{index}]: {exc}") from None
    geotiffs = [upload for upload in uploads if _is_geotiff(upload)]
    if len(geotiffs) != 1:
        names = ", ".join(repr(upload.filename) for upload in uploads)
        raise InvalidArgumentError(
            f"file_keys must hold exactly one GeoTIFF (a .tif or .tiff file), the mosaic to "
            f"make the COG from; got {len(geotiffs)} among {names}"
        )
    return uploads


def _is_geotiff(upload: StoredBytes) -> bool:
    return PurePosixPath(upload.filename.lower()).suffix in GEOTIFF_SUFFIXES


def _new_ids(uploads: Sequence[StoredBytes]) -> _NewIds:
    files = [new_sentera_id(TypeCode.FILE) for _ in uploads]
    geotiff = next(fid for fid, up in zip(files, uploads, strict=True) if _is_geotiff(up))
    return _NewIds(new_sentera_id(TypeCode.COG), files, geotiff)


def _mosaic_record(request: MosaicImport, sentera_id: str, creating: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sentera_id": sentera_id,
        "survey_sentera_id": request.survey_sentera_id,
        "mosaic_type": request.mosaic_type,
    }
    if request.name is not None:
        record["name"] = request.name
    if request.quality is not None:
        record["quality"] = request.quality
    elif creating:
        record["quality"] = "FULL"
    return record


def _file_records(
    mosaic_sentera_id: str, uploads: Sequence[StoredBytes], ids: _NewIds
) -> list[dict[str, Any]]:
    return [
        {
            "sentera_id": file_id,
            "owner_type": "MOSAIC",
            "owner_sentera_id": mosaic_sentera_id,
            "filename": upload.filename,
            "file_type": "MOSAIC" if file_id == ids.geotiff else "OTHER",
        }
        for file_id, upload in zip(ids.files, uploads, strict=True)
    ]


def _cog_record(mosaic_sentera_id: str, cog_sentera_id: str) -> dict[str, Any]:
    return {
        "sentera_id": cog_sentera_id,
        "mosaic_sentera_id": mosaic_sentera_id,
        "status": "PENDING",
        "clipped": False,
        "error": None,
        "max_zoom": None,
    }


def _enqueue(
    conn: Connection,
    access: WriteAccess,
    request: MosaicImport,
    ids: _NewIds,
    clip: Mapping[str, Any] | None,
    now: datetime,
    max_attempts: int,
) -> None:
    cog = rows_by_sentera_id(conn, k.COG.table, [ids.cog])[ids.cog]
    source = rows_by_sentera_id(conn, k.FILE.table, [ids.geotiff])[ids.geotiff]
    job = cog_jobs.NewCogJob(
        cog_id=int(cog["id"]),
        source_file_id=int(source["id"]),
        mosaic_type=request.mosaic_type,
        clip_boundary=None if clip is None else json.dumps(clip),
        actor_id=access.user_id,
        max_attempts=max_attempts,
    )
    cog_jobs.enqueue(conn, job, now)


def _issues_text(exc: ChangesetError) -> str:
    """The planner's issues in the mutation's own terms (`name: …`, not a changeset path)."""
    parts = []
    for issue in exc.issues:
        attribute = issue.path.rsplit(".", 1)[-1] if "." in issue.path else issue.path
        parts.append(f"{attribute}: {issue.message}")
    return "; ".join(parts)
