"""Representations: the values a sync query can return for an item, and its content hash.

A representation is derived from the database state alone, by one query per kind that joins
the sentera_ids of everything the item references. `refresh_representations` recomputes it
for a set of items after a write and, where it changed, stores the new canonical JSON, the new
content hash and the version history entry. Writing identical values therefore changes
nothing: the content compares equal and the item keeps its hash and `updated_at`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select, update
from sqlalchemy.engine import Row

from fieldsync.hashing import canonical_json, digest
from fieldsync.model import kinds as k
from fieldsync.model.kinds import EntityKind
from fieldsync.storage import tables as t
from fieldsync.storage.mosaic_links import counted_image_sentera_ids
from fieldsync.storage.sql import chunks, insert_ignoring_duplicates

# Values that change only when the content does; the content decides whether a write is a no-op.
META_KEYS = ("updated_at", "updated_by", "action")

OWNER_TABLES = {
    "SURVEY": t.surveys,
    "MOSAIC": t.mosaics,
    "FIELD": t.fields,
    "FEATURE_SET": t.feature_sets,
    "LOGO": t.logos,
    "ORGANIZATION": t.organizations,
}


def iso(value: datetime | None) -> str | None:
    """The API's timestamp format: ISO-8601 UTC with a Z, whole seconds."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def ref(sentera_id: str | None) -> dict[str, str] | None:
    return None if sentera_id is None else {"sentera_id": sentera_id}


def size_text(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class _Shape:
    """How to read one kind's representation: a query and a row-to-content function."""

    query: Callable[[], Select[Any]]
    content: Callable[[Row[Any], Mapping[tuple[str, int], str]], dict[str, Any]]
    scope: Callable[[Row[Any]], tuple[str, int]]


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


def _blob(row: Row[Any]) -> dict[str, Any]:
    """The stored bytes: their public MD5 `checksum`, and (not a GraphQL field) where they are,
    from which `url` is signed per request. New bytes are new content, so a new hash; an item
    without bytes has neither key, so its representation is what it was before bytes existed."""
    if row.blob_key is None:
        return {}
    return {
        "checksum": row.checksum,
        "blob": {"key": row.blob_key, "content_type": row.content_type},
    }


def action_of(representation: Mapping[str, Any]) -> str:
    """CREATE until the item first changed, then UPDATE.

    Stored with every version written since all kinds carry it; a version stored before (of
    any kind but files) did not, and an item then was unchanged if it was updated when made.
    """
    action = representation.get("action")
    if isinstance(action, str):
        return action
    unchanged = representation.get("updated_at") == representation.get("created_at")
    return "CREATE" if unchanged else "UPDATE"


def _common(row: Row[Any]) -> dict[str, Any]:
    return {
        "sentera_id": row.sentera_id,
        "created_at": iso(row.created_at),
        "created_by": ref(row.created_by_sid),
    }


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


def _field_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "latitude": row.latitude,
        "longitude": row.longitude,
        "organization": ref(row.org_sid),
    }


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


def _survey_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "start_time": iso(row.start_time),
        "end_time": iso(row.end_time),
        "notes": row.notes,
        "field": ref(row.field_sid),
    }


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


def _image_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return (
        _common(row)
        | {
            "filename": row.filename,
            "latitude": row.latitude,
            "longitude": row.longitude,
            "altitude": row.altitude,
            "captured_at": iso(row.captured_at),
            "size": size_text(row.size),
            "survey": ref(row.survey_sid),
        }
        | _blob(row)
    )


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


def _mosaic_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    area = None
    if row.area_value is not None or row.area_unit is not None:
        area = {"value": row.area_value, "unit": row.area_unit}
    return _common(row) | {
        "name": row.name,
        "mosaic_type": row.mosaic_type,
        "quality": row.quality,
        "image_status": row.image_status,
        "captured_at": iso(row.captured_at),
        "area": area,
        "is_from_sentera_sensor": bool(row.is_from_sentera_sensor),
        "message": row.message,
        "released": bool(row.released),
        "survey": ref(row.survey_sid),
    }


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


def _cog_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "status": row.status,
        "clipped": bool(row.clipped),
        "error": row.error,
        "max_zoom": row.max_zoom,
        "mosaic": ref(row.mosaic_sid),
        "survey": ref(row.survey_sid),
    }


def _feature_set_query() -> Select[Any]:
    fs = t.feature_sets
    return _base(fs, fs.c.name, fs.c.type, fs.c.status)


def _feature_set_content(row: Row[Any], owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "type": row.type,
        "status": row.status,
        "feature_set_owner": {
            "owner_type": row.scope_type,
            "sentera_id": owners[(row.scope_type, row.scope_id)],
        },
    }


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


