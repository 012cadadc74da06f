"""The SQL of the write path (fieldsync.write.writer): inserts and updates of item rows, links
(memberships, mosaic images), soft deletes and what a cascade finds below a deleted item.
Every function takes any number of ids and binds them in chunks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks


def insert_items(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert rows (each with its sentera_id); their new ids by sentera_id."""
    statement = insert(table).returning(
        table.c.sentera_id, table.c.id, sort_by_parameter_order=True
    )
    return {sentera_id: item_id for sentera_id, item_id in conn.execute(statement, list(rows))}


def update_items(conn: Connection, table: Table, changes: Mapping[int, dict[str, Any]]) -> None:
    """Set each row's changed columns (by id); one executemany per set of columns changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for item_id, changed in changes.items():
        values = {f"v_{name}": value for name, value in changed.items()}
        groups[tuple(sorted(changed))].append({"_id": item_id, **values})
    for names, parameters in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values({name: bindparam(f"v_{name}") for name in names})
        )
        conn.execute(statement, parameters)


def images_of_mosaic(conn: Connection, mosaic_id: int) -> list[int]:
    """The ids of the images a mosaic links (counted or not)."""
    mi = t.mosaic_images
    query = select(mi.c.image_id).where(mi.c.mosaic_id == mosaic_id)
    return list(conn.execute(query).scalars())


def delete_links(conn: Connection, table: Table, owner_column: str, owner_id: int) -> None:
    """Remove every link row of one owner (a user's memberships, a mosaic's images)."""
    conn.execute(delete(table).where(table.c[owner_column] == owner_id))


def insert_links(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), list(rows))


def mark_deleted(conn: Connection, table: Table, ids: Iterable[int], now: datetime) -> None:
    """Make rows tombstones (`deleted_at`)."""
    for part in chunks(sorted(set(ids))):
        conn.execute(update(table).where(table.c.id.in_(part)).values(deleted_at=now))


def _live_ids(conn: Connection, table: Table, where: ColumnElement[bool]) -> set[int]:
    query = select(table.c.id).where(where, table.c.deleted_at.is_(None))
    return set(conn.execute(query).scalars())


def live_children(
    conn: Connection, table: Table, column: str, parent_ids: Iterable[int]
) -> set[int]:
    """The live rows of `table` whose `column` is one of `parent_ids`."""
    found: set[int] = set()
    for part in chunks(sorted(set(parent_ids))):
        found |= _live_ids(conn, table, table.c[column].in_(part))
    return found


def live_owned(
    conn: Connection, table: Table, owner_type: str, owner_ids: Iterable[int]
) -> set[int]:
    """The live files or feature sets of owners of one type."""
    found: set[int] = set()
    for part in chunks(sorted(set(owner_ids))):
        where = (table.c.scope_type == owner_type) & table.c.scope_id.in_(part)
        found |= _live_ids(conn, table, where)
    return found


def clear_column(conn: Connection, table: Table, column: str, ids: Iterable[int]) -> None:
    """Set `column` to NULL in the rows `ids` (a reference to something deleted)."""
    for part in chunks(sorted(set(ids))):
        conn.execute(update(table).where(table.c.id.in_(part)).values({column: None}))


def live_mosaics_linking(conn: Connection, image_column: str, keys: Iterable[int]) -> set[int]:
    """Live mosaics linking an image (live or not) whose `image_column` (id, survey_id) is one
    of `keys`."""
    mi, i, m = t.mosaic_images, t.images, t.mosaics
    found: set[int] = set()
    for part in chunks(sorted(set(keys))):
        query = (
            select(mi.c.mosaic_id)
            .join(i, i.c.id == mi.c.image_id)
            .join(m, m.c.id == mi.c.mosaic_id)
            .where(i.c[image_column].in_(part), m.c.deleted_at.is_(None))
            .distinct()
        )
        found.update(conn.execute(query).scalars())
    return found


def refresh_statistics(engine: Engine, tables: Iterable[Table]) -> None:
    """Refresh PostgreSQL's planner statistics of `tables` and the version history, after a
    bulk load (SQLite has none to refresh).

    Autovacuum would do it within a minute or so (and never where it is switched off); until
    then the planner may take a 100,000-row survey for an empty one.
    """
    names = sorted({table.name for table in tables})
    if engine.dialect.name != "postgresql" or not names:
        return
    names = sorted({*names, t.item_versions.name})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE " + ", ".join(names))
