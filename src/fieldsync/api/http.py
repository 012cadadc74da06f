"""The HTTP transport (Starlette): `/graphql` by GET and POST, GraphiQL, and `/healthz`.

Everything about GraphQL itself lives in `execution.py`; this module only turns HTTP into a
`GraphQLRequest` and a `GraphQLResponse` back into HTTP, with the limits and clear errors a
public endpoint needs (401, 400, 413; never a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fieldsync.api.admission import Admission, AdmissionLimits
from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest, GraphQLResponse, error_body
from fieldsync.api.files import file_routes
from fieldsync.api.limits import RequestDeadline, response_too_large
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.api.tiles import LEAFLET_PATH, tile_routes
from fieldsync.blobs.context import LazyBlobContext
from fieldsync.blobs.gc import PeriodicCollector
from fieldsync.config import Settings, SettingsError
from fieldsync.observability import (
    RequestObservation,
    configure_logging,
    health_routes,
    observe_graphql,
    printable,
    watch_database,
)
from fieldsync.processing.worker import Worker
from fieldsync.ratelimit import rate_limiter_for
from fieldsync.storage.database import make_engine
from fieldsync.tokens import TokenUseRecorder

log = logging.getLogger("fieldsync.http")
GRAPHIQL_HTML = Path(__file__).with_name("graphiql.html").read_text(encoding="utf-8")
# GraphiQL's scripts and styles, shipped in the package (the page works without internet).
GRAPHIQL_STATIC_DIR = Path(__file__).with_name("static")
GRAPHIQL_STATIC_PATH = "/graphql/static"
LEAFLET_STATIC_DIR = GRAPHIQL_STATIC_DIR / "leaflet"
_DISCONNECT_POLL_SECONDS = 0.2
"""How often a running request checks whether its client is still there."""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ORJSONResponse(JSONResponse):
    """JSON encoded by orjson: fast, and a clear error instead of invalid UTF-8 output."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, message: str, code: str) -> JSONResponse:
    return ORJSONResponse(error_body(message, code), status_code=status)


def _bounded_json(response: GraphQLResponse, max_bytes: int) -> Response:
    """The answer encoded, or a RESPONSE_TOO_LARGE error (400) when it exceeds `max_bytes`."""
    try:
        content = orjson.dumps(response.body)
    except orjson.JSONEncodeError:
        log.exception("cannot encode the answer")
        return _error(500, "Internal server error", "INTERNAL_SERVER_ERROR")
    if len(content) > max_bytes:
        error = response_too_large(len(content), max_bytes)
        return _error(400, error.message, error.code)
    return Response(
        content, response.status, headers=response.headers, media_type="application/json"
    )


def _parse_json(data: bytes | str, what: str) -> Any:
    """JSON by orjson, which refuses nesting over 1024 levels and lone surrogates."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":", 1)[0]
        raise _BadRequest(400, f"{what} is not valid JSON: {reason}", "BAD_REQUEST") from None


async def _run_until_disconnected(
    request: Request,
    deadline: RequestDeadline,
    work: Callable[[], GraphQLResponse],
    threads: ThreadPoolExecutor,
) -> GraphQLResponse:
    """Run `work` in a worker thread; cancel it (through `deadline`) if the client leaves or
    the request is cancelled (shutdown), so the thread does not run on after its request.

    A request still running after `_DISCONNECT_POLL_SECONDS` gets a task that asks every so
    often whether its client is still there; a shorter one costs a timer and nothing more.
    """
    loop = asyncio.get_running_loop()
    result = loop.run_in_executor(threads, work)
    watchers: list[asyncio.Task[None]] = []

    def watch() -> None:
        watchers.append(loop.create_task(_watch_client(request, deadline, result)))

    timer = loop.call_later(_DISCONNECT_POLL_SECONDS, watch)
    try:
        return await result
    except asyncio.CancelledError:
        deadline.cancel()
        raise
    finally:
        timer.cancel()
        for watcher in watchers:
            watcher.cancel()


async def _watch_client(
    request: Request, deadline: RequestDeadline, work: asyncio.Future[GraphQLResponse]
) -> None:
    """Cancel the request's deadline once its client has gone, while `work` runs."""
    while not work.done() and not deadline.cancelled:
        if await request.is_disconnected():
            deadline.cancel()
            return
        await asyncio.sleep(_DISCONNECT_POLL_SECONDS)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = _BadRequest(
        413, f"Request body is larger than the limit of {limit} bytes", "PAYLOAD_TOO_LARGE"
    )
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise _BadRequest(400, "Invalid Content-Length header", "BAD_REQUEST") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    """The body's media type, lower case, without parameters ('' when not given)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _body_encoding(request: Request) -> str:
    """'gzip' or '' (identity); any other Content-Encoding is refused with 415."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return ""
    if encoding in ("gzip", "x-gzip"):
        return "gzip"
    raise _BadRequest(
        415,
        f"Content-Encoding '{printable(encoding, 40)}' is not supported: "
        "send the body gzip-compressed or uncompressed",
        "UNSUPPORTED_MEDIA_TYPE",
    )


