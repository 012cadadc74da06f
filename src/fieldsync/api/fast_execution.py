"""The fast execution path: graphql-core's executor with two costs taken out, same answers.

graphql-core executes every field alike: a resolve-info object, an argument check, the
resolver, then a generic completion of the value. A sync page of 2,000 mosaics has some
40,000 such fields, almost all of them plain values read from the item's stored
representation. `FastExecutor` keeps graphql-core's algorithm (field collection with its
fragments and directives, abstract types, null propagation, error paths) and completes those
plain fields itself:

* a field without arguments and without a resolver of its own, whose type is a scalar or an
  enum (or `__typename`), on a dict source, is read with `dict.get` and checked with the type's
  own test (`type(value) is str` for a `String`, the 32-bit range for an `Int`, the type's
  `coerce_output_value` for an enum or a custom scalar);
* anything else, or such a field whose value is not what its type accepts as is (null in a
  non-null field, a number in a `String`, an enum value the type does not know, …), is executed
  by graphql-core's `execute_field` for that one field, so its value, its error message and its
  path are graphql-core's own.

Variables of type `[String!]` / `[String!]!` whose values are lists of strings (the hash lists
of every sync query) are taken as given instead of being coerced element by element; any
other value goes through graphql-core's coercion and errors. Nothing here changes what a
document means: tests/test_fast_path_differential.py runs generated documents through this
executor and through plain graphql-core and compares the answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    TypeNode,
    Undefined,
    default_type_resolver,
    get_nullable_type,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor, to_nodes
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValueSource
from graphql.pyutils import Path

from fieldsync.api.limits import DeadlineExecutor, ExecutionStopped
from fieldsync.api.resolvers import RUN_RESOLVER, SOURCE_READERS, selected_names

_AS_IS = RUN_RESOLVER
"""A step's answer when graphql-core must execute the field (its value is not one the field's
type takes unchanged, or a resolver must compute it)."""
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _is_string(value: Any) -> bool:
    return type(value) is str


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _is_float(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def _is_boolean(value: Any) -> bool:
    return type(value) is bool


_UNCHANGED_BY: dict[str, Callable[[Any], bool]] = {
    "String": _is_string,
    "ID": _is_string,
    "Int": _is_int,
    "Float": _is_float,
    "Boolean": _is_boolean,
}
"""For each built-in scalar: is a value one its output coercion returns unchanged?"""


Getter = Callable[[dict[str, Any]], Any]
Step = Callable[["FastExecutor", dict[str, Any], "Path | None", str, FieldDetailsList], Any]
"""Completes one collected field on a dict source: its value, or `_AS_IS` to have
graphql-core execute the field."""


def _leaf_step(get: Getter, field_type: GraphQLOutputType) -> Step | None:
    """A scalar or enum field: its value as the type takes it unchanged, else `_AS_IS`."""
    nullable = not is_non_null_type(field_type)
    named = get_nullable_type(field_type)
    if not is_leaf_type(named):
        return None
    unchanged = _UNCHANGED_BY.get(named.name)
    coerce: Callable[[Any], Any] = named.coerce_output_value

    def complete(
        _executor: FastExecutor, source: dict[str, Any], _path: Any, _key: str, _details: Any
    ) -> Any:
        value = get(source)
        if value is None:
            return None if nullable else _AS_IS
        if unchanged is not None:
            return value if unchanged(value) else _AS_IS
        try:
            coerced = coerce(value)
        except Exception:  # graphql-core reports it, with its own message
            return _AS_IS
        return _AS_IS if coerced is None or coerced is Undefined else coerced

    return complete


def _object_step(
    get: Getter, field_type: GraphQLOutputType, parent_type: GraphQLObjectType
) -> Step | None:
    """An object-typed field whose value is a dict: its selection completed on that dict."""
    nullable = not is_non_null_type(field_type)
    named = get_nullable_type(field_type)
    if not is_object_type(named) or named.is_type_of is not None:
        return None
    object_type: GraphQLObjectType = named
    parent_name = parent_type.name

    def complete(
        executor: FastExecutor,
        source: dict[str, Any],
        path: Any,
        key: str,
        details: FieldDetailsList,
    ) -> Any:
        value = get(source)
        if value is None:
            return None if nullable else _AS_IS
        if type(value) is not dict:
            return _AS_IS
        field_path = Path(path, key, parent_name)
        try:
            grouped = executor.collect_subfields(object_type, details).grouped_field_set
            return executor.execute_fields(object_type, value, field_path, grouped, None)
        except Exception as raw_error:  # as graphql-core's execute_field handles it
            executor.handle_field_error(raw_error, field_type, details, field_path)
            return None

    return complete


def _typename_step(type_name: str) -> Step:
    def complete(
        _executor: FastExecutor, _source: Any, _path: Any, _key: str, _details: Any
    ) -> str:
        return type_name

    return complete


def _getter(field: GraphQLField, name: str, details: FieldDetailsList) -> Getter | None:
    """How a field's value is read from its source dict, if it can be."""
    node = details[0].node
    if field.resolve is None:
        if field.args or node.arguments:
            return None
        return lambda source: source.get(name)
    reader = SOURCE_READERS.get(field.resolve)
    if reader is None or node.arguments:
        return None
    return reader(name, selected_names(to_nodes(details)))


def _field_step(
    schema: GraphQLSchema, parent_type: GraphQLObjectType, details: FieldDetailsList
) -> Step | None:
    """The fast completion of one collected field, or None: graphql-core executes it."""
    node = details[0].node
    name = node.name.value
    if name == "__typename":
        return _typename_step(parent_type.name)
    field: GraphQLField | None = schema.get_field(parent_type, name)
    if field is None:
        return None
    get = _getter(field, name, details)
    if get is None:
        return None
    return _leaf_step(get, field.type) or _object_step(get, field.type, parent_type)


