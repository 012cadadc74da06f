"""Operations in one place: structured logs, request ids, Prometheus metrics, health and
readiness, database outage episodes, and the bound on shutdown.

* Logs: `configure_logging` sends every log line to standard error, as one JSON object a line
  (`json`) or as readable text (`text`). Each HTTP request is logged once, by
  `RequestObservation`, with its request id, operation name, status, duration and items served;
  never a token, a body or a hash list.
* Request ids: a sane `X-Request-ID` from the client is kept, otherwise one is generated; it is
  echoed in the response header, in the log line and in every error's `extensions`.
* Metrics: `/metrics` in Prometheus' text format; with several worker processes, prometheus-client's
  multiprocess mode over the directory `metrics_directory` sets up (PROMETHEUS_MULTIPROC_DIR).
* `/healthz` answers 200 while the process serves (no database); `/readyz` answers 200 only when
  the database answers and its schema is at the newest revision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, parse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fieldsync.storage.cog_jobs import STATES, counts_by_state
from fieldsync.storage.database import (
    check_connection,
    error_summary,
    is_database_unavailable,
    read_snapshot,
)
from fieldsync.storage.migrate import schema_status

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOG_FORMATS = ("json", "text")
REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
# The first operation's name, after whitespace, commas and comments, without a full parse.
_LEADING_OPERATION = re.compile(
    r"(?:[\s,]|#[^\n]*)*(?:query|mutation|subscription)\s+(\w+)", re.ASCII
)
MAX_OPERATION_LABELS = 100
UNAUTHENTICATED_LABEL = "unauthenticated"
"""The operation label of a request without a valid token (a 401, or turned away before its
token was checked, e.g. a 503 when the server is full)."""
_PARSED_QUERY_CHARS = 20_000
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SHUTTING_DOWN = "SHUTTING_DOWN"
INTERNAL_ERROR = "INTERNAL_SERVER_ERROR"
_MESSAGES = {
    SHUTTING_DOWN: "The server shut down before the request finished: retry after the number "
    "of seconds in Retry-After",
    INTERNAL_ERROR: "Internal server error",
}

request_log = logging.getLogger("fieldsync.request")
database_log = logging.getLogger("fieldsync.database")
server_log = logging.getLogger("fieldsync.server")


# --- logs -------------------------------------------------------------------------------------


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", {})
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **log_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value …` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in log_fields(record).items())
        return f"{line} {fields}" if fields else line


def configure_logging(level: str, log_format: str) -> None:
    """Every log line of the process (FieldSync's and uvicorn's) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # No access log: each request has its own line. A worker process configures logging after
    # uvicorn has turned the access log off, so it is turned off here as well.
    logging.getLogger("uvicorn.access").propagate = False


def uvicorn_options(level: str, shutdown_timeout: float) -> dict[str, Any]:
    """uvicorn keeps our logging (no config of its own, no access log: we log each request)."""
    return {
        "log_config": None,
        "log_level": level,
        "access_log": False,
        "timeout_graceful_shutdown": shutdown_timeout,
    }


# --- metrics ----------------------------------------------------------------------------------

