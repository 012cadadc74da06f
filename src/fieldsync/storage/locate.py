"""Live objects by sentera_id: their internal id and the organization they hang below."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Connection, Select, bindparam, select
from sqlalchemy.sql.util import find_tables

from fieldsync.ids import TypeCode
from fieldsync.storage import tables as t
from fieldsync.storage.sql import driver_rows


def _located_query(code: TypeCode) -> Select[Any] | None:
    """The query of sentera_id, id and organization ("org") of live objects of one type whose
    sentera_id is in the expanding `wanted`."""
    wanted: BindParameter[Any] = bindparam("wanted", expanding=True)
    o, f, s, m, lg = t.organizations, t.fields, t.surveys, t.mosaics, t.logos
    i, c, ft = t.images, t.cogs, t.flight_tasks
    if code is TypeCode.ORGANIZATION:
        return select(o.c.sentera_id, o.c.id, o.c.id.label("org")).where(
            o.c.sentera_id.in_(wanted), o.c.deleted_at.is_(None)
        )
    if code is TypeCode.FIELD:
        return select(f.c.sentera_id, f.c.id, f.c.organization_id.label("org")).where(
            f.c.sentera_id.in_(wanted), f.c.deleted_at.is_(None)
        )
    if code is TypeCode.SURVEY:
        return (
            select(s.c.sentera_id, s.c.id, f.c.organization_id.label("org"))
            .join(f, f.c.id == s.c.field_id)
            .where(s.c.sentera_id.in_(wanted), s.c.deleted_at.is_(None))
        )
    if code is TypeCode.MOSAIC:
        return (
            select(m.c.sentera_id, m.c.id, f.c.organization_id.label("org"))
            .join(s, s.c.id == m.c.survey_id)
            .join(f, f.c.id == s.c.field_id)
            .where(m.c.sentera_id.in_(wanted), m.c.deleted_at.is_(None))
        )
    if code is TypeCode.LOGO:
        return select(lg.c.sentera_id, lg.c.id, lg.c.organization_id.label("org")).where(
            lg.c.sentera_id.in_(wanted), lg.c.deleted_at.is_(None)
        )
    if code is TypeCode.FLIGHT_TASK:
        return select(ft.c.sentera_id, ft.c.id, ft.c.organization_id.label("org")).where(
            ft.c.sentera_id.in_(wanted), ft.c.deleted_at.is_(None)
        )
    if code is TypeCode.IMAGE:
        return (
            select(i.c.sentera_id, i.c.id, f.c.organization_id.label("org"))
            .join(s, s.c.id == i.c.survey_id)
            .join(f, f.c.id == s.c.field_id)
            .where(i.c.sentera_id.in_(wanted), i.c.deleted_at.is_(None))
        )
    if code is TypeCode.COG:
        return (
            select(c.c.sentera_id, c.c.id, f.c.organization_id.label("org"))
            .join(m, m.c.id == c.c.mosaic_id)
            .join(s, s.c.id == m.c.survey_id)
            .join(f, f.c.id == s.c.field_id)
            .where(c.c.sentera_id.in_(wanted), c.c.deleted_at.is_(None))
        )
    return None


# Built once: each call only binds the ids.
_LOCATE = {code: query for code in TypeCode if (query := _located_query(code)) is not None}

# The tables each lookup reads: what it found holds while their revisions do.
_LOCATE_TABLES = {
    code: sorted({table.name for table in find_tables(query, include_joins=True)})
    for code, query in _LOCATE.items()
}


_OWNED_TABLES = {TypeCode.FEATURE_SET: t.feature_sets, TypeCode.FILE: t.files}
SCOPE_OWNED_TYPES = frozenset(_OWNED_TABLES)
"""Types whose objects hang below an owner of one of several types (their scope key): found
by `live_owned`, not `live_objects`."""
_LOCATE_OWNED = {
    code: select(table.c.sentera_id, table.c.id, table.c.scope_type, table.c.scope_id).where(
        table.c.sentera_id.in_(bindparam("wanted", expanding=True)), table.c.deleted_at.is_(None)
    )
    for code, table in _OWNED_TABLES.items()
}


def lookup_tables(code: TypeCode) -> list[str] | None:
    """The tables `live_objects` reads for objects of type `code` (None: it finds none)."""
    return _LOCATE_TABLES.get(code)


def live_objects(conn: Connection, code: TypeCode, wanted: Sequence[str]) -> list[tuple[Any, ...]]:
    """(sentera_id, id, organization id) of the live objects of type `code` among `wanted`
    (at most `storage.sql.IN_CHUNK`); none for a type `lookup_tables` has no tables for."""
    query = _LOCATE.get(code)
    if query is None:
        return []
    return driver_rows(conn, query, {"wanted": list(wanted)})


class OwnedRow(NamedTuple):
    sentera_id: str
    id: int
    scope_type: str
    scope_id: int


def live_owned(conn: Connection, code: TypeCode, wanted: Sequence[str]) -> list[OwnedRow]:
    """The live feature sets or files among `wanted` (at most `storage.sql.IN_CHUNK`), each
    with the type and id of its owner."""
    rows = driver_rows(conn, _LOCATE_OWNED[code], {"wanted": list(wanted)})
    return [OwnedRow(*row) for row in rows]
