"""The HTTP transport (Starlette): `/graphql` by GET and POST, GraphiQL, and `/healthz`.

Everything about GraphQL itself lives in `execution.py`; this module only turns HTTP into a
`GraphQLRequest` and a `GraphQLResponse` back into HTTP, with the limits and clear errors a
public endpoint needs (401, 400, 413; never a traceback).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fieldsync.api.admission import Admission, AdmissionLimits
from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest, GraphQLResponse, error_body
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.config import Settings
from fieldsync.observability import (
    RequestObservation,
    configure_logging,
    health_routes,
    observe_graphql,
    watch_database,
)
from fieldsync.storage.database import make_engine

log = logging.getLogger("fieldsync.http")
GRAPHIQL_HTML = Path(__file__).with_name("graphiql.html").read_text(encoding="utf-8")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _json(response: GraphQLResponse) -> JSONResponse:
    return JSONResponse(response.body, status_code=response.status, headers=response.headers)


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_body(message, code), status_code=status)


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
        try:
            variables = json.loads(variables)
        except json.JSONDecodeError:
            raise _BadRequest(400, "'variables' is not valid JSON", "BAD_REQUEST") from None
    if variables in ("", None):
        variables = None
    elif not isinstance(variables, dict):
        raise _BadRequest(400, "'variables' must be a JSON object", "BAD_REQUEST")
    operation_name = payload.get("operationName") or None
    if operation_name is not None and not isinstance(operation_name, str):
        raise _BadRequest(400, "'operationName' must be a string", "BAD_REQUEST")
    return GraphQLRequest(query=query, variables=variables, operation_name=operation_name)


def _admission(engine: Engine, settings: Settings) -> Admission:
    limits = AdmissionLimits(
        max_concurrent=settings.max_concurrent_requests,
        max_queued=settings.max_queued_requests,
        queue_timeout=settings.queue_timeout,
        retry_after=settings.retry_after,
    )
    return Admission(limits, watch_database(engine))


def create_app(engine: Engine, settings: Settings) -> Starlette:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    admission = _admission(engine, settings)

    async def run(request: Request, graphql_request: GraphQLRequest) -> Response:
        token = bearer_token(request)
        response = await admission.run(partial(executor.run, token, graphql_request))
        observe_graphql(
            request,
            graphql_request.query,
            graphql_request.operation_name,
            response.status,
            response.body,
        )
        return _json(response)

    async def graphql_get(request: Request) -> Response:
        params = request.query_params
        if "query" not in params:
            if settings.graphiql and "text/html" in request.headers.get("accept", ""):
                return HTMLResponse(GRAPHIQL_HTML)
            return _error(400, "Missing 'query' parameter", "BAD_REQUEST")
        try:
            graphql_request = _graphql_request(dict(params))
        except _BadRequest as exc:
            return _error(exc.status, str(exc), exc.code)
        return await run(request, graphql_request)

    async def graphql_post(request: Request) -> Response:
        try:
            body = await _read_body(request, settings.max_body_bytes)
            content_type = request.headers.get("content-type", "application/json")
            if "application/graphql" in content_type:
                graphql_request = GraphQLRequest(query=body.decode("utf-8"))
            else:
                try:
                    payload = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise _BadRequest(400, "The body is not valid JSON", "BAD_REQUEST") from None
                graphql_request = _graphql_request(payload)
        except _BadRequest as exc:
            return _error(exc.status, str(exc), exc.code)
        except UnicodeDecodeError:
            return _error(400, "The body is not UTF-8", "BAD_REQUEST")
        return await run(request, graphql_request)

    async def server_error(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return _error(500, "Internal server error", "INTERNAL_SERVER_ERROR")

    app = Starlette(
        routes=[
            Route("/graphql", graphql_get, methods=["GET"]),
            Route("/graphql", graphql_post, methods=["POST"]),
            *health_routes(engine, admission.outage),
        ],
        exception_handlers={Exception: server_error},
    )
    app.add_middleware(RequestObservation, retry_after=settings.retry_after)
    return app


def app_from_environment() -> Starlette:
    """The app factory worker processes import: settings come from FIELDSYNC_* variables."""
    settings = Settings.from_environment()
    configure_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url, pool_timeout=settings.pool_timeout)
    return create_app(engine, settings)
