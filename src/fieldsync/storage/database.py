"""Engines and transactions.

Two kinds of transaction exist, and every piece of code uses one of them:

* `read_snapshot`: everything read inside sees one consistent state of the database
  (SQLite: one deferred read transaction in WAL mode; PostgreSQL: REPEATABLE READ, read only).
* `write_transaction`: all or nothing, one writer at a time (SQLite: BEGIN IMMEDIATE;
  PostgreSQL: a transaction-scoped advisory lock taken first), so derived values such as a
  mosaic's image count never race.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.pool import NullPool

DEFAULT_DATABASE_URL = "sqlite:///./fieldsync.db"
# A per-connection temporary table, made when a connection opens: a sync call puts the client's
# stale hashes in it and joins them to the hash history by primary key.
CLIENT_HASHES_TABLE = "fs_client_hashes"
WRITER_LOCK_KEY = 0x46534E43  # "FSNC": the one advisory lock that serializes writers
_SQLITE_BEGIN = "fieldsync_sqlite_begin"


class DatabaseUrlError(ValueError):
    """The database URL names no backend FieldSync supports."""


def describe_url(url: URL) -> str:
    """A URL fit for messages and logs: the password hidden."""
    return url.render_as_string(hide_password=True)


def error_summary(exc: BaseException) -> str:
    """A driver error as one line, without SQLAlchemy's statement dump and help links."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(original).__name__


def normalize_url(database_url: str) -> URL:
    """Parse a user's URL, choosing the psycopg 3 driver for plain `postgresql://`."""
    try:
        url = make_url(database_url)
    except Exception:
        raise DatabaseUrlError(
            "not a database URL: use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2", "psycopg"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    if backend == "sqlite":
        return url
    raise DatabaseUrlError(
        f"unsupported database {backend!r} in {describe_url(url)}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {CLIENT_HASHES_TABLE} "
                "(h bytea PRIMARY KEY) ON COMMIT DELETE ROWS"
            )
        dbapi_connection.commit()

    return engine


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        poolclass=NullPool if database in (None, "", ":memory:") else None,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's events issue BEGIN itself, so reads get a real snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {CLIENT_HASHES_TABLE} (h BLOB PRIMARY KEY)"
        )
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one consistent snapshot."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            with conn.begin():
                yield conn
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn


# SQLite calls the progress handler every this many virtual machine instructions (~1 ms).
_PROGRESS_INSTRUCTIONS = 20_000


@contextmanager
def statement_deadline(
    conn: Connection, seconds: float, stopped: Callable[[], bool]
) -> Iterator[None]:
    """Stop SQL that runs past a request's deadline, inside a `read_snapshot`.

    PostgreSQL: `SET LOCAL statement_timeout` (for this transaction only). SQLite: a progress
    handler on the driver connection that interrupts the statement once `stopped()` is true;
    removed again before the pooled connection serves anyone else.
    """
    if not is_sqlite(conn):
        milliseconds = max(1, int(seconds * 1000))
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
        yield
        return
    dbapi_connection: Any = conn.connection.dbapi_connection
    dbapi_connection.set_progress_handler(lambda: 1 if stopped() else 0, _PROGRESS_INSTRUCTIONS)
    try:
        yield
    finally:
        dbapi_connection.set_progress_handler(None, 0)


def interrupt_statement(conn: Connection) -> None:
    """Stop the statement a connection is running now (safe from another thread)."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    if dbapi_connection is None:
        return
    if is_sqlite(conn):
        dbapi_connection.interrupt()
    else:
        dbapi_connection.cancel_safe()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits on success and rolls back on any error."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn
        else:
            with conn.begin():
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
                yield conn
