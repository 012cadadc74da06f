"""Engines and transactions.

Two kinds of transaction exist, and every piece of code uses one of them:

* `read_snapshot`: everything read inside sees one consistent state of the database
  (SQLite: one deferred read transaction in WAL mode; PostgreSQL: REPEATABLE READ, read only).
* `write_transaction`: all or nothing, one writer at a time (SQLite: BEGIN IMMEDIATE;
  PostgreSQL: a transaction-scoped advisory lock taken first), so derived values such as a
  mosaic's image count never race.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
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


# PostgreSQL error classes that mean "cannot be reached right now": connection exceptions (08),
# server shutting down or starting up (57P), insufficient resources such as too many
# connections (53). Client-side failures (refused, closed unexpectedly) carry no SQLSTATE.
_PG_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached or used right now (down,
    restarting, connection lost, out of connections), as opposed to a bad statement or a
    cancelled query. Such errors deserve a 503 and a retry, not a traceback."""
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.InterfaceError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    original = exc.orig
    sqlite_name = getattr(original, "sqlite_errorname", None)
    if sqlite_name is not None:
        return any(str(sqlite_name).startswith(name) for name in _SQLITE_UNAVAILABLE)
    if type(original).__module__.startswith("sqlite3"):
        return "unable to open" in str(original) or "locked" in str(original)
    sqlstate = getattr(original, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith(_PG_UNAVAILABLE_SQLSTATES)


def is_pool_timeout(exc: BaseException) -> bool:
    """Whether every pooled connection stayed busy for the whole checkout timeout."""
    return isinstance(exc, sa_exc.TimeoutError)


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


def make_engine(
    database_url: str, *, pool_size: int = 5, pool_timeout: float | None = None
) -> Engine:
    """An engine; `pool_timeout` bounds the wait for a pooled connection (SQLAlchemy: 30 s)."""
    url = normalize_url(database_url)
    timeout = {} if pool_timeout is None else {"pool_timeout": pool_timeout}
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, timeout)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        **timeout,
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


def _sqlite_engine(url: URL, pool_options: dict[str, float]) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    in_memory = database in (None, "", ":memory:")
    engine = create_engine(
        url,
        poolclass=NullPool if in_memory else None,
        connect_args={"check_same_thread": False, "timeout": 30},
        **({} if in_memory else pool_options),
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
