"""The reads of a sync page (sync.engine): a scope's live (content_hash, id) rows in sync
order, the deleted candidates among a client's unmatched hashes, and items' stored
representations by id or sentera_id. Statements are built once per table and scope shape;
every call only binds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    LargeBinary,
    Row,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    column,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from fieldsync.hashing import HASH_BYTES
from fieldsync.storage import tables as t
from fieldsync.storage.database import CLIENT_HASHES_TABLE
from fieldsync.storage.sql import chunks, tuple_chunks


def _scope_clause(
    type_column: ColumnElement[Any], id_column: ColumnElement[Any], scope_types: Sequence[str]
) -> ColumnElement[bool]:
    """Items of any of the scope types whose scope id is in that type's list: the values are
    bound per call (`scope_parameters`)."""
    parts = [
        and_(
            type_column == bindparam(f"scope_type_{n}"),
            id_column.in_(bindparam(f"scope_ids_{n}", expanding=True)),
        )
        for n in range(len(scope_types))
    ]
    if not parts:
        return false()
    return parts[0] if len(parts) == 1 else or_(*parts)


def scope_parameters(
    keys: Mapping[str, Sequence[int]],
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A scope's shape (its non-empty scope types, sorted: one statement per set of types)
    and the values to bind, from its keys (scope type → internal ids)."""
    types = tuple(sorted(scope_type for scope_type, ids in keys.items() if ids))
    parameters: dict[str, Any] = {}
    for n, scope_type in enumerate(types):
        parameters[f"scope_type_{n}"] = scope_type
        parameters[f"scope_ids_{n}"] = list(keys[scope_type])
    return types, parameters


_ShapeKey = tuple[str, tuple[str, ...]]
_LIVE_STATEMENTS: dict[_ShapeKey, Select[Any]] = {}
_DELETED_STATEMENTS: dict[_ShapeKey, Select[Any]] = {}


def _live_in_scope(items: Table, scope_types: tuple[str, ...]) -> ColumnElement[bool]:
    return and_(
        items.c.deleted_at.is_(None),
        _scope_clause(items.c.scope_type, items.c.scope_id, scope_types),
    )


def _live_statement(items: Table, scope_types: tuple[str, ...]) -> Select[Any]:
    """Every live item of the scope: (content_hash, id), in sync order."""
    key = (items.name, scope_types)
    found = _LIVE_STATEMENTS.get(key)
    if found is None:
        statement = (
            select(items.c.content_hash, items.c.id)
            .where(_live_in_scope(items, scope_types))
            .order_by(items.c.created_at, items.c.id)
        )
        found = _LIVE_STATEMENTS.setdefault(key, statement)
    return found


def _deleted_statement(items: Table, kind_name: str, scope_types: tuple[str, ...]) -> Select[Any]:
    """The client's unmatched hashes that name an item of the scope no longer live there."""
    key = (items.name, scope_types)
    found = _DELETED_STATEMENTS.get(key)
    if found is None:
        versions = t.item_versions
        client_hash = _CLIENT_HASHES.alias("client").c.h
        statement = (
            select(
                versions.c.content_hash,
                versions.c.representation,
                items.c.representation.label("last_representation"),
                items.c.scope_type,
                items.c.scope_id,
            )
            .join(items, items.c.id == versions.c.item_id)
            .where(
                versions.c.content_hash.in_(select(client_hash)),
                versions.c.kind == kind_name,
                _scope_clause(versions.c.scope_type, versions.c.scope_id, scope_types),
                ~_live_in_scope(items, scope_types),
            )
            .order_by(versions.c.item_id, versions.c.content_hash)
        )
        found = _DELETED_STATEMENTS.setdefault(key, statement)
    return found


