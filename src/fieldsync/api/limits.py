"""Cost limits of one GraphQL request, all in one place.

A request is refused before it runs when its document is too large to parse (`max_tokens`),
too deep, has too many aliases or field selections, or costs too much by estimate (validation
rules, see `limit_rules`); when it sends too many content hashes or `sync_files`/`sync_feature_sets`
owners (`check_arguments`). While it runs, a `RequestDeadline` stops it after `request_seconds` or
when the client has gone (`DeadlineExecutor`, and the database side in
`fieldsync.storage.database.statement_deadline`). Its encoded answer is bounded by
`max_response_bytes`. docs/limits.md describes every limit for clients and operators.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    SKIP,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.execution import Executor
from graphql.language.ast import FragmentDefinitionNode

from fieldsync.api.resolvers import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from fieldsync.model import kinds as k

_Result = TypeVar("_Result")

# Page size of each sync query (the length of its `upserted`/`deleted` lists), from the kinds.
SYNC_PAGE_SIZES: dict[str, int] = {
    name: kind.sync.page_size
    for name, kind in {
        "sync_cogs": k.COG,
        "sync_mosaics": k.MOSAIC,
        "sync_images": k.IMAGE,
        "sync_files": k.FILE,
        "sync_feature_sets": k.FEATURE_SET,
        "sync_flight_tasks": k.FLIGHT_TASK,
        "sync_fields": k.FIELD,
        "sync_surveys": k.SURVEY,
    }.items()
    if kind.sync is not None
}
PAGED_LISTS = ("upserted", "deleted", "results")
MAX_OWNERS_CEILING = 30_000
"""The highest max_owners a server accepts: a sync_files scope binds one SQL parameter per
owner, and SQLite allows 32,766 a statement."""
UNPAGED_LIST_SIZE = 10
"""The estimated length of a list without a page size (`children`, `files`, `cogs`,
`failed`, introspection lists)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one request; every one is a setting (see fieldsync.config)."""

    max_depth: int = 15
    """Nesting of field selections, fragments expanded (GraphiQL's introspection query: 15)."""
    max_aliases: int = 100
    """Aliased field selections, fragments expanded."""
    max_fields: int = 1_000
    """Field selections, fragments expanded (so also repeated fields)."""
    max_cost: int = 1_000_000
    """Estimated values in the answer: every field selection counts once per item of every
    list around it (sync pages at their page size, paginated lists at their page_size)."""
    max_tokens: int = 110_000
    """Lexical tokens of the GraphQL document: admits the protocol's 100,000 hashes of one
    call as inline literals (one token each) and bounds parsing to about a second."""
    max_hashes: int = 200_000
    """content_hashes sent in one request, over all its sync fields."""
    max_owners: int = 2_000
    """sync_files and sync_feature_sets owners in one request."""
    request_seconds: float = 30.0
    """Time one request may run before it is stopped."""
    max_response_bytes: int = 32 * 1024 * 1024
    """Size of the encoded JSON answer."""


class LimitError(GraphQLError):
    """A request over one of the limits: HTTP 400 with its own `extensions.code`."""

    def __init__(self, code: str, message: str, node: Any = None) -> None:
        super().__init__(message, node, extensions={"code": code})
        self.code = code


def _too_many(what: str, found: int, limit: int, setting: str, advice: str) -> str:
    return f"{what}, {found:,}, is over the limit of {limit:,} ({setting}); {advice}"


# -- the document: depth, aliases, fields, cost ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    """What a selection set costs: depth, counts, and its cost for one enclosing item."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0
    cost: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth),
            self.fields + other.fields,
            self.aliases + other.aliases,
            self.cost + other.cost,
        )


