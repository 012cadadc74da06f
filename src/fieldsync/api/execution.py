"""Executing one GraphQL request: auth, parse, validate, execute on one snapshot, and the
status code and body to answer with. Independent of the HTTP framework."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from threading import Lock
from typing import Any, Generic, TypeGuard, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.validation.validate import ValidationAbortedError
from sqlalchemy import Connection, Engine

from fieldsync.access import OrganizationAccess, organization_access_of, organization_access_read
from fieldsync.api.context import RequestContext
from fieldsync.api.fast_execution import FastExecutor
from fieldsync.api.inline_lists import LiftedQuery, declare_lifted, lift_inline_lists
from fieldsync.api.limits import (
    DeadlineExecutor,
    ExecutionStopped,
    Limits,
    RequestDeadline,
    check_arguments,
    limit_rules,
    too_deeply_nested,
    too_many_overlapping_fields,
    too_many_tokens,
)
from fieldsync.blobs.context import BlobContext
from fieldsync.errors import FieldSyncError
from fieldsync.ratelimit import RateLimited, RateLimiter
from fieldsync.storage.database import (
    WriterBusyError,
    WriteWait,
    interrupt_statement,
    is_database_unavailable,
    is_pool_timeout,
    read_snapshot,
    single_statement_read,
    statement_deadline,
    with_write_wait,
    write_transaction,
)
from fieldsync.tokens import TokenUseRecorder, Viewer, authenticate

log = logging.getLogger("fieldsync.api")

_CACHEABLE_QUERY_CHARS = 20_000
# A mutation waits this long for another writer (SQLite: one at a time), then answers 503.
_WRITER_WAIT_SECONDS = 5.0
_WRITER_RETRY_AFTER = 1
_CACHE_ENTRIES = 256
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    read_only: bool = False
    """A GET request: it may not run a mutation (a link or a prefetch must not write)."""
    base_url: str = ""
    """Where the request came in, the base of absolute links (see BlobSettings.public_url)."""


@dataclass(frozen=True, slots=True)
class GraphQLResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None
    authenticated: bool = False
    """Whether the request's token was valid (only then may its operation name be a metric
    label: see fieldsync.observability.OperationLabels)."""


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def unauthenticated(message: str) -> GraphQLResponse:
    return GraphQLResponse(
        401,
        error_body(message, "UNAUTHENTICATED"),
        {"WWW-Authenticate": 'Bearer realm="fieldsync"'},
    )


def rate_limited(refusal: RateLimited) -> GraphQLResponse:
    body = error_body(refusal.message, "RATE_LIMITED")
    body["errors"][0]["extensions"]["retry_after_seconds"] = refusal.retry_after_seconds
    return GraphQLResponse(429, body, {"Retry-After": str(refusal.retry_after_seconds)})


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


class _RecentCache(Generic[_Key, _Value]):
    """The most recently used entries, up to a count; safe to share between threads."""

    def __init__(self, entries: int = _CACHE_ENTRIES) -> None:
        self._entries = entries
        self._items: OrderedDict[_Key, _Value] = OrderedDict()
        self._lock = Lock()

    def get(self, key: _Key) -> _Value | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: _Key, value: _Value) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._entries:
                self._items.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _Skeleton:
    """A lifted query's skeleton, parsed and validated (see fieldsync.api.inline_lists)."""

    document: DocumentNode | None
    """None: the skeleton does not stand for its original (it does not validate, or is not
    one query); the original document runs instead."""
    token_count: int = 0


