"""Small SQL building blocks whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIModule
from sqlalchemy.exc import DBAPIError
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
    with _driver_cursor(conn, statement, parameters) as cursor:
        while rows := cursor.fetchmany(TUPLE_CHUNK):
            yield rows


def driver_rows(
    conn: Connection, statement: Select[Any], parameters: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """All rows of a small query as tuples, through the driver's cursor as `tuple_chunks`
    reads them, each value converted by its column's type as SQLAlchemy would (timestamps on
    SQLite, say).

    For the few-row statements of every request (the token, the caller's organizations, the
    scope), whose cost is SQLAlchemy's execution machinery rather than their rows. The same
    rules for `statement` and `parameters` as `tuple_chunks`. Outside a transaction it runs
    in autocommit: SQLAlchemy begins none for it.
    """
    with _driver_cursor(conn, statement, parameters) as cursor:
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return _converted(conn, statement, rows)


@dataclass(frozen=True, slots=True)
class DriverRead:
    """A small query and its parameters, for `pipelined_driver_rows`."""

    statement: Select[Any]
    parameters: Mapping[str, Any]


def pipelined_driver_rows(
    conn: Connection, reads: Sequence[DriverRead], preceded_by: Sequence[str] = ()
) -> list[list[tuple[Any, ...]]]:
    """The rows of each read, as `driver_rows` returns them, after the SQL `preceded_by`
    (statements without rows, such as a `SET LOCAL`).

    PostgreSQL sends all of them, and the BEGIN of a transaction not yet begun, in one
    pipeline: one round trip. SQLite, whose statements cost no round trip, runs them in turn.
    """
    dbapi_connection: Any = conn.connection.dbapi_connection
    if conn.dialect.name != "postgresql":
        for sql in preceded_by:
            conn.exec_driver_sql(sql)
        return [driver_rows(conn, read.statement, read.parameters) for read in reads]
    bound = [_bound(conn, _compiled(conn, read.statement), dict(read.parameters)) for read in reads]
    cursors = [dbapi_connection.cursor(binary=True) for _ in reads]
    try:
        with driver_errors(conn, "; ".join([*preceded_by, *(sql for sql, _ in bound)])):
            with dbapi_connection.pipeline():
                for sql in preceded_by:
                    dbapi_connection.execute(sql)
                for cursor, (sql, values) in zip(cursors, bound, strict=True):
                    cursor.execute(sql, values)
            fetched = [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
    return [
        _converted(conn, read.statement, rows) for read, rows in zip(reads, fetched, strict=True)
    ]


def _converted(
    conn: Connection, statement: Select[Any], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Driver rows of `statement` with each value converted by its column's type."""
    processors = _result_processors(conn, statement)
    if not any(processors):
        return rows
    return [
        tuple(
            value if convert is None else convert(value)
            for convert, value in zip(processors, row, strict=True)
        )
        for row in rows
    ]


_ResultProcessor = Callable[[Any], Any] | None
_PROCESSORS: dict[tuple[int, str], tuple[Select[Any], list[_ResultProcessor]]] = {}


def _result_processors(conn: Connection, statement: Select[Any]) -> list[_ResultProcessor]:
    """Per selected column, the dialect's conversion of a driver value (None: none needed),
    found once per statement and dialect; the statement is kept alive with them, as in
    `_compiled`."""
    key = (id(statement), conn.dialect.name)
    cached = _PROCESSORS.get(key)
    if cached is None:
        dialect = conn.dialect
        processors: list[_ResultProcessor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        with _COMPILED_LOCK:
            while len(_PROCESSORS) >= COMPILED_STATEMENTS:
                del _PROCESSORS[next(iter(_PROCESSORS))]
            cached = _PROCESSORS.setdefault(key, (statement, processors))
    return cached[1]


def _bound(conn: Connection, compiled: SQLCompiler, parameters: dict[str, Any]) -> tuple[str, Any]:
    """The SQL text and the driver's parameters (named on PostgreSQL, positional on SQLite);
    the text is expanded only for a statement with expanding parameters (IN lists), which
    costs some microseconds more."""
    postgresql = conn.dialect.name == "postgresql"
    if compiled.post_compile_params or compiled.literal_execute_params:
        state = compiled.construct_expanded_state(parameters)
        return state.statement, state.parameters if postgresql else state.positional_parameters
    named = compiled.construct_params(parameters)
    if postgresql:
        return compiled.string, named
    return compiled.string, [named[name] for name in compiled.positiontup or ()]


@contextmanager
def _driver_cursor(
    conn: Connection, statement: Select[Any], parameters: Mapping[str, Any] | None
) -> Iterator[Any]:
    """A driver cursor that has executed the statement once compiled (`_compiled`); the
    driver's errors, in the execution or the fetches, are raised as SQLAlchemy's
    (`driver_errors`)."""
    sql, values = _bound(conn, _compiled(conn, statement), dict(parameters or {}))
    dbapi_connection: Any = conn.connection.dbapi_connection
    postgresql = conn.dialect.name == "postgresql"
    cursor = dbapi_connection.cursor(binary=True) if postgresql else dbapi_connection.cursor()
    try:
        with driver_errors(conn, sql, cursor):
            cursor.execute(sql, values)
            yield cursor  # the caller fetches inside: SQLite steps the statement as it does
    finally:
        cursor.close()


@contextmanager
def driver_errors(conn: Connection, sql: str, cursor: Any = None) -> Iterator[None]:
    """The driver's errors in the block raised as SQLAlchemy raises them for the statements
    it runs itself: wrapped in its `DBAPIError` classes, and when the connection is lost,
    the connection invalidated (closed, never handed out again) and the error marked
    `connection_invalidated`. For SQL sent on the driver connection directly.

    The parameters are left out of the message: they may hold a token's hash."""
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped_driver_error(conn, error, sql, cursor) from error


def _wrapped_driver_error(
    conn: Connection, error: DBAPIModule.Error, sql: str, cursor: Any
) -> BaseException:
    dialect = conn.dialect
    lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if lost and not conn.invalidated:
        conn.invalidate(error)
    return DBAPIError.instance(
        sql,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
