"""Server commands: serve, load, token, db, blobs. They work on a database directly."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from fieldsync.api.limits import MAX_OWNERS_CEILING
from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.changeset.apply import parse_changeset
from fieldsync.config import (
    COG_WORKER_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_PORT,
    MIN_BODY_BYTES,
    Settings,
)
from fieldsync.errors import FieldSyncError
from fieldsync.observability import configure_logging, metrics_directory, uvicorn_options
from fieldsync.storage.database import (
    DEFAULT_DATABASE_URL,
    DatabaseUrlError,
    InMemoryDatabaseError,
    MissingDatabaseError,
    WriterBusyError,
    WriteWait,
    check_sqlite_file,
    describe_url,
    error_summary,
    make_engine,
    normalize_url,
    refuse_in_memory_sqlite,
    with_write_wait,
)
from fieldsync.storage.migrate import schema_status, upgrade
from fieldsync.tokens import (
    TokenInfo,
    create_token,
    list_tokens,
    parse_duration,
    revoke,
)

F = TypeVar("F", bound=Callable[..., Any])
# Option defaults are the settings' own, so the two never disagree.
DEFAULTS = Settings()
DEFAULT_WRITE_WAIT_SECONDS = 600.0


def database_option(function: F) -> F:
    option = click.option(
        "--database-url",
        envvar="FIELDSYNC_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="sqlite:///PATH or postgresql://USER@HOST/DB [env: FIELDSYNC_DATABASE_URL]",
    )
    return option(function)


def write_wait_option(function: F) -> F:
    option = click.option(
        "--write-wait",
        envvar="FIELDSYNC_WRITE_WAIT",
        type=click.FloatRange(min=0),
        default=DEFAULT_WRITE_WAIT_SECONDS,
        show_default=True,
        help="Seconds to wait for another writer to finish [env: FIELDSYNC_WRITE_WAIT]",
    )
    return option(function)


def waiting_writer(engine: Engine, seconds: float) -> Engine:
    """The engine whose writes wait up to `seconds` for another writer, saying so once."""

    def announce(bound: float) -> None:
        click.echo(f"waiting for another writer to finish (up to {bound:g} s)…", err=True)

    return with_write_wait(engine, WriteWait(seconds=seconds, on_wait=announce))


def ensure_database_file(database_url: str, *, create: bool) -> bool:
    """Whether a new SQLite file will be made; refuses a missing one unless `create`."""
    try:
        return check_sqlite_file(database_url, create=create)
    except DatabaseUrlError as exc:
        raise click.UsageError(str(exc)) from None
    except MissingDatabaseError as exc:
        raise click.ClickException(str(exc)) from None


def open_database(
    database_url: str,
    *,
    migrate: bool = True,
    create: bool = False,
    pool_timeout: float | None = None,
) -> Engine:
    """An engine on a reachable database, its schema brought up to date first (by default).

    A SQLite file that does not exist is an error, unless `create` (serve, db upgrade).
    """
    created = ensure_database_file(database_url, create=create)
    try:
        engine = make_engine(database_url, pool_timeout=pool_timeout)
    except DatabaseUrlError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        if migrate:
            upgrade(engine)
        else:
            with engine.connect():
                pass
    except Exception as exc:
        raise click.ClickException(
            f"cannot open database {describe_url(engine.url)}: {error_summary(exc)}"
        ) from None
    if created:
        click.echo(f"created new database {engine.url.database}", err=True)
    return engine


def refuse_sqlite_workers(database_url: str, workers: int) -> None:
    """Before anything is created: several processes need PostgreSQL."""
    if workers == 1:
        return
    try:
        backend = normalize_url(database_url).get_backend_name()
    except DatabaseUrlError as exc:
        raise click.UsageError(str(exc)) from None
    if backend == "sqlite":
        raise click.UsageError("--workers above 1 needs PostgreSQL; SQLite serves from one process")


def ensure_port_free(host: str, port: int) -> None:
    """Fail before anything is written (a demo, a token) when the port cannot be listened on."""
    try:
        with socket.create_server((host, port)):
            pass
    except OverflowError:
        raise click.ClickException(f"port {port} is not a port: use 0 to 65535") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is in use: choose another with --port"
        else:
            message = f"cannot listen on {host} port {port}: {exc.strerror or exc}"
        raise click.ClickException(message) from None


def _setting_option(name: str, kind: Any, help_text: str) -> Callable[[F], F]:
    """`--NAME` for the setting of that name, with its FIELDSYNC_* variable and default."""
    setting = name.replace("-", "_")
    envvar = f"FIELDSYNC_{setting.upper()}"
    return click.option(
        f"--{name}",
        setting,
        envvar=envvar,
        type=kind,
        default=getattr(DEFAULTS, setting),
        show_default=True,
        help=f"{help_text} [env: {envvar}]",
    )


def _switch_option(name: str, help_text: str) -> Callable[[F], F]:
    """`--NAME/--no-NAME` for a yes/no setting, with its FIELDSYNC_* variable and default."""
    setting = name.replace("-", "_")
    envvar = f"FIELDSYNC_{setting.upper()}"
    return click.option(
        f"--{name}/--no-{name}",
        setting,
        envvar=envvar,
        default=getattr(DEFAULTS, setting),
        show_default=True,
        help=f"{help_text} [env: {envvar}]",
    )


def limit_options(function: F) -> F:
    """The cost limits of one request (docs/limits.md), each an option of `serve`."""
    options = [
        _setting_option("max-query-depth", click.IntRange(min=1), "Deepest field nesting"),
        _setting_option("max-query-aliases", click.IntRange(min=0), "Aliased fields a request"),
        _setting_option("max-query-fields", click.IntRange(min=1), "Field selections a request"),
        _setting_option("max-query-cost", click.IntRange(min=1), "Estimated cost a request"),
        _setting_option("max-query-tokens", click.IntRange(min=1), "Tokens of a query document"),
        _setting_option("max-hashes", click.IntRange(min=0), "content_hashes a request"),
        _setting_option(
            "max-owners",
            click.IntRange(1, MAX_OWNERS_CEILING),
            "sync_files/sync_feature_sets owners a request",
        ),
        _setting_option(
            "request-timeout",
            click.FloatRange(min=0, min_open=True),
            "Seconds a request may run before it is stopped (503 TIMEOUT)",
        ),
        _setting_option(
            "max-response-bytes",
            click.IntRange(min=MIN_BODY_BYTES),
            "Larger answers become a RESPONSE_TOO_LARGE error",
        ),
        _switch_option("introspection", "Answer schema introspection queries"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def operations_options(function: F) -> F:
    """`serve` options of docs/operations.md: logs, GraphiQL, fast path, admission, shutdown."""
    options = [
        _setting_option(
            "log-format", click.Choice(LOG_FORMATS), "One JSON object per log line, or text"
        ),
        _switch_option("graphiql", "Serve GraphiQL to browsers at /graphql"),
        _switch_option(
            "fast-path",
            "Run sync queries on the compiled fast path; --no-fast-path runs every request "
            "through graphql-core's standard execution",
        ),
        _setting_option(
            "max-concurrent-requests",
            click.IntRange(min=1),
            "GraphQL requests executing at once per process",
        ),
        _setting_option(
            "max-queued-requests",
            click.IntRange(min=0),
            "Requests that may wait for a slot; more get 503 at once",
        ),
        _setting_option(
            "queue-timeout",
            click.FloatRange(min=0, min_open=True),
            "Seconds a request waits for a slot before 503",
        ),
        _setting_option(
            "pool-timeout",
            click.FloatRange(min=0.1),
            "Seconds to wait for a database connection before 503",
        ),
        _setting_option(
            "retry-after", click.IntRange(min=1), "Seconds in the Retry-After header of a 503"
        ),
        _setting_option(
            "shutdown-timeout",
            click.FloatRange(min=0, min_open=True),
            "Seconds in-flight requests get to finish after SIGTERM",
        ),
        _setting_option(
            "cog-worker",
            click.Choice(COG_WORKER_MODES),
            "Run a COG worker inside serve: auto = on SQLite only",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def blob_options(function: F) -> F:
    """Where file bytes are kept and how long unattached uploads live (docs/blobs.md)."""
    options = [
        _setting_option("blob-store", str, "file:///PATH (or a plain path) or s3://BUCKET/PREFIX"),
        _setting_option(
            "upload-lifetime",
            click.IntRange(min=1),
            "Seconds an upload may wait to be attached; unreferenced bytes are kept as long",
        ),
        _setting_option(
            "blob-gc-interval",
            click.IntRange(min=0),
            "Seconds between background blob garbage collections; 0 turns them off",
        ),
        _setting_option(
            "public-url", str, "Base of absolute file links (else the request's own base URL)"
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def check_blob_store(url: str) -> None:
    """A bad blob store URL or signing key is a usage error before anything starts."""
    from fieldsync.blobs.context import SECRET_KEY_VARIABLE, open_blob_store
    from fieldsync.blobs.signing import MIN_SECRET_KEY_BYTES
    from fieldsync.blobs.store import BlobStoreUrlError

    try:
        open_blob_store(url)
    except BlobStoreUrlError as exc:
        raise click.UsageError(str(exc)) from None
    configured = os.environ.get(SECRET_KEY_VARIABLE, "").strip()
    if configured and len(configured.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
        raise click.UsageError(
            f"{SECRET_KEY_VARIABLE} must hold at least {MIN_SECRET_KEY_BYTES} characters "
            "(e.g. the output of `openssl rand -hex 32`), or be unset to use the generated key"
        )


def database_failure(exc: BaseException, command: str | None) -> click.ClickException | None:
    """The one line for a database that failed in the middle of a command, or None when
    `exc` is something else."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    all_or_nothing = " (a load is all or nothing)" if command == "load" else ""
    return click.ClickException(
        f"the database failed during '{command}': {error_summary(exc)}; "
        f"it did not complete{all_or_nothing}: run it again when the database is back"
    )


