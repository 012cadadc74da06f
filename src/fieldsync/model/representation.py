"""Representations: the values a sync query can return for an item, and its content hash.

A representation is derived from the database state alone, from one source row per item that
holds the sentera_ids of everything it references (`storage.representation_rows`).
`refresh_representations` recomputes it for a set of items after a write and, where it
changed, stores the new canonical JSON, the new content hash and the version history entry.
Writing identical values therefore changes nothing: the content compares equal and the item
keeps its hash and `updated_at`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Row

from fieldsync.hashing import canonical_json, digest
from fieldsync.model import kinds as k
from fieldsync.model.kinds import EntityKind
from fieldsync.storage.mosaic_links import counted_image_sentera_ids
from fieldsync.storage.representation_rows import (
    owner_sentera_ids,
    source_rows,
    store_representations,
    user_sentera_ids,
)

# Values that change only when the content does; the content decides whether a write is a no-op.
META_KEYS = ("updated_at", "updated_by", "action")


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
    """How one kind's representation is made from its source row
    (`storage.representation_rows`): its content, and the scope it syncs in."""

    content: Callable[[Row[Any], Mapping[tuple[str, int], str]], dict[str, Any]]
    scope: Callable[[Row[Any]], tuple[str, int]]


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


def _field_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "latitude": row.latitude,
        "longitude": row.longitude,
        "organization": ref(row.org_sid),
    }


def _survey_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "start_time": iso(row.start_time),
        "end_time": iso(row.end_time),
        "notes": row.notes,
        "field": ref(row.field_sid),
    }


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


def _cog_content(row: Row[Any], _owners: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    return _common(row) | {
        "status": row.status,
        "clipped": bool(row.clipped),
        "error": row.error,
        "max_zoom": row.max_zoom,
        "mosaic": ref(row.mosaic_sid),
        "survey": ref(row.survey_sid),
    }


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
    k.FIELD.name: _Shape(_field_content, lambda r: ("ORGANIZATION", r.organization_id)),
    k.SURVEY.name: _Shape(_survey_content, lambda r: ("FIELD", r.field_id)),
    k.IMAGE.name: _Shape(_image_content, lambda r: ("SURVEY", r.survey_id)),
    k.MOSAIC.name: _Shape(_mosaic_content, lambda r: ("SURVEY", r.survey_id)),
    k.COG.name: _Shape(_cog_content, lambda r: ("SURVEY", r.mosaic_survey_id)),
    k.FEATURE_SET.name: _Shape(_feature_set_content, _own_scope),
    k.FILE.name: _Shape(_file_content, _own_scope),
    k.FLIGHT_TASK.name: _Shape(_flight_task_content, lambda r: ("ORGANIZATION", r.organization_id)),
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
    rows = source_rows(conn, kind.table, updaters)
    if not rows:
        return 0
    owners: dict[tuple[str, int], str] = {}
    if kind in (k.FILE, k.FEATURE_SET):
        owners = owner_sentera_ids(conn, ((r.scope_type, r.scope_id) for r in rows))
    links = counted_image_sentera_ids(conn, [r.id for r in rows]) if kind is k.MOSAIC else {}
    user_ids = {r.updated_by_id for r in rows} | {u for u in updaters.values()}
    user_sids = user_sentera_ids(conn, {u for u in user_ids if u is not None})

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
    store_representations(conn, kind.table, changes, versions)
    return len(changes)
