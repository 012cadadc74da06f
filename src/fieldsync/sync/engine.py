"""Compute one sync page (sync-semantics.md §2) on a consistent snapshot.

The diff is set-wise in the database: the client's hashes become a relation (a temporary table
on SQLite, `unnest` of a bytea array on PostgreSQL) and two anti/semi-joins against the scope's
live-item index and the hash history give the upsert and deleted candidates. Only the page's
own rows are then read in full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    FromClause,
    LargeBinary,
    and_,
    bindparam,
    column,
    exists,
    false,
    func,
    or_,
    select,
    table,
)
from sqlalchemy.sql.elements import ColumnElement

from fieldsync.hashing import ClientHashes, encode_hash
from fieldsync.model.kinds import EntityKind
from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks

_SQLITE_CLIENT_TABLE = "fs_client_hashes"


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
    """The client's hashes as a one-column relation `h` inside the current transaction."""
    if conn.dialect.name == "postgresql":
        array = bindparam("client_hashes", value=list(raw), type_=ARRAY(LargeBinary))
        return func.unnest(array).table_valued("h").render_derived(name="client")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_SQLITE_CLIENT_TABLE} (h BLOB PRIMARY KEY)"
    )
    conn.exec_driver_sql(f"DELETE FROM {_SQLITE_CLIENT_TABLE}")
    if raw:
        conn.exec_driver_sql(
            f"INSERT INTO {_SQLITE_CLIENT_TABLE} (h) VALUES (?)", [(h,) for h in raw]
        )
    return table(_SQLITE_CLIENT_TABLE, column("h", LargeBinary)).alias("client")


def compute_page(conn: Connection, scope: Scope, client: ClientHashes) -> SyncPage:
    """One page of the diff between the scope's live items and the hashes a client holds."""
    kind = scope.kind
    assert kind.sync is not None
    page_size = kind.sync.page_size
    items = kind.table
    live_in_scope = and_(
        items.c.deleted_at.is_(None),
        _scope_clause(items.c.scope_type, items.c.scope_id, scope.keys),
    )

    deleted_rows: list[tuple[bytes, int]] = []
    if client.raw:
        client_rel = _client_hash_relation(conn, client.raw)
        client_hash: ColumnElement[Any] = client_rel.c.h
        upsert_filter: ColumnElement[bool] = and_(
            live_in_scope,
            ~exists().where(client_hash == items.c.content_hash),
        )
        versions = t.item_versions
        deleted_query = (
            select(versions.c.content_hash, versions.c.item_id)
            .select_from(client_rel)
            .join(versions, versions.c.content_hash == client_hash)
            .join(items, items.c.id == versions.c.item_id)
            .where(
                versions.c.kind == kind.name,
                _scope_clause(versions.c.scope_type, versions.c.scope_id, scope.keys),
                ~live_in_scope,
            )
            .order_by(versions.c.item_id, versions.c.content_hash)
        )
        deleted_rows = [(row.content_hash, row.item_id) for row in conn.execute(deleted_query)]
    else:
        upsert_filter = live_in_scope

    page_deleted = deleted_rows[:page_size]
    upsert_slots = page_size - len(page_deleted)
    upsert_ids: list[int] = []
    upsert_total = 0
    if upsert_slots > 0:
        total = func.count().over().label("total")
        rows = conn.execute(
            select(items.c.id, total)
            .where(upsert_filter)
            .order_by(items.c.created_at, items.c.id)
            .limit(upsert_slots)
        ).all()
        upsert_ids = [row.id for row in rows]
        upsert_total = rows[0].total if rows else 0
    else:
        upsert_total = conn.execute(
            select(func.count()).select_from(items).where(upsert_filter)
        ).scalar_one()

    records = load_representations(
        conn, kind, upsert_ids + [item_id for _, item_id in page_deleted]
    )
    upserted = [records[item_id] for item_id in upsert_ids]
    deleted = [
        records[item_id] | {"content_hash": encode_hash(content_hash)}
        for content_hash, item_id in page_deleted
    ]
    remaining = len(deleted_rows) + upsert_total - len(upserted) - len(deleted)
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
