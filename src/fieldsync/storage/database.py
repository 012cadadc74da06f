"""Engines and transactions.

Two kinds of transaction exist, and every piece of code uses one of them:

* `read_snapshot`: everything read inside sees one consistent state of the database
  (SQLite: one deferred read transaction in WAL mode; PostgreSQL: REPEATABLE READ, read only).
* `write_transaction`: all or nothing, one writer at a time (SQLite: BEGIN IMMEDIATE;
  PostgreSQL: a transaction-scoped advisory lock taken first), so derived values such as a
  mosaic's image count never race.

A third kind is only for writes to `api_tokens`, which no derived value depends on (a token
created, revoked, or its last use noted):

* `token_transaction`: all or nothing, but never behind the writer lock, so revoking a token
  does not wait for a bulk load. PostgreSQL: a plain transaction without the advisory lock,
  with a lock timeout as a bound. SQLite has one writer at a time by nature: it tries at once,
  and when another writer holds the file it calls `on_wait` (to say so) and waits up to
  `wait_seconds`. When the wait runs out it raises `WriterBusyError` and nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

DEFAULT_DATABASE_URL = "sqlite:///./fieldsync.db"
# A per-connection temporary table, made when a connection opens: a sync call puts the client's
# stale hashes in it and joins them to the hash history by primary key.
CLIENT_HASHES_TABLE = "fs_client_hashes"
WRITER_LOCK_KEY = 0x46534E43  # "FSNC": the one advisory lock that serializes writers
_SQLITE_BEGIN = "fieldsync_sqlite_begin"
_PG_LOCK_NOT_AVAILABLE = "55P03"
DEFAULT_TOKEN_WAIT_SECONDS = 600.0


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


class WriterBusyError(Exception):
    """Another writer kept the database for longer than the caller would wait; nothing was
    written."""

    def __init__(self, waited_seconds: float) -> None:
        super().__init__(f"another writer kept the database busy for {waited_seconds:g} s")
        self.waited_seconds = waited_seconds


@contextmanager
def token_transaction(
    engine: Engine,
    *,
    wait_seconds: float = DEFAULT_TOKEN_WAIT_SECONDS,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[Connection]:
    """A transaction for writes to `api_tokens` only; see the module docstring."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            with _begin_sqlite_write(conn, wait_seconds, on_wait):
                yield conn
        else:
            with conn.begin(), _lock_timeouts_as_busy(wait_seconds):
                timeout_ms = max(1, round(wait_seconds * 1000))  # 0 would mean no limit
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {timeout_ms}")
                yield conn


def _begin_sqlite_write(
    conn: Connection, wait_seconds: float, on_wait: Callable[[], None] | None
) -> RootTransaction:
    """BEGIN IMMEDIATE at once if the file is free, else after `on_wait`, waiting up to
    `wait_seconds`; WriterBusyError when it stays taken."""
    transaction = _try_sqlite_begin(conn, busy_timeout_ms=0)
    if transaction is not None:
        return transaction
    if wait_seconds <= 0:
        raise WriterBusyError(0)
    if on_wait is not None:
        on_wait()
    transaction = _try_sqlite_begin(conn, busy_timeout_ms=round(wait_seconds * 1000))
    if transaction is None:
        raise WriterBusyError(wait_seconds)
    return transaction


def _try_sqlite_begin(conn: Connection, busy_timeout_ms: int) -> RootTransaction | None:
    """The write transaction, or None when the file stayed locked for `busy_timeout_ms`."""
    usual = _sqlite_busy_timeout(conn)
    _sqlite_busy_timeout(conn, busy_timeout_ms)
    try:
        return conn.begin()
    except OperationalError as exc:
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            return None
        raise
    finally:
        _sqlite_busy_timeout(conn, usual)


def _sqlite_busy_timeout(conn: Connection, milliseconds: int | None = None) -> int:
    """Read (and with `milliseconds`, set) the connection's busy timeout. Done on the driver
    connection directly: through SQLAlchemy it would begin a transaction."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if milliseconds is not None:
            cursor.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
        value: int = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        cursor.close()
    return value


@contextmanager
def _lock_timeouts_as_busy(wait_seconds: float) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
            raise WriterBusyError(wait_seconds) from None
        raise