_CLIENT_HASHES = table(CLIENT_HASHES_TABLE, column("h", LargeBinary))
_EMPTY_CLIENT_HASHES = delete(_CLIENT_HASHES)
# PostgreSQL: one bytea parameter cut into 12-byte hashes server-side, far cheaper to send than
# an array of 100,000 separately escaped values.
_CLIENT_BLOB = bindparam("client_blob", type_=LargeBinary)
_CLIENT_POSITION = func.generate_series(0, bindparam("last_position", type_=Integer)).column_valued(
    "n"
)
_FILL_CLIENT_HASHES_FROM_BLOB = insert(_CLIENT_HASHES).from_select(
    ["h"],
    select(func.substring(_CLIENT_BLOB, _CLIENT_POSITION * HASH_BYTES + 1, HASH_BYTES)),
)
_FILL_CLIENT_HASHES = f"INSERT INTO {CLIENT_HASHES_TABLE} (h) VALUES (?)"


def _fill_client_hashes(conn: Connection, raw: Sequence[bytes]) -> None:
    """Put the client's distinct hashes in the connection's temporary table (`h`, indexed).

    The table is emptied first (PostgreSQL also empties it at commit).
    """
    conn.execute(_EMPTY_CLIENT_HASHES)  # an earlier sync field of the same request may have used it
    if conn.dialect.name == "postgresql":
        conn.execute(
            _FILL_CLIENT_HASHES_FROM_BLOB,
            {"client_blob": b"".join(raw), "last_position": len(raw) - 1},
        )
    else:
        conn.exec_driver_sql(_FILL_CLIENT_HASHES, [(h,) for h in raw])


def live_rows(
    conn: Connection, items: Table, scope_types: tuple[str, ...], parameters: dict[str, Any]
) -> Iterator[list[tuple[Any, ...]]]:
    """Every live item of the scope, `(content_hash, id)` in sync order, in batches (the
    scope's covering index `ix_<table>_live_scope`)."""
    return tuple_chunks(conn, _live_statement(items, scope_types), parameters)


def deleted_rows(
    conn: Connection,
    items: Table,
    kind_name: str,
    scope_types: tuple[str, ...],
    parameters: dict[str, Any],
    unmatched: Sequence[bytes],
) -> list[Row[Any]]:
    """The versions among the client's `unmatched` hashes of items of the scope that are no
    longer live there: content_hash, representation (of that version), the item's
    last_representation, scope_type and scope_id; by item, then hash. `kind_name` is the
    items' kind in `item_versions`."""
    _fill_client_hashes(conn, unmatched)
    statement = _deleted_statement(items, kind_name, scope_types)
    return list(conn.execute(statement, parameters))


_REPRESENTATION_STATEMENTS: dict[tuple[str, str, bool], Select[Any]] = {}


def _representation_statement(items: Table, by: str, postgresql: bool) -> Select[Any]:
    """Items' (key, id, content_hash, representation) by `by` in `keys`, built once per
    table, key column and backend.

    PostgreSQL takes the keys as one array (`= ANY(:keys)`): an IN list of 2,000 placeholders
    makes a statement text psycopg cannot cache, and it would parse it again on every call
    (some 25 ms for a page of 2,000 mosaics). SQLite takes an expanding IN list.
    """
    key = (items.name, by, postgresql)
    found = _REPRESENTATION_STATEMENTS.get(key)
    if found is None:
        key_column = items.c[by]
        if postgresql:
            keys = bindparam("keys", type_=ARRAY(key_column.type))
            wanted = key_column == any_(keys)
        else:
            wanted = key_column.in_(bindparam("keys", expanding=True))
        statement: Select[Any] = select(
            key_column.label("key"), items.c.id, items.c.content_hash, items.c.representation
        ).where(wanted)
        found = _REPRESENTATION_STATEMENTS.setdefault(key, statement)
    return found


def representation_rows(
    conn: Connection, items: Table, keys: Sequence[Any], *, by: str = "id"
) -> Iterator[list[tuple[Any, ...]]]:
    """(key, id, content_hash, representation) of the items (live or tombstones) whose `by`
    column is among `keys`, in batches."""
    statement = _representation_statement(items, by, conn.dialect.name == "postgresql")
    for part in chunks(sorted(set(keys))):
        yield from tuple_chunks(conn, statement, {"keys": list(part)})
