"""Engines and transactions.

Two kinds of transaction exist, and every piece of code uses one of them:

* `read_snapshot`: everything read inside sees one consistent state of the database
  (SQLite: one deferred read transaction in WAL mode; PostgreSQL: REPEATABLE READ, read only).
* `write_transaction`: all or nothing, one writer at a time (SQLite: BEGIN IMMEDIATE;
  PostgreSQL: a transaction-scoped advisory lock taken first), so derived values such as a
  mosaic's image count never race. A writer that finds another one at work waits its turn for
  a bounded time (`WriteWait`, attached to an engine with `with_write_wait`), says so once
  through `on_wait`, and fails with `WriterBusyError` when the bound runs out.

A third kind is only for writes to side tables no derived value depends on: `api_tokens` (a
token created, revoked, or its last use noted) and the leases of `cog_jobs`:

* `side_transaction`: all or nothing, but never behind the writer lock, so revoking a token
  or renewing a job's lease does not wait for a bulk load on PostgreSQL (a plain transaction,
  bounded by a lock timeout).
  SQLite has one writer at a time by nature: there it waits like `write_transaction`.
"""

from __future__ import annotations

import select
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from fieldsync.errors import FieldSyncError
from fieldsync.storage.sql import DriverRead, driver_errors, pipelined_driver_rows
from fieldsync.storage.sync_revisions import ALL_REVISIONS, forget_revisions, keep_revisions

DEFAULT_DATABASE_URL = "sqlite:///./fieldsync.db"
# A per-connection temporary table, made when a connection opens: a sync call puts the client's
# stale hashes in it and joins them to the hash history by primary key.
CLIENT_HASHES_TABLE = "fs_client_hashes"
WRITER_LOCK_KEY = 0x46534E43  # "FSNC": the one advisory lock that serializes writers
_SQLITE_BEGIN = "fieldsync_sqlite_begin"
_WRITE_WAIT = "fieldsync_write_wait"
_PG_LOCK_NOT_AVAILABLE = "55P03"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A writer that gets the lock within this time is not announced as waiting.
_QUIET_WAIT_SECONDS = 1.0


class DatabaseUrlError(ValueError):
    """The database URL names no backend FieldSync supports."""


class DatabaseDriverError(DatabaseUrlError):
    """The database's driver is not installed."""


class WriterBusyError(FieldSyncError):
    """Another writer held the database for longer than this writer would wait."""

    code = "WRITER_BUSY"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"another writer held the database for more than {seconds:g} s; nothing was "
            "written: try again when it has finished"
        )
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class WriteWait:
    """How long a writer waits for another writer to finish, and what it calls once it waits."""

    seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000
    on_wait: Callable[[float], None] | None = None
    """Called once, with `seconds`, when the lock was not free at once."""


def with_write_wait(engine: Engine, wait: WriteWait) -> Engine:
    """The same engine (same pool), its write transactions waiting as `wait` says."""
    return engine.execution_options(**{_WRITE_WAIT: wait})


class MissingDatabaseError(FieldSyncError):
    """A SQLite URL names a file (or a directory) that does not exist."""

    code = "NO_DATABASE"


def sqlite_file(database_url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL and in-memory databases."""
    url = normalize_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


class InMemoryDatabaseError(DatabaseUrlError):
    """A SQLite URL without a file: its database would vanish with the command."""


def refuse_in_memory_sqlite(database_url: str) -> None:
    """A command's database must outlive the command: `sqlite://` names no file."""
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise InMemoryDatabaseError(
            f"{database_url!r} names no file (an in-memory database is lost when the command "
            "ends): use sqlite:///PATH, e.g. sqlite:///./fieldsync.db"
        )


def check_sqlite_file(database_url: str, *, create: bool) -> bool:
    """Whether the SQLite file must be created; refuses a missing file unless `create`.

    A missing parent directory is always an error: a mistyped path never makes a new tree.
    """
    refuse_in_memory_sqlite(database_url)
    path = sqlite_file(database_url)
    if path is None or path.exists():
        return False
    if not path.parent.is_dir():
        raise MissingDatabaseError(
            f"no directory {str(path.parent)!r} for the SQLite database {str(path)!r}: "
            "create the directory first, or fix the path"
        )
    if not create:
        raise MissingDatabaseError(
            f"no database at {str(path)!r}: check the path, or create it with "
            "'fieldsync db upgrade' (or 'fieldsync serve')"
        )
    return True


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
    _require_postgresql_driver()
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        **timeout,
    )
    event.listen(engine, "checkout", _refuse_closed_connection)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {CLIENT_HASHES_TABLE} "
                "(h bytea PRIMARY KEY) ON COMMIT DELETE ROWS"
            )
        dbapi_connection.commit()

    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no pooled PostgreSQL connection the server has closed: the pool then opens
    a new one (SQLAlchemy's pessimistic disconnect handling, by event).

    An idle connection has nothing to read; once the server ends it (a restart, an
    administrator, `idle_session_timeout`) its socket reads as ready: the farewell message or
    the end of the stream. Looking costs one `poll` and no round trip, where
    `pool_pre_ping` would send a query at every checkout.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise sa_exc.DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise sa_exc.DisconnectionError("the server has closed the connection")


def _require_postgresql_driver() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise DatabaseDriverError(
            "PostgreSQL needs the psycopg driver, which is not installed: "
            "pip install 'fieldsync[postgresql]'"
        ) from None


def _sqlite_engine(url: URL, pool_options: dict[str, float]) -> Engine:
    database = url.database
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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {CLIENT_HASHES_TABLE} (h BLOB PRIMARY KEY)"
        )
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        begin = f"BEGIN {mode}"
        with driver_errors(conn, begin):  # raised as the driver errors of SQLAlchemy's SQL
            dbapi_connection: Any = conn.connection.dbapi_connection
            if dbapi_connection.in_transaction:
                return  # write_transaction has begun it already, holding the write lock
            if mode is not None:  # None: single_statement_read, each statement on its own
                dbapi_connection.execute(begin)

    return engine