def _file_content(row: Row[Any], owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return (
        _common(row)
        | {
            "filename": row.filename,
            "download_filename": row.download_filename,
            "file_type": row.file_type.lower(),
            "path": row.path,
            "size": size_text(row.size),
            "version": row.version,
            "file_owner": {
                "owner_type": row.scope_type,
                "sentera_id": owners[(row.scope_type, row.scope_id)],
            },
        }
        | _blob(row)
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


def _flight_task_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "notes": row.notes,
        "status": row.status,
        "organization": ref(row.org_sid),
        "field": ref(row.field_sid),
        "survey": ref(row.survey_sid),
    }


def _own_scope(row: Row[Any]) -> tuple[str, int]:
    return (row.scope_type, row.scope_id)


SHAPES: dict[str, _Shape] = {
    k.FIELD.name: _Shape(
        _field_query, _field_content, lambda r: ("ORGANIZATION", r.organization_id)
    ),
    k.SURVEY.name: _Shape(_survey_query, _survey_content, lambda r: ("FIELD", r.field_id)),
    k.IMAGE.name: _Shape(_image_query, _image_content, lambda r: ("SURVEY", r.survey_id)),
    k.MOSAIC.name: _Shape(_mosaic_query, _mosaic_content, lambda r: ("SURVEY", r.survey_id)),
    k.COG.name: _Shape(_cog_query, _cog_content, lambda r: ("SURVEY", r.mosaic_survey_id)),
    k.FEATURE_SET.name: _Shape(_feature_set_query, _feature_set_content, _own_scope),
    k.FILE.name: _Shape(_file_query, _file_content, _own_scope),
    k.FLIGHT_TASK.name: _Shape(
        _flight_task_query, _flight_task_content, lambda r: ("ORGANIZATION", r.organization_id)
    ),
}


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


def refresh_representations(
    conn: Connection,
    kind: EntityKind,
    updaters: Mapping[int, int | None],
    now: datetime,
) -> int:
    """Recompute the representation of the live items `updaters` names; store what changed.

    `updaters` maps an item id to the user the change is attributed to. Returns how many items
    got a new content hash. New items (no stored representation yet) always do.
    """
    assert kind.sync is not None
    shape = SHAPES[kind.name]
    table = kind.table
    ids = sorted(updaters)
    rows: list[Row[Any]] = []
    for part in chunks(ids):
        query = shape.query().where(table.c.id.in_(part), table.c.deleted_at.is_(None))
        rows.extend(conn.execute(query))
    if not rows:
        return 0
    owners: dict[tuple[str, int], str] = {}
    if kind in (k.FILE, k.FEATURE_SET):
        owners = owner_sentera_ids(conn, ((r.scope_type, r.scope_id) for r in rows))
    links = counted_image_sentera_ids(conn, [r.id for r in rows]) if kind is k.MOSAIC else {}
    user_ids = {r.updated_by_id for r in rows} | {u for u in updaters.values()}
    user_sids = _user_sentera_ids(conn, {u for u in user_ids if u is not None})

    changes: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    for row in rows:
        content = shape.content(row, owners)
        if kind is k.MOSAIC:
            linked = links[row.id]
            content["images"] = {"total_count": len(linked)}
            content["image_links"] = digest(canonical_json({"ids": linked})).hex()
        stored = json.loads(row.representation) if row.representation else None
        if stored is not None:
            stored_content = {key: v for key, v in stored.items() if key not in META_KEYS}
            if stored_content == content:
                continue
            updated_at = now
            updated_by_id = updaters[row.id]
            action = "UPDATE"
        else:
            updated_at = row.updated_at
            updated_by_id = row.updated_by_id
            action = "CREATE"
        representation = content | {
            "updated_at": iso(updated_at),
            "updated_by": ref(user_sids.get(updated_by_id) if updated_by_id else None),
            "action": action,
        }
        canonical = canonical_json(representation)
        content_hash = digest(canonical)
        scope_type, scope_id = shape.scope(row)
        changes.append(
            {
                "_id": row.id,
                "_hash": content_hash,
                "_repr": canonical,
                "_updated_at": updated_at,
                "_updated_by": updated_by_id,
                "_scope_type": scope_type,
                "_scope_id": scope_id,
            }
        )
        versions.append(
            {
                "content_hash": content_hash,
                "kind": kind.name,
                "item_id": row.id,
                "scope_type": scope_type,
                "scope_id": scope_id,
                "representation": canonical,
                "created_at": now,
            }
        )
    if changes:
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
    return len(changes)


def _user_sentera_ids(conn: Connection, user_ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in chunks(sorted(user_ids)):
        for row in conn.execute(
            select(t.users.c.id, t.users.c.sentera_id).where(t.users.c.id.in_(part))
        ):
            found[row.id] = row.sentera_id
    return found