def _gunzip(body: bytes, limit: int) -> bytes:
    """The decompressed body, refused with 413 past `limit` bytes (a small gzip body may
    expand a thousandfold), or 400 when it is not one whole gzip stream."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise _BadRequest(400, "The body is not valid gzip", "BAD_REQUEST") from None
    if len(plain) > limit:
        raise _BadRequest(
            413,
            f"Request body is larger than the limit of {limit} bytes once decompressed",
            "PAYLOAD_TOO_LARGE",
        )
    if not inflater.eof:
        raise _BadRequest(400, "The gzip body is truncated", "BAD_REQUEST")
    if inflater.unused_data:
        raise _BadRequest(400, "The body goes on after its gzip stream", "BAD_REQUEST")
    return plain


def _post_payload(body: bytes, media_type: str) -> Any:
    """The JSON payload of a POST body, with advice when the declared type was not JSON."""
    try:
        return _parse_json(body, "The body")
    except _BadRequest as exc:
        if media_type in ("", "application/json") or media_type.endswith("+json"):
            raise
        raise _BadRequest(
            400,
            f"{exc} (Content-Type '{printable(media_type, 60)}'); send JSON with "
            "'Content-Type: application/json', or the query text with "
            "'Content-Type: application/graphql'",
            exc.code,
        ) from None


def _graphql_request(payload: Any) -> GraphQLRequest:
    if isinstance(payload, list):
        raise _BadRequest(400, "Batched requests are not supported: send one object", "BAD_REQUEST")
    if not isinstance(payload, dict):
        raise _BadRequest(400, "The request must be a JSON object with a 'query'", "BAD_REQUEST")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _BadRequest(400, "Missing 'query': a GraphQL document as a string", "BAD_REQUEST")
    variables = payload.get("variables")
    if isinstance(variables, str) and variables.strip():
        variables = _parse_json(variables, "'variables'")
    if variables in ("", None):
        variables = None
    elif not isinstance(variables, dict):
        raise _BadRequest(400, "'variables' must be a JSON object", "BAD_REQUEST")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise _BadRequest(400, "'operationName' must be a string", "BAD_REQUEST")
    operation_name = operation_name or None
    _refuse_surrogates(query, operation_name)
    return GraphQLRequest(query=query, variables=variables, operation_name=operation_name)


_SURROGATE = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate code point, which no UTF-8 text holds (searched without encoding a copy
of a query of megabytes)."""


def _refuse_surrogates(*texts: str | None) -> None:
    """Refuse text no UTF-8 can hold (a lone surrogate), e.g. from a GET parameter."""
    for value in texts:
        # isascii() is a flag of the string, not a scan: a query of megabytes costs nothing.
        if value is not None and not value.isascii() and _SURROGATE.search(value):
            raise _BadRequest(
                400,
                "The request contains a lone surrogate: text must be valid Unicode",
                "BAD_REQUEST",
            )


def _admission(engine: Engine, settings: Settings) -> Admission:
    limits = AdmissionLimits(
        max_concurrent=settings.max_concurrent_requests,
        max_queued=settings.max_queued_requests,
        queue_timeout=settings.queue_timeout,
        retry_after=settings.retry_after,
    )
    return Admission(limits, watch_database(engine))


