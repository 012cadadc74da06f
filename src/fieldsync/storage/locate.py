"""Live objects by sentera_id: their internal id and the organization they hang below."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    FromClause,
    Select,
    Table,
    bindparam,
    select,
)
from sqlalchemy.sql.util import find_tables

from fieldsync.ids import TypeCode
from fieldsync.storage import tables as t
from fieldsync.storage.sql import driver_rows

_LOCATED_TABLES = {
    TypeCode.ORGANIZATION: t.organizations,
    TypeCode.FIELD: t.fields,
    TypeCode.SURVEY: t.surveys,
    TypeCode.MOSAIC: t.mosaics,
    TypeCode.LOGO: t.logos,
    TypeCode.FLIGHT_TASK: t.flight_tasks,
    TypeCode.IMAGE: t.images,
    TypeCode.COG: t.cogs,
}
# How a row without an organization_id of its own reaches one: its parent's key and table.
_PARENTS: dict[str, tuple[Column[Any], Table]] = {
    "cogs": (t.cogs.c.mosaic_id, t.mosaics),
    "mosaics": (t.mosaics.c.survey_id, t.surveys),
    "images": (t.images.c.survey_id, t.surveys),
    "surveys": (t.surveys.c.field_id, t.fields),
}


def _located_query(table: Table) -> Select[Any]:
    """The query of sentera_id, id and organization ("org") of the live rows of `table` whose
    sentera_id is in the expanding `wanted`, joined up to the first table that names the
    organization."""
    source: FromClause = table
    above = table
    while above is not t.organizations and "organization_id" not in above.c:
        key, parent = _PARENTS[above.name]
        source = source.join(parent, parent.c.id == key)
        above = parent
    organization = above.c.id if above is t.organizations else above.c.organization_id
    wanted: BindParameter[Any] = bindparam("wanted", expanding=True)
    return (
        select(table.c.sentera_id, table.c.id, organization.label("org"))
        .select_from(source)
        .where(table.c.sentera_id.in_(wanted), table.c.deleted_at.is_(None))
    )


# Built once: each call only binds the ids.
_LOCATE = {code: _located_query(table) for code, table in _LOCATED_TABLES.items()}

# The tables each lookup reads: what it found holds while their revisions do.
_LOCATE_TABLES = {
    code: sorted({table.name for table in find_tables(query)}) for code, query in _LOCATE.items()
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
