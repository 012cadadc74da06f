"""The revision of a sync table (`tables.sync_revisions`, kept by triggers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Connection, bindparam, select

from fieldsync.storage import tables as t
from fieldsync.storage.sql import DriverRead, driver_rows

_REVISION = select(t.sync_revisions.c.revision).where(
    t.sync_revisions.c.table_name == bindparam("table_name")
)
ALL_REVISIONS = DriverRead(select(t.sync_revisions.c.table_name, t.sync_revisions.c.revision), {})
"""Every table's revision: PostgreSQL reads them with a snapshot's BEGIN, in one round trip
(`storage.database.statement_deadline`)."""
_READ_AT_BEGIN = "fieldsync_sync_revisions"


def table_revision(conn: Connection, table_name: str) -> int | None:
    """The table's revision in the connection's snapshot; None when the table has none (a
    schema made without migration 0006's rows), so nothing may be reused for it.

    Also None in a PostgreSQL transaction that may write: there the revision changes at the
    transaction's first write to the table only (migration 0007), so what it reads after
    that write is not what the revision stands for once it commits.
    """
    read_at_begin: dict[str, int] | None = conn.info.get(_READ_AT_BEGIN)
    if read_at_begin is not None:
        return read_at_begin.get(table_name)
    if conn.dialect.name == "postgresql" and not conn.get_execution_options().get(
        "postgresql_readonly"
    ):
        return None
    rows = driver_rows(conn, _REVISION, {"table_name": table_name})
    return rows[0][0] if rows else None


def revisions_read_at_begin(conn: Connection, table_names: Sequence[str]) -> tuple[int, ...] | None:
    """The tables' revisions as the snapshot's BEGIN read them (PostgreSQL, read only); None
    when they were not read there, or a table has none. For reads small enough that reading
    the revisions on their own would cost as much as the read itself."""
    read_at_begin: dict[str, int] | None = conn.info.get(_READ_AT_BEGIN)
    if read_at_begin is None:
        return None
    revisions = tuple(read_at_begin.get(name) for name in table_names)
    return None if None in revisions else cast(tuple[int, ...], revisions)


def keep_revisions(conn: Connection, rows: Iterable[tuple[str, int]]) -> None:
    """Keep the revisions read at the snapshot's start for `table_revision`, until
    `forget_revisions` (before the connection goes back to the pool)."""
    conn.info[_READ_AT_BEGIN] = dict(rows)


def forget_revisions(conn: Connection) -> None:
    if not conn.invalidated:  # an invalidated connection's record is never used again
        conn.info.pop(_READ_AT_BEGIN, None)
