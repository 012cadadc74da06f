"""Compute one sync page (sync-semantics.md §2) on a consistent snapshot.

The caller opens the snapshot (`storage.database.read_snapshot`); everything here reads
through that one connection, so the page and `remaining_count` always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Integer,
    LargeBinary,
    Select,
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

from fieldsync.hashing import HASH_BYTES, ClientHashes, encode_hash
from fieldsync.model.kinds import EntityKind
from fieldsync.storage import tables as t
from fieldsync.storage.database import CLIENT_HASHES_TABLE
from fieldsync.storage.sql import chunks, tuple_chunks
from fieldsync.storage.sync_revisions import table_revision
from fieldsync.sync.live_scans import LIVE_SCANS, LiveScan, ScopeKey
from fieldsync.sync.representation_cache import REPRESENTATIONS


@dataclass(frozen=True, slots=True)
class Scope:
    """Which items a sync call covers: a kind, and the scope keys (type → internal ids)."""

    kind: EntityKind
    keys: Mapping[str, Sequence[int]]


@dataclass(frozen=True, slots=True)
class SyncError:
    key: str
    message: str
    code: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


@dataclass(slots=True)
class SyncPage:
    upserted: list[dict[str, Any]]
    deleted: list[dict[str, Any]]
    remaining_count: int
    failed: list[SyncError] = field(default_factory=list)


def invalid_hash_errors(malformed: Sequence[str]) -> list[SyncError]:
    return [
        SyncError(
            key="invalid_content_hash",
            message="Invalid content hash: expected 16 characters of standard base64",
            code="INVALID_CONTENT_HASH",
            details={"content_hash": value},
        )
        for value in malformed
    ]


def _scope_clause(
    type_column: ColumnElement[Any], id_column: ColumnElement[Any], scope_types: Sequence[str]
) -> ColumnElement[bool]:
    """Items of any of the scope types whose scope id is in that type's list: the values are
    bound per call (`_scope_parameters`)."""
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


def _scope_parameters(scope: Scope) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The scope's shape (its non-empty scope types, sorted: one statement per set of types)
    and the values to bind."""
    types = tuple(sorted(scope_type for scope_type, ids in scope.keys.items() if ids))
    parameters: dict[str, Any] = {}
    for n, scope_type in enumerate(types):
        parameters[f"scope_type_{n}"] = scope_type
        parameters[f"scope_ids_{n}"] = list(scope.keys[scope_type])
    return types, parameters


@dataclass(frozen=True, slots=True)
class _PageStatements:
    live: Select[Any]
    """Every live item of the scope: (content_hash, id), in sync order."""
    deleted: Select[Any]
    """The client's unmatched hashes that name an item of the scope no longer live there."""


_PAGE_STATEMENTS: dict[tuple[str, tuple[str, ...]], _PageStatements] = {}


def _page_statements(kind: EntityKind, scope_types: tuple[str, ...]) -> _PageStatements:
    """The statements of `compute_page`, built once per kind and scope shape."""
    key = (kind.name, scope_types)
    found = _PAGE_STATEMENTS.get(key)
    if found is not None:
        return found
    items, versions = kind.table, t.item_versions
    live_in_scope = and_(
        items.c.deleted_at.is_(None),
        _scope_clause(items.c.scope_type, items.c.scope_id, scope_types),
    )
    live = (
        select(items.c.content_hash, items.c.id)
        .where(live_in_scope)
        .order_by(items.c.created_at, items.c.id)
    )
    client_hash = _CLIENT_HASHES.alias("client").c.h
    deleted = (
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
            versions.c.kind == kind.name,
            _scope_clause(versions.c.scope_type, versions.c.scope_id, scope_types),
            ~live_in_scope,
        )
        .order_by(versions.c.item_id, versions.c.content_hash)
    )
    return _PAGE_STATEMENTS.setdefault(key, _PageStatements(live, deleted))


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


