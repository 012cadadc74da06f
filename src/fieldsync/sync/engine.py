"""Compute one sync page (sync-semantics.md §2) on a consistent snapshot.

The caller opens the snapshot (`storage.database.read_snapshot`); everything here reads
through that one connection, so the page and `remaining_count` always agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    FromClause,
    LargeBinary,
    and_,
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
from sqlalchemy.sql.elements import ColumnElement

from fieldsync.hashing import HASH_BYTES, ClientHashes, encode_hash
from fieldsync.model.kinds import EntityKind
from fieldsync.storage import tables as t
from fieldsync.storage.database import CLIENT_HASHES_TABLE
from fieldsync.storage.sql import chunks, fetch_tuples


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
    type_column: ColumnElement[Any],
    id_column: ColumnElement[Any],
    keys: Mapping[str, Sequence[int]],
) -> ColumnElement[bool]:
    parts = [
        and_(type_column == scope_type, id_column.in_(list(ids)))
        for scope_type, ids in keys.items()
        if ids
    ]
    if not parts:
        return false()
    return parts[0] if len(parts) == 1 else or_(*parts)


def _client_hash_relation(conn: Connection, raw: Sequence[bytes]) -> FromClause:
    """The client's distinct hashes as the indexed one-column relation `h`.

    The connection's temporary table is emptied and filled for this call (PostgreSQL also
    empties it at commit).
    """
    client = table(CLIENT_HASHES_TABLE, column("h", LargeBinary))
    conn.execute(delete(client))  # an earlier sync field of the same request may have used it
    if conn.dialect.name == "postgresql":
        # One bytea parameter cut into 12-byte hashes server-side: far cheaper to send than an
        # array of 100,000 separately escaped values.
        blob = bindparam("client_blob", value=b"".join(raw), type_=LargeBinary)
        position = func.generate_series(0, len(raw) - 1).column_valued("n")
        hashes = select(func.substring(blob, position * HASH_BYTES + 1, HASH_BYTES))
        conn.execute(insert(client).from_select(["h"], hashes))
    else:
        conn.exec_driver_sql(
            f"INSERT INTO {CLIENT_HASHES_TABLE} (h) VALUES (?)", [(h,) for h in raw]
        )
    return client.alias("client")


def compute_page(conn: Connection, scope: Scope, client: ClientHashes) -> SyncPage:
    """One page of the diff between the scope's live items and the hashes a client holds.

    1. One ordered pass over the scope's covering index (`ix_<table>_live_scope`) yields every
       live item's hash and id; the upsert candidates are those whose hash the client lacks.
    2. Only the client's hashes that match no live item of the scope (usually none) can be
       deleted candidates; they go into the connection's temporary table and are joined, in
       the database, to the hash history (primary key) and the items. A deleted entry carries
       the client's hash and the item's last values in this scope.
    3. The upserted items' representations are read by primary key.
    """
    kind = scope.kind
    assert kind.sync is not None
    page_size = kind.sync.page_size
    items = kind.table
    live_in_scope = and_(
        items.c.deleted_at.is_(None),
        _scope_clause(items.c.scope_type, items.c.scope_id, scope.keys),
    )
    live = fetch_tuples(
        conn,
        select(items.c.content_hash, items.c.id)
        .where(live_in_scope)
        .order_by(items.c.created_at, items.c.id),
    )
    held = client.held
    live_hashes = {row[0] for row in live}
    unmatched = [h for h in client.raw if h not in live_hashes]

    deleted: list[dict[str, Any]] = []
    deleted_total = 0
    if unmatched:
        client_hash = _client_hash_relation(conn, unmatched).c.h
        versions = t.item_versions
        deleted_query = (
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
                _scope_clause(versions.c.scope_type, versions.c.scope_id, scope.keys),
                ~live_in_scope,
            )
            .order_by(versions.c.item_id, versions.c.content_hash)
        )
        rows = conn.execute(deleted_query).all()
        deleted_total = len(rows)
        type_name = kind.sync.graphql_type
        for row in rows[:page_size]:
            # Deleted here: its final values. Moved out of the scope: the version the client
            # holds, so nothing of its new place (perhaps another tenant) shows.
            deleted_here = row.scope_id in scope.keys.get(row.scope_type, ())
            entry = json.loads(row.last_representation if deleted_here else row.representation)
            entry["content_hash"] = encode_hash(row.content_hash)
            entry["__typename"] = type_name
            deleted.append(entry)

    candidates = [row[1] for row in live if row[0] not in held]
    upsert_ids = candidates[: page_size - len(deleted)]
    records = load_representations(conn, kind, upsert_ids)
    upserted = [records[item_id] for item_id in upsert_ids]
    remaining = deleted_total + len(candidates) - len(upserted) - len(deleted)
    return SyncPage(upserted=upserted, deleted=deleted, remaining_count=remaining)


def load_representations(
    conn: Connection, kind: EntityKind, keys: Sequence[Any], *, by: str = "id"
) -> dict[Any, dict[str, Any]]:
    """Stored representations of items (live or tombstones) by `id` or `sentera_id`.

    Each comes ready for GraphQL: with its current `content_hash` and `__typename`.
    """
    assert kind.sync is not None
    items = kind.table
    key_column = items.c[by]
    type_name = kind.sync.graphql_type
    found: dict[Any, dict[str, Any]] = {}
    for part in chunks(sorted(set(keys))):
        rows = conn.execute(
            select(key_column.label("key"), items.c.content_hash, items.c.representation).where(
                key_column.in_(part)
            )
        )
        for row in rows:
            record = json.loads(row.representation)
            record["content_hash"] = encode_hash(row.content_hash)
            record["__typename"] = type_name
            found[row.key] = record
    return found