class GraphQLExecutor:
    """Runs requests against one schema and one database."""

    def __init__(
        self,
        schema: GraphQLSchema,
        engine: Engine,
        limits: Limits | None = None,
        *,
        introspection: bool = True,
        rate_limiter: RateLimiter | None = None,
        token_uses: TokenUseRecorder | None = None,
        blobs: Callable[[], BlobContext] | None = None,
        fast_path: bool = True,
    ) -> None:
        self.schema = schema
        self.fast_path = fast_path
        """Whether sync queries may run on the compiled fast path (False: graphql-core only)."""
        self.engine = engine
        self.rate_limiter = rate_limiter
        self.token_uses = token_uses
        self.blobs = blobs
        self.limits = limits or Limits()
        self._limit_rules = limit_rules(self.limits)
        self._rules: list[type[ASTValidationRule]] = list(specified_rules)
        # "Did you mean 'sentera_id'?" would tell the schema to a caller without introspection.
        self._hide_suggestions = not introspection
        if not introspection:
            self._rules.append(NoSchemaIntrospectionCustomRule)
        self._documents: _RecentCache[str, DocumentNode] = _RecentCache()
        self._skeletons: _RecentCache[str, _Skeleton] = _RecentCache()

    def _document(self, query: str) -> DocumentNode | GraphQLResponse:
        """Parse and validate, remembering small valid documents (clients repeat them)."""
        cached = self._documents.get(query)
        if cached is not None:
            return cached
        document = self._parse(query)
        if isinstance(document, GraphQLResponse):
            return document
        errors = self._validate(document)
        if errors:
            return _request_error(errors, "GRAPHQL_VALIDATION_FAILED")
        if len(query) <= _CACHEABLE_QUERY_CHARS:
            self._documents.put(query, document)
        return document

    def _skeleton(self, lifted: LiftedQuery) -> _Skeleton:
        """The lifted query's skeleton, parsed, declared and validated (cached)."""
        cached = self._skeletons.get(lifted.skeleton)
        if cached is not None:
            return cached
        parsed = self._parse(lifted.skeleton)
        document = None
        if not isinstance(parsed, GraphQLResponse):
            document = declare_lifted(parsed, list(lifted.values))
        if document is None or self._validate(document):
            skeleton = _Skeleton(None)
        else:
            skeleton = _Skeleton(document, parsed.token_count)  # type: ignore[union-attr]
        if len(lifted.skeleton) <= _CACHEABLE_QUERY_CHARS:
            self._skeletons.put(lifted.skeleton, skeleton)
        return skeleton

    def _parse(self, query: str) -> DocumentNode | GraphQLResponse:
        """Parse within the token limit, so a huge document is refused cheaply."""
        try:
            return parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            if error.message.endswith("tokens. Parsing aborted."):
                return _request_error([too_many_tokens(self.limits)], "QUERY_TOO_LARGE")
            return _request_error([error], "GRAPHQL_PARSE_FAILED")
        except RecursionError:
            return _request_error([too_deeply_nested()], "QUERY_TOO_DEEP")

    def _validate(self, document: DocumentNode) -> list[GraphQLError]:
        """The cost limits first (a cheap pass), then the standard rules."""
        try:
            errors = validate(self.schema, document, self._limit_rules) or validate(
                self.schema, document, self._rules, hide_suggestions=self._hide_suggestions
            )
        except RecursionError:
            return [too_deeply_nested()]
        return [_actionable(error) for error in errors]

    def run(
        self, token: str | None, request: GraphQLRequest, deadline: RequestDeadline | None = None
    ) -> GraphQLResponse:
        """Answer one request: 401 without a valid token, 400 for a request that cannot run.

        The token is checked first, by one statement of its own, so an unauthenticated caller
        costs no parsing and no connection is held while a large document is parsed.
        """
        if not token:
            return unauthenticated("Missing bearer token: send 'Authorization: Bearer <token>'")
        with single_statement_read(self.engine) as conn:
            viewer = authenticate(conn, token)
        if viewer is None:
            return unauthenticated("Invalid, expired or revoked token")
        return replace(self._run_as(viewer, request, deadline), authenticated=True)

    def _run_as(
        self, viewer: Viewer, request: GraphQLRequest, deadline: RequestDeadline | None
    ) -> GraphQLResponse:
        """Answer the request of an authenticated caller."""
        refusal = self._admit(viewer)
        if refusal is not None:
            return refusal
        deadline = deadline or RequestDeadline(self.limits.request_seconds)
        lifted = lift_inline_lists(request.query) if self.fast_path else None
        if lifted is not None:
            answer = self._run_lifted(lifted, viewer, request, deadline)
            if answer is not None:
                return answer
        document = self._document(request.query)
        if isinstance(document, GraphQLResponse):
            return document
        return self._answer(document, request, viewer, deadline)

    def _run_lifted(
        self,
        lifted: LiftedQuery,
        viewer: Viewer,
        request: GraphQLRequest,
        deadline: RequestDeadline,
    ) -> GraphQLResponse | None:
        """The answer to a query with its inline hash lists lifted out, if it is the
        original's: None when the original must run (the skeleton does not validate, or the
        answer holds an error, whose message and locations are the original's to give)."""
        skeleton = self._skeleton(lifted)
        if skeleton.document is None:
            return None
        if skeleton.token_count + lifted.strings > self.limits.max_tokens:
            return _request_error([too_many_tokens(self.limits)], "QUERY_TOO_LARGE")
        variables = (request.variables or {}) | lifted.values
        answer = self._answer(
            skeleton.document, replace(request, variables=variables), viewer, deadline
        )
        if answer.status == 200 and "errors" not in answer.body:
            return answer
        if answer.status == 503:  # stopped or busy: the original would be too
            return answer
        return None

    def _answer(
        self,
        document: DocumentNode,
        request: GraphQLRequest,
        viewer: Viewer,
        deadline: RequestDeadline,
    ) -> GraphQLResponse:
        """Run a parsed and validated document: the status code and body to answer with."""
        if request.read_only and _is_mutation(document, request.operation_name):
            return GraphQLResponse(
                405,
                error_body("A mutation must be sent with POST, not GET", "METHOD_NOT_ALLOWED"),
                {"Allow": "POST"},
            )
        over_limit = check_arguments(
            document, request.operation_name, request.variables, self.limits
        )
        if over_limit is not None:
            return _request_error([over_limit], over_limit.code)
        result = self._execute(document, request, viewer, deadline)
        if isinstance(result, GraphQLResponse):
            return result
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            # The request itself was wrong (bad variables, unknown operation): nothing ran.
            return _request_error(result.errors, "BAD_USER_INPUT")
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(error) for error in result.errors]
        body["data"] = result.data
        return GraphQLResponse(200, body)

    def _admit(self, viewer: Viewer) -> GraphQLResponse | None:
        """Per-token bookkeeping after authentication: note the use, apply the rate limit."""
        if self.token_uses is not None:
            self.token_uses.record(viewer.token_id)
        if self.rate_limiter is None:
            return None
        refused = self.rate_limiter.check(viewer.token_id)
        return None if refused is None else rate_limited(refused)

    def _transaction(
        self, mutation: bool, deadline: RequestDeadline
    ) -> AbstractContextManager[Connection]:
        """A mutation waits for another writer only briefly (503 WRITER_BUSY after that)."""
        if not mutation:
            return read_snapshot(self.engine)
        wait = WriteWait(seconds=max(0.1, min(_WRITER_WAIT_SECONDS, deadline.remaining())))
        return write_transaction(with_write_wait(self.engine, wait))

    def _context(
        self,
        conn: Connection,
        viewer: Viewer,
        request: GraphQLRequest,
        access: OrganizationAccess | None,
    ) -> RequestContext:
        context = RequestContext.open(conn, viewer, access)
        context.blobs = None if self.blobs is None else self.blobs()
        context.base_url = request.base_url
        return context

    def _execute(
        self,
        document: DocumentNode,
        request: GraphQLRequest,
        viewer: Viewer,
        deadline: RequestDeadline,
    ) -> ExecutionResult | GraphQLResponse:
        """Execute a query on one snapshot and a mutation in one write transaction, stopped by
        the deadline in Python and in the database (a stopped mutation writes nothing).

        A query reads the caller's organizations with the snapshot's first statements (one
        round trip for them all on PostgreSQL); a mutation reads them at first use, after the
        writer lock.
        """
        mutation = _is_mutation(document, request.operation_name)
        first_reads = [] if mutation else [organization_access_read(viewer.user_id)]
        try:
            with (
                self._transaction(mutation, deadline) as conn,
                statement_deadline(
                    conn, deadline.remaining(), deadline.stopped, first_reads
                ) as first_rows,
                deadline.on_cancel(lambda: interrupt_statement(conn)),
            ):
                access = None if mutation else organization_access_of(first_rows[0])
                result = execute(
                    self.schema,
                    document,
                    variable_values=request.variables,
                    operation_name=request.operation_name,
                    context_value=self._context(conn, viewer, request, access),
                    is_awaitable=_never_awaitable,
                    executor_class=FastExecutor if self.fast_path else DeadlineExecutor,
                    deadline=deadline,
                    hide_suggestions=self._hide_suggestions,
                )
                _raise_database_errors(result)
                if getattr(result, "errors", None) and deadline.stopped():
                    # A statement was interrupted at the deadline: its errors are not the
                    # answer, and a mutation keeps nothing it wrote (the transaction rolls back).
                    raise ExecutionStopped
        except ExecutionStopped:
            return _stopped(deadline)
        except WriterBusyError as busy:
            return GraphQLResponse(
                503, error_body(str(busy), busy.code), {"Retry-After": str(_WRITER_RETRY_AFTER)}
            )
        except RecursionError:
            return _request_error([too_deeply_nested()], "QUERY_TOO_DEEP")
        # Every resolver is synchronous, so execution never returns an awaitable.
        assert isinstance(result, ExecutionResult)
        return result


def _is_mutation(document: DocumentNode, operation_name: str | None) -> bool:
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.MUTATION


def _actionable(error: GraphQLError) -> GraphQLError:
    """graphql-core's bare "Validation aborted." (its comparison budget ran out) explained."""
    if isinstance(error, ValidationAbortedError) and error.message == "Validation aborted.":
        return too_many_overlapping_fields()
    return error


def _stopped(deadline: RequestDeadline) -> GraphQLResponse:
    """The answer to a request stopped by its deadline (503) or by its client leaving."""
    if deadline.cancelled:
        log.info("request cancelled: the client disconnected")
        return GraphQLResponse(
            503, error_body("The client disconnected; the request was stopped", "CANCELLED")
        )
    log.warning("request stopped after %g s", deadline.seconds)
    return GraphQLResponse(503, error_body(deadline.timeout_message(), "TIMEOUT"))


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
        entry.setdefault("extensions", {}).setdefault("code", code)
        formatted.append(entry)
    return GraphQLResponse(400, {"errors": formatted})