def _page_size_argument(field: FieldNode, definition: GraphQLField | None) -> int | None:
    """The page size a field gives its list: a sync query's own, or its `pagination.page_size`
    (the default when left out, the largest allowed when given by a variable)."""
    if field.name.value in SYNC_PAGE_SIZES:
        return SYNC_PAGE_SIZES[field.name.value]
    if definition is None or "pagination" not in definition.args:
        return None
    for argument in field.arguments or ():
        if argument.name.value != "pagination":
            continue
        if not isinstance(argument.value, ObjectValueNode):
            return MAX_PAGE_SIZE
        for entry in argument.value.fields:
            if entry.name.value == "page_size":
                size = entry.value
                if isinstance(size, IntValueNode):
                    return max(0, min(int(size.value), MAX_PAGE_SIZE))
                return MAX_PAGE_SIZE
    return DEFAULT_PAGE_SIZE


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class _Measurer:
    """Measures an operation with its fragments expanded, each fragment once per context."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        max_depth: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.max_depth = max_depth
        self.memo: dict[tuple[str, int | None, int], Measure] = {}
        self.active: set[str] = set()

    def selection_set(
        self,
        node: SelectionSetNode,
        parent: GraphQLNamedType | None,
        page_size: int | None,
        level: int,
    ) -> Measure:
        total = Measure()
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page_size, level)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(selection.selection_set, type_, page_size, level)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(selection.name.value, page_size, level)
        return total

    def spread(self, name: str, page_size: int | None, level: int) -> Measure:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return Measure()  # unknown fragments and cycles are the standard rules' to report
        key = (name, page_size, level)
        if key not in self.memo:
            self.active.add(name)
            try:
                type_ = self.schema.get_type(fragment.type_condition.name.value)
                self.memo[key] = self.selection_set(fragment.selection_set, type_, page_size, level)
            finally:
                self.active.discard(name)
        return self.memo[key]

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, offered: int | None, level: int
    ) -> Measure:
        depth = level + 1
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = self.schema.get_field(parent, node.name.value)
        length = 1
        if definition is not None and _is_list(definition.type):
            paged = node.name.value in PAGED_LISTS and offered is not None
            length = offered if paged and offered is not None else UNPAGED_LIST_SIZE
        own = Measure(depth, 1, 1 if node.alias else 0, 0)
        inner = Measure()
        if node.selection_set is not None and depth <= self.max_depth:
            child_type = get_named_type(definition.type) if definition is not None else None
            inner = self.selection_set(
                node.selection_set, child_type, _page_size_argument(node, definition), depth
            )
        return Measure(
            max(depth, inner.depth),
            own.fields + inner.fields,
            own.aliases + inner.aliases,
            length * (1 + inner.cost),
        )


def measure_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    max_depth: int,
) -> Measure:
    root = schema.get_root_type(operation.operation)
    return _Measurer(schema, fragments, max_depth).selection_set(
        operation.selection_set, root, None, 0
    )


def document_errors(measure: Measure, limits: Limits, node: Any) -> list[LimitError]:
    """One error for each limit the measured operation exceeds."""
    errors: list[LimitError] = []
    if measure.depth > limits.max_depth:
        errors.append(
            LimitError(
                "QUERY_TOO_DEEP",
                f"The query nests fields more than {limits.max_depth} levels deep "
                "(FIELDSYNC_MAX_QUERY_DEPTH); select fewer levels and fetch the rest with "
                "separate queries",
                node,
            )
        )
    if measure.aliases > limits.max_aliases:
        errors.append(
            LimitError(
                "TOO_MANY_ALIASES",
                _too_many(
                    "The number of aliased fields",
                    measure.aliases,
                    limits.max_aliases,
                    "FIELDSYNC_MAX_QUERY_ALIASES",
                    "send fewer aliases per request, e.g. one sync call per request",
                ),
                node,
            )
        )
    if measure.fields > limits.max_fields:
        errors.append(
            LimitError(
                "TOO_MANY_FIELDS",
                _too_many(
                    "The number of field selections (fragments expanded)",
                    measure.fields,
                    limits.max_fields,
                    "FIELDSYNC_MAX_QUERY_FIELDS",
                    "select each field once and split the query",
                ),
                node,
            )
        )
    if measure.cost > limits.max_cost and measure.depth <= limits.max_depth:
        errors.append(
            LimitError(
                "QUERY_TOO_COSTLY",
                _too_many(
                    "The estimated cost of the query",
                    measure.cost,
                    limits.max_cost,
                    "FIELDSYNC_MAX_QUERY_COST",
                    "each field counts once per item of every list around it; ask for "
                    "smaller page_size, fewer nested lists or fewer fields",
                ),
                node,
            )
        )
    return errors


def limit_rules(limits: Limits) -> list[type[ValidationRule]]:
    """Validation rules checking the document limits, run in a cheap first pass so that an
    oversized document never reaches the standard rules (some of which are quadratic in
    repeated fields)."""

    class QueryLimitsRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> Any:
            fragments = {
                definition.name.value: definition
                for definition in self.context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            measure = measure_operation(self.context.schema, node, fragments, limits.max_depth)
            for error in document_errors(measure, limits, node):
                self.report_error(error)
            return SKIP

        def enter_fragment_definition(self, *_args: Any) -> Any:
            return SKIP

    return [QueryLimitsRule]


def too_many_tokens(limits: Limits) -> LimitError:
    return LimitError(
        "QUERY_TOO_LARGE",
        f"The query has more than {limits.max_tokens:,} tokens (FIELDSYNC_MAX_QUERY_TOKENS); "
        "send long lists such as content_hashes as variables and split the query",
    )


def too_many_overlapping_fields() -> LimitError:
    """graphql-core's own bound on comparing field selections with each other was reached
    ("Validation aborted."), typically by one field selected hundreds of times."""
    return LimitError(
        "TOO_MANY_FIELDS",
        "The query repeats the same field selections too often to be checked (each must be "
        "compared with every other of the same name); select each field once and split the "
        "query",
    )


def too_deeply_nested() -> LimitError:
    return LimitError(
        "QUERY_TOO_DEEP",
        "The query or one of its values is nested too deeply to be processed; flatten it",
    )


# -- the arguments: hashes and owners ------------------------------------------------------


def _list_length(value: ValueNode, variables: Mapping[str, Any]) -> int:
    if isinstance(value, ListValueNode):
        return len(value.values)
    if isinstance(value, VariableNode):
        given = variables.get(value.name.value)
        if isinstance(given, list):
            return len(given)
        return 0 if given is None else 1
    return 1


def _selected_operation(
    definitions: Any, operation_name: str | None
) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    for operation in operations:
        if operation.name is not None and operation.name.value == operation_name:
            return operation
    return None


class _ListArgumentCounter:
    """Sums the lengths of the list arguments named `names` over a selection set.

    A class rather than a recursive closure: a closure referring to itself is a reference
    cycle, which would keep the request's variables (100,000 hashes) alive until the garbage
    collector's next full pass.
    """

    def __init__(self, document: Any, variables: Mapping[str, Any], names: set[str]) -> None:
        self.names = names
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, dict[str, int]] = {}

    def walk(self, selection_set: SelectionSetNode, active: frozenset[str]) -> dict[str, int]:
        found = dict.fromkeys(self.names, 0)
        for selection in selection_set.selections:
            nested: dict[str, int] = {}
            if isinstance(selection, FieldNode):
                for argument in selection.arguments or ():
                    if argument.name.value in self.names:
                        found[argument.name.value] += _list_length(argument.value, self.variables)
                if selection.selection_set is not None:
                    nested = self.walk(selection.selection_set, active)
            elif isinstance(selection, InlineFragmentNode):
                nested = self.walk(selection.selection_set, active)
            elif isinstance(selection, FragmentSpreadNode):
                nested = self._spread(selection.name.value, active)
            for key, count in nested.items():
                found[key] += count
        return found

    def _spread(self, name: str, active: frozenset[str]) -> dict[str, int]:
        if name not in self.fragments or name in active:
            return {}
        if name not in self.memo:
            self.memo[name] = self.walk(self.fragments[name].selection_set, active | {name})
        return self.memo[name]


def count_list_arguments(
    document: Any, operation_name: str | None, variables: Mapping[str, Any], names: set[str]
) -> dict[str, int]:
    """The total length of the list arguments named `names` over every field the operation
    selects, fragments expanded (a fragment spread twice counts twice)."""
    operation = _selected_operation(document.definitions, operation_name)
    totals = dict.fromkeys(names, 0)
    if operation is None:
        return totals
    counter = _ListArgumentCounter(document, variables, names)
    for key, count in counter.walk(operation.selection_set, frozenset()).items():
        totals[key] += count
    return totals


def check_arguments(
    document: Any, operation_name: str | None, variables: Mapping[str, Any] | None, limits: Limits
) -> LimitError | None:
    """The first limit on list arguments the request exceeds (inline lists and variables)."""
    counts = count_list_arguments(
        document, operation_name, variables or {}, {"content_hashes", "owners"}
    )
    if counts["content_hashes"] > limits.max_hashes:
        return LimitError(
            "TOO_MANY_HASHES",
            _too_many(
                "The number of content_hashes in this request",
                counts["content_hashes"],
                limits.max_hashes,
                "FIELDSYNC_MAX_HASHES",
                "send the hashes of one scope per call; a scope with more items needs a "
                "server with a higher limit",
            ),
        )
    if counts["owners"] > limits.max_owners:
        return LimitError(
            "TOO_MANY_OWNERS",
            _too_many(
                "The number of sync_files and sync_feature_sets owners in this request",
                counts["owners"],
                limits.max_owners,
                "FIELDSYNC_MAX_OWNERS",
                "split the owners over several calls",
            ),
        )
    return None


# -- the time limit ------------------------------------------------------------------------


class ExecutionStopped(BaseException):
    """Raised inside execution once the deadline has passed or the client has gone.

    A BaseException, so that graphql-core's per-field error handling does not turn it into
    one field error after another: it unwinds the whole execution at once.
    """


class RequestDeadline:
    """When a request must stop: a time limit, or a cancellation (the client went away).

    `stopped()` is cheap enough to be asked for every field and from SQLite's progress
    handler; `cancel()` may be called from another thread.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.cancelled = False
        self._lock = threading.Lock()
        self._on_cancel: list[Callable[[], None]] = []

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def stopped(self) -> bool:
        return self.cancelled or time.monotonic() >= self.expires_at

    def cancel(self) -> None:
        # Under the lock: a callback never runs once its block has been left (its database
        # connection may already serve another request by then).
        with self._lock:
            self.cancelled = True
            for callback in self._on_cancel:
                callback()

    @contextmanager
    def on_cancel(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` if the request is cancelled while inside this block."""
        with self._lock:
            self._on_cancel.append(callback)
        try:
            yield
        finally:
            with self._lock:
                self._on_cancel.remove(callback)

    def timeout_message(self) -> str:
        return (
            f"The request ran longer than the limit of {self.seconds:g} s "
            "(FIELDSYNC_REQUEST_TIMEOUT) and was stopped; ask for less per request (fewer "
            "fields, smaller pages, fewer hashes) or try again later"
        )


class DeadlineExecutor(Executor[Any]):
    """graphql-core's executor, checking the request's deadline before every field."""

    def __init__(self, *args: Any, deadline: RequestDeadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        if self.deadline.stopped():
            raise ExecutionStopped
        return super().execute_field(*args, **kwargs)

    def finish(self, result: _Result) -> _Result:
        """The answer, and graphql-core's reference cycle broken: the executor's async helpers
        are bound methods of itself, which would keep the request's variables (up to 100,000
        hashes) and context alive until the garbage collector's next full pass."""
        try:
            return super().finish(result)
        finally:
            del self.async_helpers


# -- the answer ------------------------------------------------------------------------------


def response_too_large(size: int, max_bytes: int) -> LimitError:
    return LimitError(
        "RESPONSE_TOO_LARGE",
        f"The answer would be {size:,} bytes, over the limit of {max_bytes:,} "
        "bytes (FIELDSYNC_MAX_RESPONSE_BYTES); select fewer fields or smaller pages",
    )
