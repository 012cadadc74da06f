"""The rows representations are made of (fieldsync.model.representation): per kind, one
query that joins the sentera_ids of everything an item references; and where the made
representations, their hashes and the version history are stored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, Select, Table, bindparam, select, update

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks, insert_ignoring_duplicates

# The tables of the owners of feature sets and files, by owner type.
OWNER_TABLES = {
    "SURVEY": t.surveys,
    "MOSAIC": t.mosaics,
    "FIELD": t.fields,
    "FEATURE_SET": t.feature_sets,
    "LOGO": t.logos,
    "ORGANIZATION": t.organizations,
}

_created_by = t.users.alias("created_by_user")


def _base(table: Any, *columns: Any) -> Select[Any]:
    return (
        select(
            table.c.id,
            table.c.sentera_id,
            table.c.created_at,
            table.c.updated_at,
            table.c.updated_by_id,
            table.c.representation,
            table.c.content_hash,
            table.c.scope_type,
            table.c.scope_id,
            _created_by.c.sentera_id.label("created_by_sid"),
            *columns,
        )
        .select_from(table)
        .join(_created_by, _created_by.c.id == table.c.created_by_id)
    )


def _blob_columns(table: Any) -> tuple[Any, ...]:
    return (table.c.blob_key, table.c.checksum, table.c.content_type)


def _field_query() -> Select[Any]:
    f, o = t.fields, t.organizations
    return _base(
        f,
        f.c.organization_id,
        f.c.name,
        f.c.latitude,
        f.c.longitude,
        o.c.sentera_id.label("org_sid"),
    ).join(o, o.c.id == f.c.organization_id)


def _survey_query() -> Select[Any]:
    s, f = t.surveys, t.fields
    return _base(
        s,
        s.c.field_id,
        s.c.name,
        s.c.start_time,
        s.c.end_time,
        s.c.notes,
        f.c.sentera_id.label("field_sid"),
    ).join(f, f.c.id == s.c.field_id)


def _image_query() -> Select[Any]:
    i, s = t.images, t.surveys
    return _base(
        i,
        i.c.survey_id,
        i.c.filename,
        i.c.latitude,
        i.c.longitude,
        i.c.altitude,
        i.c.captured_at,
        i.c.size,
        *_blob_columns(i),
        s.c.sentera_id.label("survey_sid"),
    ).join(s, s.c.id == i.c.survey_id)


def _mosaic_query() -> Select[Any]:
    m, s = t.mosaics, t.surveys
    return _base(
        m,
        m.c.survey_id,
        m.c.name,
        m.c.mosaic_type,
        m.c.quality,
        m.c.image_status,
        m.c.captured_at,
        m.c.area_value,
        m.c.area_unit,
        m.c.is_from_sentera_sensor,
        m.c.message,
        m.c.released,
        s.c.sentera_id.label("survey_sid"),
    ).join(s, s.c.id == m.c.survey_id)


def _cog_query() -> Select[Any]:
    c, m, s = t.cogs, t.mosaics, t.surveys
    return (
        _base(
            c,
            c.c.status,
            c.c.clipped,
            c.c.error,
            c.c.max_zoom,
            m.c.sentera_id.label("mosaic_sid"),
            m.c.survey_id.label("mosaic_survey_id"),
            s.c.sentera_id.label("survey_sid"),
        )
        .join(m, m.c.id == c.c.mosaic_id)
        .join(s, s.c.id == m.c.survey_id)
    )


def _feature_set_query() -> Select[Any]:
    fs = t.feature_sets
    return _base(fs, fs.c.name, fs.c.type, fs.c.status)


def _file_query() -> Select[Any]:
    f = t.files
    return _base(
        f,
        f.c.filename,
        f.c.download_filename,
        f.c.file_type,
        f.c.path,
        f.c.size,
        f.c.version,
        *_blob_columns(f),
    )


def _flight_task_query() -> Select[Any]:
    ft, o, f, s = t.flight_tasks, t.organizations, t.fields, t.surveys
    return (
        _base(
            ft,
            ft.c.organization_id,
            ft.c.name,
            ft.c.status,
            ft.c.notes,
            o.c.sentera_id.label("org_sid"),
            f.c.sentera_id.label("field_sid"),
            s.c.sentera_id.label("survey_sid"),
        )
        .join(o, o.c.id == ft.c.organization_id)
        .outerjoin(f, f.c.id == ft.c.field_id)
        .outerjoin(s, s.c.id == ft.c.survey_id)
    )


_SOURCE_QUERIES: dict[str, Select[Any]] = {
    "fields": _field_query(),
    "surveys": _survey_query(),
    "images": _image_query(),
    "mosaics": _mosaic_query(),
    "cogs": _cog_query(),
    "feature_sets": _feature_set_query(),
    "files": _file_query(),
    "flight_tasks": _flight_task_query(),
}
"""By item table: the query of its items' source rows, built once."""


def source_rows(conn: Connection, table: Table, ids: Iterable[int]) -> list[Row[Any]]:
    """The source rows of the live items of `table` among `ids`."""
    query = _SOURCE_QUERIES[table.name]
    rows: list[Row[Any]] = []
    for part in chunks(sorted(set(ids))):
        rows.extend(conn.execute(query.where(table.c.id.in_(part), table.c.deleted_at.is_(None))))
    return rows


def owner_sentera_ids(
    conn: Connection, owners: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """Map (owner type, internal id) pairs to the owners' sentera_ids, one query per type."""
    by_type: dict[str, set[int]] = {}
    for owner_type, owner_id in owners:
        by_type.setdefault(owner_type, set()).add(owner_id)
    found: dict[tuple[str, int], str] = {}
    for owner_type, ids in by_type.items():
        statement = _OWNER_SENTERA_IDS[owner_type]
        for part in chunks(sorted(ids)):
            for row in conn.execute(statement, {"ids": list(part)}):
                found[(owner_type, row.id)] = row.sentera_id
    return found


# Per owner type, built once: (id, sentera_id) of the rows whose id is in the expanding `ids`.
_OWNER_SENTERA_IDS = {
    owner_type: select(table.c.id, table.c.sentera_id).where(
        table.c.id.in_(bindparam("ids", expanding=True))
    )
    for owner_type, table in OWNER_TABLES.items()
}


def user_sentera_ids(conn: Connection, user_ids: set[int]) -> dict[int, str]:
    """The sentera_ids of users by internal id."""
    found: dict[int, str] = {}
    for part in chunks(sorted(user_ids)):
        for row in conn.execute(
            select(t.users.c.id, t.users.c.sentera_id).where(t.users.c.id.in_(part))
        ):
            found[row.id] = row.sentera_id
    return found


def store_representations(
    conn: Connection,
    table: Table,
    changes: list[dict[str, Any]],
    versions: list[dict[str, Any]],
) -> None:
    """Store new representations (`_id`, `_hash`, `_repr`, `_updated_at`, `_updated_by`,
    `_scope_type`, `_scope_id` each) and their version history entries (`item_versions`
    rows; one already there is kept)."""
    if not changes:
        return
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values(
            content_hash=bindparam("_hash"),
            representation=bindparam("_repr"),
            updated_at=bindparam("_updated_at"),
            updated_by_id=bindparam("_updated_by"),
            scope_type=bindparam("_scope_type"),
            scope_id=bindparam("_scope_id"),
        ),
        changes,
    )
    insert_ignoring_duplicates(conn, t.item_versions, versions)