def compute_page(conn: Connection, scope: Scope, client: ClientHashes) -> SyncPage:
    """One page of the diff between the scope's live items and the hashes a client holds.

    1. One ordered pass over the scope's covering index (`ix_<table>_live_scope`) yields every
       live item's hash and id, or the process keeps them from an earlier call when the table
       has not been written since (`sync.live_scans`); the upsert candidates are those whose
       hash the client lacks.
    2. Only the client's hashes that match no live item of the scope (usually none) can be
       deleted candidates; they go into the connection's temporary table and are joined, in
       the database, to the hash history (primary key) and the items. A deleted entry carries
       the client's hash and the item's last values in this scope.
    3. The upserted items' representations come from the process's cache, found by the id and
       hash the scan read; those not cached are read by primary key.
    """
    kind = scope.kind
    assert kind.sync is not None
    page_size = kind.sync.page_size
    scope_types, parameters = _scope_parameters(scope)
    statements = _page_statements(kind, scope_types)
    live = _live_scan(conn, scope, scope_types, parameters, statements.live)
    candidates, unmatched = live.diff(client.held)

    deleted: list[dict[str, Any]] = []
    deleted_total = 0
    if unmatched:
        _fill_client_hashes(conn, unmatched)
        rows = conn.execute(statements.deleted, parameters).all()
        deleted_total = len(rows)
        type_name = kind.sync.graphql_type
        for row in rows[:page_size]:
            # Deleted here: its final values. Moved out of the scope: the version the client
            # holds, so nothing of its new place (perhaps another tenant) shows. Decoded here,
            # not taken from the representation cache: the entry is changed below.
            deleted_here = row.scope_id in scope.keys.get(row.scope_type, ())
            entry = orjson.loads(row.last_representation if deleted_here else row.representation)
            entry["content_hash"] = encode_hash(row.content_hash)
            entry["__typename"] = type_name
            deleted.append(entry)

    upserted = _page_representations(conn, kind, candidates[: page_size - len(deleted)])
    remaining = deleted_total + len(candidates) - len(upserted) - len(deleted)
    return SyncPage(upserted=upserted, deleted=deleted, remaining_count=remaining)


def _live_scan(
    conn: Connection,
    scope: Scope,
    scope_types: tuple[str, ...],
    parameters: dict[str, Any],
    statement: Select[Any],
) -> LiveScan:
    """The scope's live `(content_hash, id)` rows in the snapshot: from the process's cache
    when the snapshot's table revision is the one they were read at, else read (and kept)."""
    table_name = scope.kind.table.name
    revision = table_revision(conn, table_name)
    key: ScopeKey = (table_name, tuple((name, tuple(scope.keys[name])) for name in scope_types))
    if revision is not None:
        cached = LIVE_SCANS.get(key, revision)
        if cached is not None:
            return cached
    scan = LiveScan.of(tuple_chunks(conn, statement, parameters))
    if revision is not None:
        LIVE_SCANS.put(key, revision, scan)
    return scan


def _page_representations(
    conn: Connection, kind: EntityKind, items: Sequence[tuple[bytes, int]]
) -> list[dict[str, Any]]:
    """The representations of a page's live items (`(content_hash, id)` rows of the snapshot's
    live scan), in order: cached ones by the hash the scan read, without reading their stored
    text; the others from the database (`load_representations`)."""
    cached = REPRESENTATIONS.get_cached(
        [(kind.name, item_id, content_hash) for content_hash, item_id in items]
    )
    missing = [
        item_id for (_, item_id), record in zip(items, cached, strict=True) if record is None
    ]
    loaded = load_representations(conn, kind, missing) if missing else {}
    return [
        record if record is not None else loaded[item_id]
        for (_, item_id), record in zip(items, cached, strict=True)
    ]


_REPRESENTATION_STATEMENTS: dict[tuple[str, str, bool], Select[Any]] = {}


def _representation_statement(kind: EntityKind, by: str, postgresql: bool) -> Select[Any]:
    """Items' (key, id, content_hash, representation) by `by` in `keys`, built once per kind,
    key column and backend.

    PostgreSQL takes the keys as one array (`= ANY(:keys)`): an IN list of 2,000 placeholders
    makes a statement text psycopg cannot cache, and it would parse it again on every call
    (some 25 ms for a page of 2,000 mosaics). SQLite takes an expanding IN list.
    """
    key = (kind.name, by, postgresql)
    found = _REPRESENTATION_STATEMENTS.get(key)
    if found is None:
        items = kind.table
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


def load_representations(
    conn: Connection, kind: EntityKind, keys: Sequence[Any], *, by: str = "id"
) -> dict[Any, dict[str, Any]]:
    """Stored representations of items (live or tombstones) by `id` or `sentera_id`.

    Each comes ready for GraphQL: with its current `content_hash` and `__typename`. They come
    from the process's `REPRESENTATIONS` cache and are shared: never change one.
    """
    assert kind.sync is not None
    statement = _representation_statement(kind, by, conn.dialect.name == "postgresql")
    type_name = kind.sync.graphql_type

    def decode(row: Any) -> dict[str, Any]:
        record: dict[str, Any] = orjson.loads(row[3])
        record["content_hash"] = encode_hash(row[2])
        record["__typename"] = type_name
        return record

    found: dict[Any, dict[str, Any]] = {}
    for part in chunks(sorted(set(keys))):
        for rows in tuple_chunks(conn, statement, {"keys": list(part)}):
            records = REPRESENTATIONS.get_many(
                (((kind.name, row[1], row[2]), row) for row in rows), decode
            )
            found.update(zip((row[0] for row in rows), records, strict=True))
    return found
