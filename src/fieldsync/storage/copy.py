"""Copying a whole FieldSync database to another one (`fieldsync db copy`).

The usual use is moving from the embedded SQLite file to PostgreSQL. Rows are copied table by
table in dependency order, in batches, with their primary keys and every stored value (content
hashes, representations, tombstones, hash history, token hashes), so clients keep their hashes
and tokens keep working; transient tables (rate limit counters) are left out. The source is
read in one snapshot; the target is written in one transaction, so a failed copy leaves it
without data. The target must hold no FieldSync data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, inspect, select, text
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import SQLAlchemyError

from fieldsync.storage.database import (
    DatabaseUrlError,
    describe_url,
    error_summary,
    make_engine,
    normalize_url,
    read_snapshot,
    write_transaction,
)
from fieldsync.storage.migrate import schema_status, upgrade
from fieldsync.storage.tables import data_tables, metadata

DEFAULT_BATCH_SIZE = 5000


class CopyError(Exception):
    """The copy cannot be made; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    rows: int


@dataclass(slots=True)
class CopyReport:
    tables: list[TableCount] = field(default_factory=list)
    seconds: float = 0.0
    sequences_reset: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(entry.rows for entry in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def _parse(database_url: str, which: str) -> URL:
    try:
        return normalize_url(database_url)
    except DatabaseUrlError as exc:
        raise CopyError(f"{which}: {exc}") from None


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _same_database(source: URL, target: URL) -> bool:
    source_file, target_file = _sqlite_file(source), _sqlite_file(target)
    if source_file is not None or target_file is not None:
        return source_file == target_file
    return (source.host, source.port, source.database) == (
        target.host,
        target.port,
        target.database,
    )


def _tables_with_rows(conn: Connection) -> list[str]:
    """FieldSync tables in the database that hold at least one row."""
    existing = set(inspect(conn).get_table_names())
    occupied: list[str] = []
    for table in data_tables():
        if table.name in existing and conn.execute(select(1).select_from(table).limit(1)).first():
            occupied.append(table.name)
    return occupied


def _refuse_if_not_empty(conn: Connection, target: URL) -> None:
    occupied = _tables_with_rows(conn)
    if occupied:
        raise CopyError(
            f"target {describe_url(target)} is not empty (rows in {', '.join(occupied)}); "
            "copy only into a new, empty database. Nothing was written"
        )


def _self_references(table: Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]


Batch = list[tuple[Any, ...]]
"""Rows of one table as tuples, in the order of `table.columns`."""


def _source_rows(conn: Connection, table: Table, batch_size: int) -> Iterator[Batch]:
    """The rows of a table in batches, in primary key order (parents first when a table refers
    to itself, as organizations do)."""
    statement = select(table).order_by(*table.primary_key.columns)
    references = _self_references(table)
    if references:
        rows = [tuple(row) for row in conn.execute(statement)]
        ordered = _parents_first(table, rows, references)
        for start in range(0, len(ordered), batch_size):
            yield ordered[start : start + batch_size]
        return
    result = conn.execution_options(yield_per=batch_size).execute(statement)
    for partition in result.partitions():
        yield [tuple(row) for row in partition]


def _parents_first(table: Table, rows: Batch, references: list[str]) -> Batch:
    """Order rows so a row comes after every row of the same table it refers to."""
    names = [column.name for column in table.columns]
    (key,) = [names.index(column.name) for column in table.primary_key.columns]
    positions = [names.index(name) for name in references]
    pending = {row[key]: row for row in rows}
    ordered: Batch = []
    while pending:
        ready = [
            row_key
            for row_key, row in pending.items()
            if all(row[position] not in pending for position in positions)
        ]
        if not ready:
            raise CopyError(f"table {table.name} has rows that refer to each other in a cycle")
        for row_key in ready:
            ordered.append(pending.pop(row_key))
    return ordered


def _write_batch(conn: Connection, table: Table, batch: Batch) -> None:
    """INSERT a batch; into PostgreSQL with COPY, which is several times faster.

    COPY gets the values SQLAlchemy would bind (each column type's bind processing applied),
    so both paths store the same thing.
    """
    dialect = conn.dialect
    columns = list(table.columns)
    if dialect.name != "postgresql":
        keys = [column.key for column in columns]
        conn.execute(insert(table), [dict(zip(keys, row, strict=True)) for row in batch])
        return
    processors = [
        (position, process)
        for position, column in enumerate(columns)
        if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(column.name) for column in columns)
    statement = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in batch:
            if processors:
                values = list(row)
                for position, process in processors:
                    values[position] = process(values[position])
                copy.write_row(values)
            else:
                copy.write_row(row)


def _reset_sequences(conn: Connection) -> list[str]:
    """After inserting explicit ids into PostgreSQL, move each id sequence to max(id)."""
    reset: list[str] = []
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        column = table.c.get("id")
        if column is None or not column.primary_key:
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:table, 'id')"),
            {"table": preparer.format_table(table)},
        ).scalar()
        if sequence is None:
            continue
        conn.execute(
            text(
                f"SELECT setval(:sequence, COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
                f"FROM {preparer.format_table(table)}"
            ),
            {"sequence": sequence},
        )
        reset.append(table.name)
    return reset