@click.command()
@click.option(
    "--host",
    envvar="FIELDSYNC_HOST",
    default=DEFAULTS.host,
    show_default=True,
    help="[env: FIELDSYNC_HOST]",
)
@click.option(
    "--port",
    envvar="FIELDSYNC_PORT",
    type=click.IntRange(1, MAX_PORT),
    default=DEFAULTS.port,
    show_default=True,
    help="[env: FIELDSYNC_PORT]",
)
@database_option
@click.option(
    "--workers",
    envvar="FIELDSYNC_WORKERS",
    type=click.IntRange(min=1),
    default=DEFAULTS.workers,
    show_default=True,
    help="API processes; more than one needs PostgreSQL [env: FIELDSYNC_WORKERS]",
)
@click.option(
    "--max-body-bytes",
    envvar="FIELDSYNC_MAX_BODY_BYTES",
    type=click.IntRange(min=MIN_BODY_BYTES),
    default=DEFAULTS.max_body_bytes,
    show_default=True,
    help="Larger request bodies get 413 [env: FIELDSYNC_MAX_BODY_BYTES]",
)
@click.option(
    "--log-level",
    envvar="FIELDSYNC_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=DEFAULTS.log_level,
    show_default=True,
    help="[env: FIELDSYNC_LOG_LEVEL]",
)
@click.option(
    "--rate-limit",
    envvar="FIELDSYNC_RATE_LIMIT",
    type=click.IntRange(min=0),
    default=DEFAULTS.rate_limit,
    show_default=True,
    help="Requests per minute per token, across all workers; 0 turns it off "
    "[env: FIELDSYNC_RATE_LIMIT]",
)
@click.option(
    "--demo",
    is_flag=True,
    envvar="FIELDSYNC_DEMO",
    help="Fill an empty database with demo data and print a token [env: FIELDSYNC_DEMO]",
)
@limit_options
@operations_options
@blob_options
def serve(
    host: str,
    port: int,
    database_url: str,
    workers: int,
    max_body_bytes: int,
    log_level: str,
    rate_limit: int,
    demo: bool,
    **options: Any,
) -> None:
    """Serve the GraphQL API at /graphql (GraphiQL in a browser), /healthz, /readyz, /metrics."""
    settings = Settings(
        database_url=database_url,
        host=host,
        port=port,
        workers=workers,
        max_body_bytes=max_body_bytes,
        log_level=log_level.lower(),
        rate_limit=rate_limit,
        **options,
    )
    configure_logging(settings.log_level, settings.log_format)
    check_blob_store(settings.blob_store)
    refuse_sqlite_workers(database_url, workers)
    ensure_port_free(host, port)
    engine = open_database(database_url, create=True, pool_timeout=settings.pool_timeout)
    if demo:
        from fieldsync.demo import install_demo

        click.echo(install_demo(engine).banner(f"http://{host}:{port}/graphql"))
    run_server(engine, settings)