def create_app(engine: Engine, settings: Settings) -> Starlette:
    limits = settings.limits()
    blobs = LazyBlobContext(engine, settings.blobs())
    executor = GraphQLExecutor(
        build_fieldsync_schema(),
        engine,
        limits,
        introspection=settings.introspection,
        fast_path=settings.fast_path,
        rate_limiter=rate_limiter_for(engine, settings.rate_limit),
        token_uses=TokenUseRecorder(engine),
        blobs=blobs,
    )
    admission = _admission(engine, settings)
    # The threads GraphQL requests execute in: as many as may execute at once (admission).
    threads = ThreadPoolExecutor(
        settings.max_concurrent_requests, thread_name_prefix="fieldsync-graphql"
    )

    async def run(request: Request, graphql_request: GraphQLRequest) -> Response:
        deadline = RequestDeadline(limits.request_seconds)
        token = bearer_token(request)

        located = replace(graphql_request, base_url=str(request.base_url))

        def work() -> GraphQLResponse:
            return executor.run(token, located, deadline)

        response = await admission.run(
            lambda: _run_until_disconnected(request, deadline, work, threads)
        )
        observe_graphql(
            request,
            graphql_request.query,
            graphql_request.operation_name,
            response.status,
            response.body,
            authenticated=response.authenticated,
        )
        return _bounded_json(response, limits.max_response_bytes)

    async def graphql_get(request: Request) -> Response:
        params = request.query_params
        if "query" not in params:
            if settings.graphiql and "text/html" in request.headers.get("accept", ""):
                return HTMLResponse(GRAPHIQL_HTML)
            return _error(400, "Missing 'query' parameter", "BAD_REQUEST")
        try:
            graphql_request = replace(_graphql_request(dict(params)), read_only=True)
        except _BadRequest as exc:
            return _error(exc.status, str(exc), exc.code)
        return await run(request, graphql_request)

    async def graphql_post(request: Request) -> Response:
        try:
            encoding = _body_encoding(request)
            body = await _read_body(request, settings.max_body_bytes)
            if encoding == "gzip":
                body = _gunzip(body, settings.max_body_bytes)
            media_type = _media_type(request)
            if media_type == "application/graphql":
                graphql_request = GraphQLRequest(query=body.decode("utf-8"))
            else:
                graphql_request = _graphql_request(_post_payload(body, media_type))
        except _BadRequest as exc:
            return _error(exc.status, str(exc), exc.code)
        except UnicodeDecodeError:
            return _error(400, "The body is not UTF-8", "BAD_REQUEST")
        except ClientDisconnect:
            # Nobody reads this answer; it only keeps the log free of a traceback.
            log.info("client disconnected before sending the whole body")
            return _error(400, "The client left before sending the whole body", "BAD_REQUEST")
        return await run(request, graphql_request)

    async def server_error(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return _error(500, "Internal server error", "INTERNAL_SERVER_ERROR")

    app = Starlette(
        routes=[
            Route("/graphql", graphql_get, methods=["GET"]),
            Route("/graphql", graphql_post, methods=["POST"]),
            *health_routes(engine, admission.outage),
            Mount(GRAPHIQL_STATIC_PATH, StaticFiles(directory=GRAPHIQL_STATIC_DIR)),
            *file_routes(blobs),
            Mount(LEAFLET_PATH, StaticFiles(directory=LEAFLET_STATIC_DIR)),
            *tile_routes(engine, blobs),
        ],
        exception_handlers={Exception: server_error},
        lifespan=_background_lifespan(engine, blobs, settings, threads),
    )
    app.state.blobs = blobs  # the BlobContext provider the upload mutations use
    app.add_middleware(RequestObservation, retry_after=settings.retry_after)
    return app


def _background_lifespan(
    engine: Engine, blobs: LazyBlobContext, settings: Settings, threads: ThreadPoolExecutor
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """At startup: the blob context (when the database answers); unless the interval is 0,
    one thread per process collecting blob garbage every `blob_gc_interval` seconds; and the
    in-process COG worker when the settings ask for one (the embedded default). At the end,
    the GraphQL request threads are let go."""
    gc_interval = settings.blob_gc_interval

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(blobs.warm)
        collector = PeriodicCollector(engine, blobs, gc_interval) if gc_interval else None
        if collector is not None:
            collector.start()
        worker = Worker(engine, blobs).start() if settings.runs_cog_worker() else None
        try:
            yield
        finally:
            if worker is not None:
                thread, stop = worker
                stop.set()
                await run_in_threadpool(thread.join, settings.shutdown_timeout)
            if collector is not None:
                await run_in_threadpool(collector.stop)
            threads.shutdown(wait=False)

    return lifespan


def app_from_environment() -> Starlette:
    """The app factory worker processes import: settings come from FIELDSYNC_* variables."""
    try:
        settings = Settings.from_environment()
    except SettingsError as exc:
        print(f"fieldsync: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url, pool_timeout=settings.pool_timeout)
    return create_app(engine, settings)
