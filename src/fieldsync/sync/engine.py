"""Compute one sync page (sync-semantics.md §2) on a consistent snapshot.

The caller opens the snapshot (`storage.database.read_snapshot`); everything here reads
through that one connection, so the page and `remaining_count` always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from fieldsync.hashing import ClientHashes, encode_hash
from fieldsync.model.kinds import EntityKind
from fieldsync.storage.sync_reads import (
    deleted_rows,
    live_rows,
    representation_rows,
    scope_parameters,
)
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
    scope_types, parameters = scope_parameters(scope.keys)
    live = _live_scan(conn, scope, scope_types, parameters)
    candidates, unmatched = live.diff(client.held)

    deleted: list[dict[str, Any]] = []
    deleted_total = 0
    if unmatched:
        rows = deleted_rows(conn, kind.table, kind.name, scope_types, parameters, unmatched)
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
    scan = LiveScan.of(live_rows(conn, scope.kind.table, scope_types, parameters))
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


def load_representations(
    conn: Connection, kind: EntityKind, keys: Sequence[Any], *, by: str = "id"
) -> dict[Any, dict[str, Any]]:
    """Stored representations of items (live or tombstones) by `id` or `sentera_id`.

    Each comes ready for GraphQL: with its current `content_hash` and `__typename`. They come
    from the process's `REPRESENTATIONS` cache and are shared: never change one.
    """
    assert kind.sync is not None
    type_name = kind.sync.graphql_type

    def decode(row: Any) -> dict[str, Any]:
        record: dict[str, Any] = orjson.loads(row[3])
        record["content_hash"] = encode_hash(row[2])
        record["__typename"] = type_name
        return record

    found: dict[Any, dict[str, Any]] = {}
    for rows in representation_rows(conn, kind.table, keys, by=by):
        records = REPRESENTATIONS.get_many(
            (((kind.name, row[1], row[2]), row) for row in rows), decode
        )
        found.update(zip((row[0] for row in rows), records, strict=True))
    return found