def run_server(engine: Engine, settings: Settings) -> None:
    """uvicorn on one process, or on several with shared metrics (docs/operations.md)."""
    import uvicorn

    options = uvicorn_options(settings.log_level, settings.shutdown_timeout)
    address: dict[str, Any] = {"host": settings.host, "port": settings.port}
    if settings.workers == 1:
        from fieldsync.api.http import create_app

        uvicorn.run(create_app(engine, settings), **address, **options)
        return
    engine.dispose()
    os.environ.update(settings.to_environment())
    with metrics_directory():
        uvicorn.run(
            "fieldsync.api.http:app_from_environment",
            factory=True,
            workers=settings.workers,
            **address,
            **options,
        )


def read_changeset_bytes(path: str) -> bytes:
    """The bytes of a changeset file, or of standard input for `-`."""
    if path != "-":
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise click.ClickException(f"cannot read {path!r}: {exc.strerror}") from None
    if sys.stdin is None:
        raise click.ClickException("no standard input to read the changeset from ('-')")
    return sys.stdin.buffer.read()


@click.command()
@click.argument(
    "changeset", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str)
)
@database_option
@write_wait_option
def load(changeset: str, database_url: str, write_wait: float) -> None:
    """Apply a changeset (JSON file, or - for standard input), all or nothing."""
    text = read_changeset_bytes(changeset)
    engine = waiting_writer(open_database(database_url), write_wait)
    try:
        summary = apply_changeset(engine, parse_changeset(text))
    except WriterBusyError as exc:
        raise click.ClickException(f"{exc} (--write-wait sets how long to wait)") from None
    except ChangesetError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        click.echo(f"changeset rejected: {len(exc.issues)} error(s); nothing was written", err=True)
        sys.exit(1)
    click.echo(summary.line())