def _migrate(engine: Engine, url: URL, which: str) -> None:
    try:
        upgrade(engine)
    except Exception as exc:
        raise CopyError(
            f"cannot migrate {which} {describe_url(url)}: {error_summary(exc)}"
        ) from None


def copy_database(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_table: Callable[[TableCount], None] | None = None,
) -> CopyReport:
    """Copy every FieldSync row from `source_url` into the empty database at `target_url`.

    Both schemas are brought to the newest version first. Raises CopyError (one-line message)
    when the copy cannot be made; the target then holds no copied data.
    """
    if batch_size < 1:
        raise CopyError("the batch size must be at least 1")
    source, target = _parse(source_url, "--from"), _parse(target_url, "--to")
    if _same_database(source, target):
        raise CopyError("--from and --to name the same database")
    source_file = _sqlite_file(source)
    if source_file is not None and not source_file.is_file():
        raise CopyError(f"source database file {source_file} does not exist")
    source_engine = make_engine(source.render_as_string(hide_password=False))
    target_engine = make_engine(target.render_as_string(hide_password=False))
    try:
        return _copy(source_engine, target_engine, source, target, batch_size, on_table)
    finally:
        source_engine.dispose()
        target_engine.dispose()


def _copy(
    source_engine: Engine,
    target_engine: Engine,
    source: URL,
    target: URL,
    batch_size: int,
    on_table: Callable[[TableCount], None] | None,
) -> CopyReport:
    try:
        source_status = schema_status(source_engine)
    except SQLAlchemyError as exc:
        raise CopyError(
            f"cannot reach source {describe_url(source)}: {error_summary(exc)}"
        ) from None
    if source_status.current is None:
        raise CopyError(f"source {describe_url(source)} holds no FieldSync schema")
    try:
        with target_engine.connect() as conn:
            _refuse_if_not_empty(conn, target)
    except SQLAlchemyError as exc:
        raise CopyError(
            f"cannot reach target {describe_url(target)}: {error_summary(exc)}"
        ) from None
    _migrate(source_engine, source, "source")
    _migrate(target_engine, target, "target")

    report = CopyReport()
    started = time.perf_counter()
    try:
        with read_snapshot(source_engine) as reader, write_transaction(target_engine) as writer:
            # Checked again under the writer lock: nobody filled the target meanwhile.
            _refuse_if_not_empty(writer, target)
            for table in data_tables():
                copied = 0
                for batch in _source_rows(reader, table, batch_size):
                    _write_batch(writer, table, batch)
                    copied += len(batch)
                landed = writer.execute(select(func.count()).select_from(table)).scalar_one()
                if landed != copied:
                    raise CopyError(
                        f"table {table.name}: {copied} rows read but {landed} in the target; "
                        "nothing was written"
                    )
                entry = TableCount(table.name, copied)
                report.tables.append(entry)
                if on_table is not None:
                    on_table(entry)
            if writer.dialect.name == "postgresql":
                report.sequences_reset = _reset_sequences(writer)
    except SQLAlchemyError as exc:
        raise CopyError(f"copy failed, nothing was written: {error_summary(exc)}") from None
    report.seconds = time.perf_counter() - started
    return report
