"""Small SQL building blocks whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

# Well under SQLite's limit of 32,766 bound variables per statement.
IN_CHUNK = 5000


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_ignoring_duplicates(
    conn: Connection, table: Table, rows: Iterable[dict[str, Any]]
) -> None:
    """INSERT rows, skipping those whose primary key already exists."""
    batch = list(rows)
    if not batch:
        return
    if conn.dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing()
    conn.execute(statement, batch)


def fetch_tuples(conn: Connection, statement: Select[Any]) -> list[tuple[Any, ...]]:
    """All rows of a query as plain tuples, straight from the driver's cursor.

    For hot paths reading ~10^5 small rows: skips SQLAlchemy's per-row result processing
    (about 3x faster) and, on PostgreSQL, uses psycopg's binary format. Only for columns whose
    driver values need no conversion (integers, bytes, text).
    """
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    dbapi_connection: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi_connection.cursor(binary=True)
        parameters: Any = compiled.params
    else:
        cursor = dbapi_connection.cursor()
        parameters = [compiled.params[name] for name in compiled.positiontup or ()]
    try:
        cursor.execute(compiled.string, parameters)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    finally:
        cursor.close()
    return rows