@click.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.argument("user_sentera_id")
@click.option("--expires-in", help="Lifetime such as 30d, 8h or 90m; no expiry when left out")
@write_wait_option
@database_option
def token_create(
    user_sentera_id: str, expires_in: str | None, write_wait: float, database_url: str
) -> None:
    """Print a new bearer token for a user (only the token, on stdout)."""
    engine = waiting_writer(open_database(database_url), write_wait)
    try:
        lifetime = parse_duration(expires_in) if expires_in else None
        click.echo(create_token(engine, user_sentera_id, lifetime))
    except FieldSyncError as exc:
        raise click.ClickException(str(exc)) from None


@token.command("revoke")
@click.argument("token_or_id", metavar="TOKEN_OR_ID")
@write_wait_option
@database_option
def token_revoke(token_or_id: str, write_wait: float, database_url: str) -> None:
    """Revoke a token at once, given the token itself or its id from `token list`."""
    engine = waiting_writer(open_database(database_url), write_wait)
    try:
        revoke(engine, token_or_id)
    except FieldSyncError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException(
            "interrupted before the revocation finished: the token is STILL VALID"
        ) from None
    click.echo("revoked", err=True)


@token.command("list")
@click.argument("user_sentera_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table")
@database_option
def token_list(user_sentera_id: str, as_json: bool, database_url: str) -> None:
    """List a user's tokens: id, created, expiry, revoked, last use (never the secret)."""
    engine = open_database(database_url)
    try:
        tokens = list_tokens(engine, user_sentera_id)
    except FieldSyncError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([token_json(info) for info in tokens], indent=2))
    elif not tokens:
        click.echo(f"user {user_sentera_id} has no tokens", err=True)
    else:
        click.echo(token_table(tokens))


def token_json(info: TokenInfo) -> dict[str, object]:
    def moment(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "id": info.id,
        "status": info.status,
        "created_at": moment(info.created_at),
        "expires_at": moment(info.expires_at),
        "revoked_at": moment(info.revoked_at),
        "last_used_at": moment(info.last_used_at),
    }