def check_connection(engine: Engine) -> None:
    """Raise unless the database answers a query."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one consistent snapshot."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            with conn.begin():
                yield conn
        else:
            # psycopg begins with `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`: one round
            # trip, where a `SET TRANSACTION READ ONLY` after the BEGIN would be a second.
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with conn.begin():
                yield conn


@contextmanager
def single_statement_read(engine: Engine) -> Iterator[Connection]:
    """A connection for a read made of one statement, which sees one snapshot by itself.

    It runs without a transaction around it (autocommit), where a `read_snapshot` adds a
    BEGIN and a COMMIT (two round trips on PostgreSQL).
    """
    with engine.connect() as conn:
        if is_sqlite(conn):
            yield conn.execution_options(**{_SQLITE_BEGIN: None})
        else:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")


# SQLite calls the progress handler every this many virtual machine instructions (~1 ms).
_PROGRESS_INSTRUCTIONS = 20_000


@contextmanager
def statement_deadline(
    conn: Connection,
    seconds: float,
    stopped: Callable[[], bool],
    first_reads: Sequence[DriverRead] = (),
) -> Iterator[list[list[tuple[Any, ...]]]]:
    """Stop SQL that runs past a request's deadline, inside a `read_snapshot`; the rows of
    `first_reads`, read under the deadline at once, are what it yields.

    PostgreSQL: `SET LOCAL statement_timeout` (for this transaction only), sent in one
    pipeline with the transaction's BEGIN and the first reads, and in a read-only snapshot
    the sync tables' revisions read in the same pipeline (`storage.sync_revisions`): one round
    trip for all.
    SQLite: a progress handler on the driver connection that interrupts the statement once
    `stopped()` is true; removed again before the pooled connection serves anyone else.
    """
    dbapi_connection: Any = conn.connection.dbapi_connection
    if not is_sqlite(conn):
        milliseconds = max(1, int(seconds * 1000))
        read_only = bool(conn.get_execution_options().get("postgresql_readonly"))
        reads = [*first_reads, ALL_REVISIONS] if read_only else list(first_reads)
        rows = pipelined_driver_rows(
            conn, reads, preceded_by=[f"SET LOCAL statement_timeout = {milliseconds}"]
        )
        if read_only:
            keep_revisions(conn, rows.pop())
        try:
            yield rows
        finally:
            forget_revisions(conn)
        return
    dbapi_connection.set_progress_handler(lambda: 1 if stopped() else 0, _PROGRESS_INSTRUCTIONS)
    try:
        yield pipelined_driver_rows(conn, first_reads)
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
    """A connection in a transaction that commits on success and rolls back on any error.

    Only one writer works at a time; this one waits for the others as the engine's
    `WriteWait` says and raises `WriterBusyError` after that. Without one, a SQLite writer
    waits 30 s silently and a PostgreSQL writer waits as long as it takes.
    """
    with engine.connect() as conn:
        wait: WriteWait | None = conn.get_execution_options().get(_WRITE_WAIT)
        if is_sqlite(conn):
            _begin_sqlite_write(conn.connection.dbapi_connection, wait or WriteWait())
            with conn.begin():
                yield conn
        else:
            with conn.begin():
                _take_postgresql_writer_lock(conn, wait)
                yield conn


@contextmanager
def side_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for writes to side tables only; see the module docstring."""
    with engine.connect() as conn:
        wait: WriteWait = conn.get_execution_options().get(_WRITE_WAIT) or WriteWait()
        if is_sqlite(conn):
            _begin_sqlite_write(conn.connection.dbapi_connection, wait)
            with conn.begin():
                yield conn
        else:
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_milliseconds(wait.seconds)}")
                with _lock_timeout_as_busy(wait):
                    yield conn


def _milliseconds(seconds: float) -> int:
    """A PostgreSQL timeout of at least 1 ms (0 would mean no limit)."""
    return max(1, round(seconds * 1000))


@contextmanager
def _lock_timeout_as_busy(wait: WriteWait) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
            raise WriterBusyError(wait.seconds) from None
        raise


def _begin_sqlite_write(dbapi_connection: Any, wait: WriteWait) -> None:
    """BEGIN IMMEDIATE on the raw connection: quietly at first, then announced, then give up."""
    quiet = min(wait.seconds, _QUIET_WAIT_SECONDS)
    try:
        if _try_begin_immediate(dbapi_connection, quiet):
            return
        if wait.on_wait is not None:
            wait.on_wait(wait.seconds)
        if _try_begin_immediate(dbapi_connection, wait.seconds - quiet):
            return
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    raise WriterBusyError(wait.seconds)


def _try_begin_immediate(dbapi_connection: Any, seconds: float) -> bool:
    """Whether the write lock was taken within `seconds` (False when another writer holds it)."""
    dbapi_connection.execute(f"PRAGMA busy_timeout={max(0, round(seconds * 1000))}")
    try:
        dbapi_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return False
        raise
    return True


def _take_postgresql_writer_lock(conn: Connection, wait: WriteWait | None) -> None:
    """The writers' advisory lock: at once if free, else announced and bounded by lock_timeout."""
    key = {"key": WRITER_LOCK_KEY}
    if wait is None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
        return
    if conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key).scalar_one():
        return
    if wait.on_wait is not None:
        wait.on_wait(wait.seconds)
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_milliseconds(wait.seconds)}")
    with _lock_timeout_as_busy(wait):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
    conn.exec_driver_sql("SET LOCAL lock_timeout = DEFAULT")