REQUEST_SECONDS = Histogram(
    "fieldsync_request_duration_seconds",
    "Time to answer one HTTP request, by GraphQL operation name (or endpoint path)",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REQUESTS = Counter(
    "fieldsync_requests_total",
    "HTTP requests answered, by operation and status",
    ["operation", "status"],
)
SYNC_ITEMS = Counter(
    "fieldsync_sync_items_total",
    "Items served by sync queries, by query and kind (upserted or deleted)",
    ["query", "kind"],
)
ERRORS = Counter("fieldsync_errors_total", "Errors answered, by error code", ["code"])
IN_FLIGHT = Gauge(
    "fieldsync_requests_executing",
    "GraphQL requests executing now",
    multiprocess_mode="livesum",
)
QUEUED = Gauge(
    "fieldsync_requests_queued",
    "GraphQL requests waiting for an execution slot",
    multiprocess_mode="livesum",
)
POOL_CHECKED_OUT = Gauge(
    "fieldsync_db_pool_checked_out",
    "Database connections in use",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "fieldsync_db_pool_size",
    "Database connections the pools may open (size plus overflow)",
    multiprocess_mode="livesum",
)
COG_JOBS = Gauge(
    "fieldsync_cog_jobs",
    "COG jobs in the database by state (queued, running, done, failed, cancelled), read at scrape",
    ["state"],
    multiprocess_mode="mostrecent",
)
COG_JOBS_ENDED = Counter(
    "fieldsync_cog_jobs_ended_total",
    "COG jobs this process worked on, by outcome (success, fail, retry, released, dropped)",
    ["outcome"],
)
COG_JOB_SECONDS = Histogram(
    "fieldsync_cog_job_duration_seconds",
    "Time one COG job took in this process, claim to outcome",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)


class OperationLabels:
    """Bounded label values: the first MAX_OPERATION_LABELS well-formed names, then `other`."""

    def __init__(self, limit: int = MAX_OPERATION_LABELS) -> None:
        self.limit = limit
        self.known: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if name is None:
            return "anonymous"
        if name in self.known:
            return name
        if _OPERATION_NAME.fullmatch(name) is None:
            return "other"
        with self._lock:
            if len(self.known) >= self.limit:
                return "other"
            self.known.add(name)
        return name


OPERATION_LABELS = OperationLabels()


def record_pool(engine: Engine, returning: int = 0) -> None:
    """Set the pool gauges from the pool's own count (`returning`: connections being handed
    back right now, still counted by the pool)."""
    pool = engine.pool
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    in_use = checked_out() - returning if callable(checked_out) else 0
    POOL_CHECKED_OUT.set(max(in_use, 0))
    POOL_SIZE.set(size() + max(overflow, 0) if callable(size) else 0)


def record_cog_queue(engine: Engine) -> None:
    """Set the queue gauge from the database; left as it was when the database is down."""
    try:
        with read_snapshot(engine) as conn:
            counts = counts_by_state(conn)
    except Exception as exc:
        database_log.debug("COG queue not read for metrics: %s", exc)
        return
    for state in STATES:
        COG_JOBS.labels(state).set(counts.get(state, 0))


def metrics_text(engine: Engine) -> bytes:
    record_pool(engine)
    record_cog_queue(engine)
    if MULTIPROC_ENV in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@contextmanager
def metrics_directory() -> Iterator[str]:
    """For several worker processes: PROMETHEUS_MULTIPROC_DIR, a fresh temporary directory
    removed at exit (one given by the operator is used as is, and kept)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        yield given
        return
    directory = tempfile.mkdtemp(prefix="fieldsync-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


# --- database outages -------------------------------------------------------------------------


class OutageEpisodes:
    """One warning line when the database becomes unavailable, silence while it stays so, and
    one info line (duration, requests refused) when a connection succeeds again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._refused = 0

    @property
    def active(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._refused += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        database_log.warning(
            "database unavailable, answering 503 until it recovers: %s",
            error_summary(exc),
            extra={"fields": {"event": "database_unavailable"}},
        )

    def recovered(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            seconds, refused = time.monotonic() - self._since, self._refused
            self._since, self._refused = None, 0
        database_log.info(
            "database available again after %.1f s; %d request(s) refused meanwhile",
            seconds,
            refused,
            extra={
                "fields": {
                    "event": "database_recovered",
                    "outage_seconds": round(seconds, 3),
                    "refused_requests": refused,
                }
            },
        )


def watch_database(engine: Engine) -> OutageEpisodes:
    """Outage episodes of one engine (any successful pool checkout ends an episode), and its
    pool gauges kept current as connections are taken and handed back."""
    episodes = OutageEpisodes()

    def on_checkout(*_args: Any) -> None:
        episodes.recovered()
        record_pool(engine)

    def on_checkin(*_args: Any) -> None:
        record_pool(engine, returning=1)

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine.pool, "checkin", on_checkin)
    record_pool(engine)
    return episodes


# --- health and readiness ---------------------------------------------------------------------


def _check_ready(engine: Engine) -> str | None:
    """None when the database answers and its schema is current, else what is wrong."""
    status = schema_status(engine)
    if not status.up_to_date:
        return f"schema {status.current or 'empty'} is not at head {status.head}"
    check_connection(engine)
    return None


def health_routes(engine: Engine, outage: OutageEpisodes) -> list[Route]:
    """`/healthz` (the process serves), `/readyz` (the database too), `/metrics`."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            problem = await run_in_threadpool(_check_ready, engine)
        except Exception as exc:
            if not is_database_unavailable(exc):
                database_log.error("readiness check failed: %s", error_summary(exc))
            else:
                outage.failed(exc)
            return JSONResponse(
                {"status": "unavailable", "reason": "database unavailable"}, status_code=503
            )
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(_request: Request) -> Response:
        body = await run_in_threadpool(metrics_text, engine)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


# --- one record per request -------------------------------------------------------------------


@dataclass
class RequestRecord:
    """What one request did; filled in by the handlers, logged and counted at the end."""

    request_id: str
    method: str
    path: str
    client: str | None = None
    operation: str | None = None
    operation_label: str | None = None
    status: int = 500
    items: dict[str, dict[str, int]] = field(default_factory=dict)
    error_codes: list[str] = field(default_factory=list)

    def fields(self, seconds: float) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "client": self.client,
            "status": self.status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if self.operation_label is not None:
            entry["operation"] = self.operation or "anonymous"
        if self.items:
            entry["upserted"] = sum(counts["upserted"] for counts in self.items.values())
            entry["deleted"] = sum(counts["deleted"] for counts in self.items.values())
        if self.error_codes:
            entry["error_codes"] = sorted(set(self.error_codes))
        return entry


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def current_record(request: Request) -> RequestRecord | None:
    record = request.scope.get("state", {}).get("fieldsync_request")
    return record if isinstance(record, RequestRecord) else None


@lru_cache(maxsize=256)
def _root_fields(query: str, operation_name: str | None) -> tuple[str | None, dict[str, str]]:
    """The operation's name and its root fields by response key (alias or name)."""
    try:
        document = parse(query, no_location=True)
    except Exception:
        return None, {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        name = definition.name.value if definition.name else None
        if operation_name is None or name == operation_name:
            fields = {
                (node.alias or node.name).value: node.name.value
                for node in definition.selection_set.selections
                if isinstance(node, FieldNode)
            }
            return name, fields
    return None, {}


def printable(value: str, limit: int = 200) -> str:
    """A client-chosen string made safe for any log line: printable ASCII, escapes for the rest
    (control characters such as a newline included, so no line can be forged), bounded."""
    return value[:limit].encode("unicode_escape").decode("ascii")


def operation_name_of(query: str, operation_name: str | None) -> str | None:
    if operation_name is not None:
        return printable(operation_name, 64)
    if len(query) <= _PARSED_QUERY_CHARS:
        return _root_fields(query, None)[0]
    match = _LEADING_OPERATION.match(query[:2000])
    return match.group(1) if match else None


@lru_cache(maxsize=1)
def sync_query_names() -> frozenset[str]:
    """The schema's sync queries: the only values of the `query` label besides `other`."""
    from fieldsync.api.schema import build_fieldsync_schema

    query_type = build_fieldsync_schema().query_type
    assert query_type is not None
    return frozenset(name for name in query_type.fields if name.startswith("sync_"))


def sync_items_served(
    query: str, operation_name: str | None, data: dict[str, Any]
) -> dict[str, dict[str, int]]:
    """Upserted and deleted counts of every sync query in the answer, by query name."""
    results = {
        key: value
        for key, value in data.items()
        if isinstance(value, dict) and isinstance(value.get("upserted"), list)
    }
    if not results:
        return {}
    fields = _root_fields(query, operation_name)[1] if len(query) <= _PARSED_QUERY_CHARS else {}
    items: dict[str, dict[str, int]] = {}
    for key, value in results.items():
        name = fields.get(key, key if key in sync_query_names() else "other")
        counts = items.setdefault(name, {"upserted": 0, "deleted": 0})
        counts["upserted"] += len(value.get("upserted") or [])
        counts["deleted"] += len(value.get("deleted") or [])
    return items


def observe_graphql(
    request: Request,
    query: str,
    operation_name: str | None,
    status: int,
    body: dict[str, Any],
    *,
    authenticated: bool = True,
) -> None:
    """Note the operation, the items served and the error codes of one GraphQL answer, and put
    the request id into each error's `extensions`.

    Only a request with a valid token may claim one of the bounded operation labels: anyone
    else could take them all with made-up names and leave the real clients under `other`.
    """
    record = current_record(request)
    if record is None:
        return
    record.operation = operation_name_of(query, operation_name)
    record.operation_label = (
        OPERATION_LABELS.label(record.operation) if authenticated else UNAUTHENTICATED_LABEL
    )
    data = body.get("data")
    if isinstance(data, dict):
        record.items = sync_items_served(query, operation_name, data)
    if status < 400:
        record.error_codes.extend(_tag_errors(body, record.request_id))


def _tag_errors(body: Any, request_id: str) -> list[str]:
    """Add the request id to every error of a response body; the errors' codes."""
    codes: list[str] = []
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            extensions = error.setdefault("extensions", {})
            if isinstance(extensions, dict):
                extensions["request_id"] = request_id
                codes.append(str(extensions.get("code", "UNKNOWN")))
    return codes


def _count(record: RequestRecord, seconds: float) -> None:
    label = record.operation_label or (
        record.path if record.path in _QUIET_PATHS or record.path == "/graphql" else "unmatched"
    )
    REQUEST_SECONDS.labels(label).observe(seconds)
    REQUESTS.labels(label, str(record.status)).inc()
    for code in record.error_codes:
        ERRORS.labels(code).inc()
    for query, counts in record.items.items():
        for kind, number in counts.items():
            SYNC_ITEMS.labels(query, kind).inc(number)


def _log(record: RequestRecord, seconds: float) -> None:
    level = logging.DEBUG if record.path in _QUIET_PATHS else logging.INFO
    if not request_log.isEnabledFor(level):
        return
    operation = f" {record.operation or 'anonymous'}" if record.operation_label else ""
    request_log.log(
        level,
        "%s %s %d%s",
        record.method,
        record.path,
        record.status,
        operation,
        extra={"fields": record.fields(seconds)},
    )


# --- the middleware ---------------------------------------------------------------------------


class RequestObservation:
    """ASGI middleware: request id, one log line and the metrics of every HTTP request; error
    bodies (status 400 and above) get the request id; a request cancelled at the end of the
    graceful shutdown is answered 503."""

    def __init__(self, app: ASGIApp, retry_after: int) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._watch_lifespan(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        record = RequestRecord(
            request_id_from(scope),
            scope["method"],
            printable(scope["path"]),
            client[0] if client else None,
        )
        scope.setdefault("state", {})["fieldsync_request"] = record
        started = time.perf_counter()
        response_started = False
        error_start: Message | None = None
        error_chunks: list[bytes] = []

        async def send_observed(message: Message) -> None:
            nonlocal response_started, error_start
            if message["type"] == "http.response.start":
                response_started = True
                record.status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", record.request_id.encode("ascii")))
                message = {**message, "headers": headers}
                if record.status >= 400 and _is_json(headers):
                    error_start = message
                    return
            elif message["type"] == "http.response.body" and error_start is not None:
                error_chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_error_body(error_start, b"".join(error_chunks), record, send)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except asyncio.CancelledError:
            # Still running when the graceful shutdown timeout ran out.
            record.status = 503
            record.error_codes.append(SHUTTING_DOWN)
            if not response_started:
                await self._send_error(record, send, 503, SHUTTING_DOWN)
        except Exception:
            record.status = 500
            record.error_codes.append(INTERNAL_ERROR)
            server_log.exception(
                "unhandled error", extra={"fields": {"request_id": record.request_id}}
            )
            if not response_started:
                await self._send_error(record, send, 500, INTERNAL_ERROR)
        finally:
            seconds = time.perf_counter() - started
            _count(record, seconds)
            _log(record, seconds)

    async def _send_error_body(
        self, start: Message, body: bytes, record: RequestRecord, send: Send
    ) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            record.error_codes.extend(_tag_errors(payload, record.request_id))
            body = json.dumps(payload, ensure_ascii=True).encode("ascii")
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_error(self, record: RequestRecord, send: Send, status: int, code: str) -> None:
        headers = {"X-Request-ID": record.request_id}
        if status == 503:
            headers["Retry-After"] = str(self.retry_after)
        extensions = {"code": code, "request_id": record.request_id}
        body = {"errors": [{"message": _MESSAGES[code], "extensions": extensions}]}
        response = JSONResponse(body, status_code=status, headers=headers)
        await send(
            {"type": "http.response.start", "status": status, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    def _watch_lifespan(self, receive: Receive) -> Receive:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and MULTIPROC_ENV in os.environ:
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            return message

        return watched


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and v.startswith(b"application/json") for k, v in headers)