def token_table(tokens: list[TokenInfo]) -> str:
    """Aligned columns, times in UTC to the second, '-' for none."""

    def moment(value: datetime | None) -> str:
        return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")

    header = ("id", "status", "created", "expires", "revoked", "last used")
    rows = [
        (
            str(info.id),
            info.status,
            moment(info.created_at),
            moment(info.expires_at),
            moment(info.revoked_at),
            moment(info.last_used_at),
        )
        for info in tokens
    ]
    widths = [max(len(row[n]) for row in [header, *rows]) for n in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


@click.group()
def db() -> None:
    """Schema migrations and database maintenance."""


@db.command("upgrade")
@database_option
def db_upgrade(database_url: str) -> None:
    """Migrate the schema to the newest version (safe to run again); creates a new SQLite file."""
    engine = open_database(database_url, migrate=False, create=True)
    before = schema_status(engine)
    after = upgrade(engine)
    click.echo(f"schema {before.current or 'empty'} -> {after.current}")


@db.command("status")
@database_option
def db_status(database_url: str) -> None:
    """Show the schema version and whether it is up to date."""
    engine = open_database(database_url, migrate=False)
    status = schema_status(engine)
    state = "up to date" if status.up_to_date else "needs 'fieldsync db upgrade'"
    click.echo(f"current {status.current or 'empty'}, head {status.head}: {state}")
    if not status.up_to_date:
        sys.exit(1)


@db.command("copy")
@click.option("--from", "source_url", required=True, help="The database to copy from")
@click.option("--to", "target_url", required=True, help="The new, empty database to copy into")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Rows read and written per batch",
)
def db_copy(source_url: str, target_url: str, batch_size: int) -> None:
    """Copy everything into a new, empty database, ids and hashes kept.

    Typically the SQLite file into PostgreSQL. Stop every writer first; both schemas are
    migrated to the newest version; the copy is one transaction on the target.
    """
    from fieldsync.storage.copy import CopyError, TableCount, copy_database

    def show(entry: TableCount) -> None:
        click.echo(f"{entry.table:<16} {entry.rows:>10,} {'row' if entry.rows == 1 else 'rows'}")

    for url in (source_url, target_url):
        try:
            refuse_in_memory_sqlite(url)
        except InMemoryDatabaseError as exc:
            raise click.UsageError(str(exc)) from None
        except DatabaseUrlError:
            pass  # reported by the copy itself, with the side it belongs to
    try:
        report = copy_database(source_url, target_url, batch_size=batch_size, on_table=show)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise click.ClickException(f"copy failed, nothing was written: {message}") from None
    click.echo(
        f"{'total':<16} {report.total:>10,} rows in {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s); committed"
    )


@click.group()
def blobs() -> None:
    """File bytes: garbage collection of the blob store."""


@blobs.command("gc")
@database_option
@blob_options
def blobs_gc(database_url: str, **options: Any) -> None:
    """Remove expired uploads, bytes nothing references, stale temporary files (one line)."""
    from fieldsync.blobs.context import blob_context
    from fieldsync.blobs.gc import collect_garbage

    settings = Settings(database_url=database_url, **options)
    check_blob_store(settings.blob_store)
    engine = open_database(database_url)
    try:
        report = collect_garbage(engine, blob_context(engine, settings.blobs()))
    except FieldSyncError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.line())


@click.command()
@database_option
@blob_options
@click.option(
    "--concurrency",
    envvar="FIELDSYNC_WORKER_CONCURRENCY",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs worked on at once [env: FIELDSYNC_WORKER_CONCURRENCY]",
)
@click.option(
    "--lease-seconds",
    envvar="FIELDSYNC_WORKER_LEASE_SECONDS",
    type=click.FloatRange(min=3),
    default=60.0,
    show_default=True,
    help="How long a job stays claimed without renewal; a killed worker's job waits as long "
    "[env: FIELDSYNC_WORKER_LEASE_SECONDS]",
)
@click.option(
    "--poll-seconds",
    envvar="FIELDSYNC_WORKER_POLL_SECONDS",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="How often an idle worker looks for jobs [env: FIELDSYNC_WORKER_POLL_SECONDS]",
)
@click.option(
    "--log-level",
    envvar="FIELDSYNC_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=DEFAULTS.log_level,
    show_default=True,
    help="[env: FIELDSYNC_LOG_LEVEL]",
)
def worker(
    database_url: str,
    concurrency: int,
    lease_seconds: float,
    poll_seconds: float,
    log_level: str,
    **options: Any,
) -> None:
    """Make COGs from imported mosaics until stopped (SIGTERM or Ctrl-C gives running jobs
    back to the queue). Any number of workers may share one PostgreSQL database."""
    import signal
    import threading

    from fieldsync.blobs.context import LazyBlobContext
    from fieldsync.processing.jobs import QueueSettings
    from fieldsync.processing.worker import Worker, WorkerSettings

    settings = Settings(database_url=database_url, log_level=log_level.lower(), **options)
    configure_logging(settings.log_level, settings.log_format)
    check_blob_store(settings.blob_store)
    engine = open_database(database_url)
    queue = QueueSettings(lease_seconds=lease_seconds)
    worker_settings = WorkerSettings(concurrency, poll_seconds, queue)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"COG worker: {concurrency} at once, database {describe_url(engine.url)}")
    Worker(engine, LazyBlobContext(engine, settings.blobs()), worker_settings).run(stop)
    click.echo("COG worker stopped")
