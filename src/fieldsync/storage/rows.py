"""Looking up rows by their public id."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.engine import RowMapping

from fieldsync.storage.sql import chunks


def rows_by_sentera_id(
    conn: Connection, table: Table, sentera_ids: Iterable[str]
) -> dict[str, RowMapping]:
    """Rows (live or tombstones) of `table` by sentera_id, any number of ids."""
    found: dict[str, RowMapping] = {}
    for part in chunks(sorted({sid for sid in sentera_ids if isinstance(sid, str)})):
        for row in conn.execute(select(table).where(table.c.sentera_id.in_(part))).mappings():
            found[row["sentera_id"]] = row
    return found


def ids_by_sentera_id(conn: Connection, table: Table, sentera_ids: Iterable[str]) -> dict[str, int]:
    """Internal ids of the rows (live or tombstones) of `table` among `sentera_ids`."""
    found: dict[str, int] = {}
    for part in chunks(sorted(set(sentera_ids))):
        query = select(table.c.sentera_id, table.c.id).where(table.c.sentera_id.in_(part))
        found.update((sentera_id, item_id) for sentera_id, item_id in conn.execute(query))
    return found


def rows_by_id(conn: Connection, table: Table, row_id: int) -> list[RowMapping]:
    """The row (live or a tombstone) of `table` with that id: one, or none."""
    return list(conn.execute(select(table).where(table.c.id == row_id)).mappings())


def count_rows(conn: Connection, table: Table) -> int:
    """How many rows `table` holds, live or not."""
    total: int = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return total