Plan = list[tuple[str, FieldDetailsList, Step | None]]


class FastExecutor(DeadlineExecutor):
    """graphql-core's executor (with the request deadline) completing plain fields itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[int, tuple[GroupedFieldSet, Plan]] = {}
        self._item_types: dict[GraphQLOutputType, ItemTypes | None] = {}

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Executor[Any]:
        """graphql-core's build, with string-list variables taken without coercion."""
        taken, rest = _string_list_variables(document, operation_name, raw_variable_values)
        built = super().build(
            schema,
            document,
            root_value,
            context_value,
            rest,
            operation_name,
            *args,
            **kwargs,
        )
        if taken and isinstance(built, Executor):
            for name, (definition, value) in taken.items():
                signature = get_variable_signature(schema, definition)
                assert not isinstance(signature, GraphQLError)  # String is in every schema
                built.variable_values.sources[name] = VariableValueSource(signature, value)
                built.variable_values.coerced[name] = value
        return built

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if type(source_value) is not dict:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        for response_name, details, step in self._plan(parent_type, grouped_field_set):
            if step is not None:
                value = step(self, source_value, path, response_name, details)
                if value is not _AS_IS:
                    results[response_name] = value
                    continue
            field_path = Path(path, response_name, parent_type.name)
            result = self.execute_field(
                parent_type, source_value, details, field_path, position_context
            )
            if result is not Undefined:
                results[response_name] = result
        return results

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of dicts of object types completed item by item without graphql-core's
        generic value completion; any other item is completed by graphql-core."""
        item_type = return_type.of_type
        item_types = self._runtime_types(item_type)
        if (
            type(result) is not list
            or item_types is None
            or self.get_stream_usage(field_details_list, path) is not None
        ):
            return super().complete_list_value(
                return_type, field_details_list, info, path, result, position_context
            )
        completed: list[Any] = []
        fixed, by_typename = item_types
        stopped = self.deadline.stopped
        for index, item in enumerate(result):
            if stopped():  # the fields of an item are not checked one by one
                raise ExecutionStopped
            item_path = Path(path, index, None)
            runtime = None
            if type(item) is dict:
                runtime = fixed or by_typename.get(item.get("__typename"))  # type: ignore[arg-type]
            if runtime is None:
                self.complete_list_item_value(
                    item,
                    completed,
                    item_type,
                    field_details_list,
                    info,
                    item_path,
                    position_context,
                )
                continue
            try:
                grouped = self.collect_subfields(runtime, field_details_list).grouped_field_set
                completed.append(self.execute_fields(runtime, item, item_path, grouped, None))
            except Exception as raw_error:  # as graphql-core's complete_list_item_value
                self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                completed.append(None)
        return completed

    def _runtime_types(self, item_type: GraphQLOutputType) -> ItemTypes | None:
        """The object type of a list's items (None: not a list the fast path completes)."""
        if item_type not in self._item_types:
            self._item_types[item_type] = _object_types_of(self.schema, item_type, self)
        return self._item_types[item_type]

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        """The steps of a collected selection set (made once per set and request)."""
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        plan = [
            (response_name, details, _field_step(self.schema, parent_type, details))
            for response_name, details in grouped_field_set.items()
        ]
        # The set is kept with its plan, so its id cannot be reused during the request.
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan


ItemTypes = tuple[GraphQLObjectType | None, dict[str, GraphQLObjectType]]
"""A list's item type: one object type, or the object types of an abstract type by name
(found as graphql-core's default type resolver finds them: by the dict's `__typename`)."""


def _object_types_of(
    schema: GraphQLSchema, item_type: GraphQLOutputType, executor: Executor[Any]
) -> ItemTypes | None:
    named = get_nullable_type(item_type)
    if is_object_type(named):
        return None if named.is_type_of is not None else (named, {})
    if not is_abstract_type(named):
        return None
    if named.resolve_type is not None or executor.type_resolver is not default_type_resolver:
        return None
    possible = schema.get_possible_types(named)
    if any(object_type.is_type_of is not None for object_type in possible):
        return None
    return None, {object_type.name: object_type for object_type in possible}


def _is_string_list(type_node: TypeNode) -> bool:
    """`[String!]` or `[String!]!`."""
    if isinstance(type_node, NonNullTypeNode):
        type_node = type_node.type
    if not isinstance(type_node, ListTypeNode):
        return False
    item = type_node.type
    return (
        isinstance(item, NonNullTypeNode)
        and isinstance(item.type, NamedTypeNode)
        and item.type.name.value == "String"
    )


def _string_list_variables(
    document: DocumentNode, operation_name: str | None, raw: dict[str, Any] | None
) -> tuple[dict[str, tuple[Any, list[str]]], dict[str, Any] | None]:
    """The variables given as lists of strings for `[String!]` definitions, and the raw
    variables with an empty list in their place."""
    if not raw:
        return {}, raw
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return {}, raw
    taken: dict[str, tuple[Any, list[str]]] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        value = raw.get(name)
        if (
            type(value) is list
            and _is_string_list(definition.type)
            and all(type(item) is str for item in value)
        ):
            taken[name] = (definition, value)
    if not taken:
        return {}, raw
    # An empty list stands in for each taken one (a non-null variable must be given).
    return taken, {name: [] if name in taken else value for name, value in raw.items()}
