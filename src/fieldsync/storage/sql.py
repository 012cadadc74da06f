"""Small SQL building blocks whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

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


# Statements built once number a few dozen; the bound only keeps a caller that builds a new
# statement per call from growing the cache without end.
COMPILED_STATEMENTS = 512
_COMPILED: dict[tuple[int, str], tuple[Select[Any], SQLCompiler]] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled(conn: Connection, statement: Select[Any]) -> SQLCompiler:
    """The statement compiled once per dialect; it is kept alive with its compiled form, so
    its id is never reused while cached."""
    key = (id(statement), conn.dialect.name)
    cached = _COMPILED.get(key)
    if cached is None:
        compiled = statement.compile(dialect=conn.dialect)
        assert isinstance(compiled, SQLCompiler)
        with _COMPILED_LOCK:
            while len(_COMPILED) >= COMPILED_STATEMENTS:
                del _COMPILED[next(iter(_COMPILED))]  # the oldest
            cached = _COMPILED.setdefault(key, (statement, compiled))
    return cached[1]


TUPLE_CHUNK = 10_000
"""Rows a `tuple_chunks` batch holds: the caller keeps one batch of a large result at a time."""


def tuple_chunks(
    conn: Connection, statement: Select[Any], parameters: Mapping[str, Any] | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a query as plain tuples, straight from the driver's cursor, in batches.

    For hot paths reading ~10^5 small rows: skips SQLAlchemy's per-row result processing
    (about 3x faster) and, on PostgreSQL, uses psycopg's binary format; the Python rows exist
    one batch at a time. Only for columns whose driver values need no conversion (integers,
    bytes, text).

    `statement` must be built once (at module level, or cached per shape) with `bindparam`s
    for its values, `parameters` their values (lists for `expanding` ones): it is compiled
    once per dialect and every call only binds.
    """
    state = _compiled(conn, statement).construct_expanded_state(dict(parameters or {}))
    dbapi_connection: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi_connection.cursor(binary=True)
        values: Any = state.parameters
    else:
        cursor = dbapi_connection.cursor()
        values = state.positional_parameters
    try:
        cursor.execute(state.statement, values)
        while rows := cursor.fetchmany(TUPLE_CHUNK):
            yield rows
    finally:
        cursor.close()
