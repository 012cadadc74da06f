"""Executing one GraphQL request: auth, parse, validate, execute on one snapshot, and the
status code and body to answer with. Independent of the HTTP framework."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from threading import Lock
from typing import Any, TypeGuard

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    execute,
    parse,
    validate,
)
from sqlalchemy import Engine

from fieldsync.api.context import RequestContext
from fieldsync.errors import FieldSyncError
from fieldsync.storage.database import (
    is_database_unavailable,
    is_pool_timeout,
    read_snapshot,
)
from fieldsync.tokens import authenticate

log = logging.getLogger("fieldsync.api")

_CACHEABLE_QUERY_CHARS = 20_000
_CACHE_ENTRIES = 256


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None


@dataclass(frozen=True, slots=True)
class GraphQLResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def unauthenticated(message: str) -> GraphQLResponse:
    return GraphQLResponse(
        401,
        error_body(message, "UNAUTHENTICATED"),
        {"WWW-Authenticate": 'Bearer realm="fieldsync"'},
    )


def _format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    formatted = error.formatted
    if original is None or isinstance(original, GraphQLError):
        return dict(formatted)
    if isinstance(original, FieldSyncError):
        formatted["message"] = str(original)
        formatted["extensions"] = {"code": original.code}
        return dict(formatted)
    log.error("unexpected error in %s", error.path, exc_info=original)
    formatted["message"] = "Internal server error"
    formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return dict(formatted)


class GraphQLExecutor:
    """Runs requests against one schema and one database."""

    def __init__(self, schema: GraphQLSchema, engine: Engine) -> None:
        self.schema = schema
        self.engine = engine
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._lock = Lock()

    def _document(self, query: str) -> DocumentNode | GraphQLResponse:
        """Parse and validate, remembering small valid documents (clients repeat them)."""
        with self._lock:
            cached = self._documents.get(query)
            if cached is not None:
                self._documents.move_to_end(query)
                return cached
        try:
            document = parse(query)
        except GraphQLError as error:
            return _request_error([error], "GRAPHQL_PARSE_FAILED")
        errors = validate(self.schema, document)
        if errors:
            return _request_error(errors, "GRAPHQL_VALIDATION_FAILED")
        if len(query) <= _CACHEABLE_QUERY_CHARS:
            with self._lock:
                self._documents[query] = document
                if len(self._documents) > _CACHE_ENTRIES:
                    self._documents.popitem(last=False)
        return document

    def run(self, token: str | None, request: GraphQLRequest) -> GraphQLResponse:
        """Answer one request: 401 without a valid token, 400 for a request that cannot run.

        The token is checked first, in its own short transaction, so an unauthenticated caller
        costs no parsing and no connection is held while a large document is parsed.
        """
        if not token:
            return unauthenticated("Missing bearer token: send 'Authorization: Bearer <token>'")
        with read_snapshot(self.engine) as conn:
            viewer = authenticate(conn, token)
        if viewer is None:
            return unauthenticated("Invalid, expired or revoked token")
        document = self._document(request.query)
        if isinstance(document, GraphQLResponse):
            return document
        with read_snapshot(self.engine) as conn:
            result = execute(
                self.schema,
                document,
                variable_values=request.variables,
                operation_name=request.operation_name,
                context_value=RequestContext.open(conn, viewer),
                is_awaitable=_never_awaitable,
            )
            _raise_database_errors(result)
        # Every resolver is synchronous, so execution never returns an awaitable.
        assert isinstance(result, ExecutionResult)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            # The request itself was wrong (bad variables, unknown operation): nothing ran.
            return _request_error(result.errors, "BAD_USER_INPUT")
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(error) for error in result.errors]
        body["data"] = result.data
        return GraphQLResponse(200, body)


def _raise_database_errors(result: Any) -> None:
    """A database that could not be used fails the whole request (503, in api/admission.py),
    raised inside the snapshot so the lost connection is rolled back, not committed."""
    for error in getattr(result, "errors", None) or ():
        original = error.original_error
        if original is not None and (
            is_database_unavailable(original) or is_pool_timeout(original)
        ):
            raise original


def _never_awaitable(_value: Any) -> TypeGuard[Awaitable[Any]]:
    """Every resolver is synchronous: skip graphql-core's per-value awaitable check."""
    return False


def _request_error(errors: list[GraphQLError], code: str) -> GraphQLResponse:
    formatted = []
    for error in errors:
        entry = _format_error(error)
        entry.setdefault("extensions", {})["code"] = code
        formatted.append(entry)
    return GraphQLResponse(400, {"errors": formatted})
