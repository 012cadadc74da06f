"""The local mirror: `DIR/mirror.sqlite`, one table per synced type, written one page per
transaction so that a pull killed at any moment leaves it consistent.

Each type's table is keyed by `sentera_id` and holds `content_hash`, one column per field the
client selects (nested objects flattened: `survey { sentera_id }` is `survey_sentera_id`), the
item's full JSON in `json`, and for types with bytes the `local_*` columns of the copy on disk.
This module is the client's storage layer: all of its SQL is here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldsync.client.errors import DiskFullError
from fieldsync.client.queries import KINDS, Kind, columns
from fieldsync.client.sync import Item, SyncPage

MIRROR_FILE = "mirror.sqlite"
FORMAT_VERSION = 1
WITH_BYTES = ("images", "files")
LOCAL_COLUMNS = ("local_path", "local_checksum", "local_size", "local_mtime_ns")
_REAL = {"latitude", "longitude", "altitude", "area_value"}
_INTEGER = {"size", "version", "max_zoom", "clipped", "released", "is_from_sentera_sensor"}
_OWNER_TABLES = {
    "SURVEY": "surveys",
    "MOSAIC": "mosaics",
    "FIELD": "fields",
    "FEATURE_SET": "feature_sets",
    "LOGO": "logos",
    "ORGANIZATION": "organizations",
}
_PARENT_TABLES = {
    "fields": ("organization_sentera_id", "organizations"),
    "surveys": ("field_sentera_id", "fields"),
    "mosaics": ("survey_sentera_id", "surveys"),
    "images": ("survey_sentera_id", "surveys"),
    "cogs": ("survey_sentera_id", "surveys"),
    "flight_tasks": ("organization_sentera_id", "organizations"),
}
_OWNED = {"feature_sets": "feature_set_owner", "files": "file_owner"}
SWEEP_ORDER = (
    "fields",
    "surveys",
    "mosaics",
    "images",
    "cogs",
    "feature_sets",
    "files",
    "flight_tasks",
)


class MirrorError(Exception):
    """The mirror cannot be used as it is (made by a newer client, not a mirror)."""


@dataclass
class PageCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class LocalCopy:
    """A row with bytes: what the server says they are, and what is on disk."""

    kind: str
    sentera_id: str
    filename: str
    size: int | None
    checksum: str
    url: str | None
    local_path: str | None
    local_checksum: str | None
    local_size: int | None
    local_mtime_ns: int | None


def column_type(name: str) -> str:
    if name in _REAL:
        return "REAL"
    if name in _INTEGER or name == "local_size" or name == "local_mtime_ns":
        return "INTEGER"
    return "TEXT"


def kind_columns(kind: Kind) -> list[str]:
    """The table's columns after sentera_id, in order."""
    names = [name for name in columns(kind.selection) if name != "sentera_id"]
    extra = list(LOCAL_COLUMNS) if kind.name in WITH_BYTES else []
    return names + extra + ["json"]


def _flatten(item: Item, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[prefix + key] = value
    return flat


def _column_value(name: str, value: Any) -> Any:
    if name == "size" and isinstance(value, str):
        return int(value) if value.isdigit() else None
    if isinstance(value, list):
        return json.dumps(value)
    return value


class Mirror:
    """One open mirror; the caller holds the directory's pull lock while writing."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        self.directory = directory
        self.path = directory / MIRROR_FILE
        if read_only:
            if not self.path.is_file():
                raise MirrorError(
                    f"{directory} holds no mirror: run `fieldsync pull --to {directory}` first"
                )
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            return
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._create()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk becomes DiskFullError (nothing of it kept)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise DiskFullError(self.directory) from None
            raise MirrorError(f"{self.path} cannot be written: {exc}") from None

    def _create(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if found is not None and int(found[0]) > FORMAT_VERSION:
                raise MirrorError(
                    f"{self.path} was written by a newer fieldsync (format {found[0]}): "
                    "upgrade fieldsync, or pull into another directory"
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
            db.execute(
                "CREATE TABLE IF NOT EXISTS organizations (sentera_id TEXT PRIMARY KEY, "
                "name TEXT, parent_organization_id TEXT, json TEXT NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS logos (sentera_id TEXT PRIMARY KEY, "
                "organization_sentera_id TEXT NOT NULL, name TEXT)"
            )
            for kind in KINDS.values():
                spec = ", ".join(f"{name} {column_type(name)}" for name in kind_columns(kind))
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind.name} (sentera_id TEXT PRIMARY KEY, {spec})"
                )
                db.execute(
                    f"CREATE INDEX IF NOT EXISTS {kind.name}_by_parent "
                    f"ON {kind.name} ({kind.parent})"
                )

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- organizations ---------------------------------------------------------------------

    def replace_organizations(self, organizations: Sequence[Item]) -> None:
        """The organizations (and logos) the token reads now, replacing the previous list."""
        with self.transaction() as db:
            db.execute("DELETE FROM organizations")
            db.execute("DELETE FROM logos")
            for org in organizations:
                db.execute(
                    "INSERT INTO organizations VALUES (?, ?, ?, ?)",
                    (org["sentera_id"], org.get("name"), org.get("parent_organization_id"),
                     json.dumps(org)),
                )  # fmt: skip
                for logo in org.get("logos") or []:
                    db.execute(
                        "INSERT OR REPLACE INTO logos VALUES (?, ?, ?)",
                        (logo["sentera_id"], org["sentera_id"], logo.get("name")),
                    )

    # -- reading a scope -------------------------------------------------------------------

    def ids(self, table: str, parent_column: str, parents: Iterable[str]) -> list[str]:
        """sentera_ids of the rows of `table` whose `parent_column` is one of `parents`."""
        found: list[str] = []
        for chunk in _chunks(list(parents)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT sentera_id FROM {table} WHERE {parent_column} IN ({marks}) "
                "ORDER BY sentera_id",
                chunk,
            )
            found.extend(row[0] for row in rows)
        return found

    def held_hashes(
        self, kind: Kind, parents: Sequence[str], omit: frozenset[str] = frozenset()
    ) -> list[str]:
        """The content hashes held in one scope (rows whose parent column is in `parents`),
        less those of the sentera_ids in `omit` (to have the server send them again)."""
        hashes: list[str] = []
        for chunk in _chunks(list(parents)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT sentera_id, content_hash FROM {kind.name} "
                f"WHERE {kind.parent} IN ({marks})",
                chunk,
            )
            hashes.extend(digest for sentera_id, digest in rows if sentera_id not in omit)
        return hashes

    def rows(self, table: str, where: str = "", parameters: Sequence[Any] = ()) -> list[Item]:
        """Rows as dicts (for export and summaries); `where` is a fixed SQL condition."""
        cursor = self.db.execute(
            f"SELECT * FROM {table} {'WHERE ' + where if where else ''} ORDER BY sentera_id",
            parameters,
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def rows_of(self, table: str, sentera_ids: Sequence[str]) -> list[Item]:
        """The rows of `table` with these sentera_ids, as dicts."""
        found: list[Item] = []
        for chunk in _chunks(list(sentera_ids)):
            found.extend(self.rows(table, f"sentera_id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    # -- writing a page --------------------------------------------------------------------

    def apply_page(self, kind: Kind, page: SyncPage) -> PageCounts:
        """Apply one sync page in one transaction: deleted entries (when the hash is the one
        held), then upserts by sentera_id."""
        counts = PageCounts()
        written = [n for n in kind_columns(kind) if n not in LOCAL_COLUMNS and n != "json"]
        upsert = _upsert_statement(kind.name, kind_columns(kind))
        with self.transaction() as db:
            cursor = db.executemany(
                f"DELETE FROM {kind.name} WHERE sentera_id = ? AND content_hash = ?",
                [(entry.sentera_id, entry.content_hash) for entry in page.deleted],
            )
            counts.deleted = max(cursor.rowcount, 0)
            existing = self._existing(kind.name, [item["sentera_id"] for item in page.upserted])
            db.executemany(upsert, [_row(item, written) for item in page.upserted])
            counts.updated = sum(item["sentera_id"] in existing for item in page.upserted)
            counts.created = len(page.upserted) - counts.updated
        return counts

    def _existing(self, table: str, sentera_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(sentera_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT sentera_id FROM {table} WHERE sentera_id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    def sweep_orphans(self) -> dict[str, int]:
        """Delete rows whose parent is no longer held (a deleted survey's images, the fields of
        an organization the token no longer reads), parents first, in one transaction."""
        removed: dict[str, int] = {}
        with self.transaction() as db:
            for table in SWEEP_ORDER:
                removed[table] = self._sweep(db, table)
        return {table: n for table, n in removed.items() if n}

    @staticmethod
    def _sweep(db: sqlite3.Connection, table: str) -> int:
        if table in _PARENT_TABLES:
            column, parents = _PARENT_TABLES[table]
            cursor = db.execute(
                f"DELETE FROM {table} WHERE {column} IS NULL OR {column} NOT IN "
                f"(SELECT sentera_id FROM {parents})"
            )
            return cursor.rowcount
        owner = _OWNED[table]
        total = 0
        for owner_type, parents in _OWNER_TABLES.items():
            cursor = db.execute(
                f"DELETE FROM {table} WHERE {owner}_owner_type = ? AND {owner}_sentera_id "
                f"NOT IN (SELECT sentera_id FROM {parents})",
                (owner_type,),
            )
            total += cursor.rowcount
        return total

    # -- bytes -----------------------------------------------------------------------------

    def copies(self, kind: str, sentera_ids: Iterable[str] | None = None) -> list[LocalCopy]:
        """Rows of `kind` (images or files) that have bytes on the server."""
        name = "download_filename" if kind == "files" else "filename"
        select = (
            f"SELECT sentera_id, {name}, size, checksum, url, local_path, local_checksum, "
            f"local_size, local_mtime_ns FROM {kind} WHERE checksum IS NOT NULL"
        )
        if sentera_ids is None:
            rows = list(self.db.execute(select + " ORDER BY sentera_id"))
        else:
            rows = []
            for chunk in _chunks(list(sentera_ids)):
                marks = ",".join("?" * len(chunk))
                rows.extend(self.db.execute(f"{select} AND sentera_id IN ({marks})", chunk))
        return [LocalCopy(kind, *row) for row in rows]

    def record_copy(
        self, copy: LocalCopy, path: str | None, size: int | None, mtime_ns: int | None
    ) -> None:
        """Note the verified bytes on disk for `copy` (or none, with path None)."""
        with self.transaction() as db:
            db.execute(
                f"UPDATE {copy.kind} SET local_path = ?, local_checksum = ?, local_size = ?, "
                "local_mtime_ns = ? WHERE sentera_id = ? AND checksum = ?",
                (path, copy.checksum if path else None, size, mtime_ns, copy.sentera_id,
                 copy.checksum),
            )  # fmt: skip

    def local_paths(self) -> set[str]:
        paths: set[str] = set()
        for kind in WITH_BYTES:
            rows = self.db.execute(f"SELECT local_path FROM {kind} WHERE local_path IS NOT NULL")
            paths.update(row[0] for row in rows)
        return paths


def _row(item: Item, names: list[str]) -> list[Any]:
    """The values of an upsert: sentera_id, the flattened columns `names`, the JSON."""
    flat = _flatten(item)
    values = [_column_value(name, flat.get(name)) for name in names]
    return [item["sentera_id"], *values, json.dumps(item)]


def _upsert_statement(table: str, names: list[str]) -> str:
    written = [name for name in names if name not in LOCAL_COLUMNS]
    marks = ",".join("?" * (len(written) + 1))
    updates = ", ".join(f"{name} = excluded.{name}" for name in written)
    return (
        f"INSERT INTO {table} (sentera_id, {', '.join(written)}) VALUES ({marks}) "
        f"ON CONFLICT (sentera_id) DO UPDATE SET {updates}"
    )


def _chunks(values: list[str], size: int = 900) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
