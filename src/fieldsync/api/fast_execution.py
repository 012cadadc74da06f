"""The fast execution path: graphql-core's executor with its per-field cost taken out.

graphql-core executes every field alike: a resolve-info object, an argument check, the
resolver, then a generic completion of the value. A sync page of 2,000 mosaics has some
40,000 such fields, almost all of them plain values of the items' stored representations.
`FastExecutor` keeps graphql-core's algorithm (field collection with its fragments and
directives, abstract types, null propagation, error paths) and changes how an object's
collected fields are completed when its value is a dict:

* each collected selection set becomes a compiled function (`compiled_selections`) that reads
  a plain field with `dict.get` and keeps the value when the field's type takes it unchanged
  (`type(value) is str` for a `String`, the 32-bit range for an `Int`, the type's own
  coercion for an enum or a custom scalar), completes a dict-valued object field and a list of
  dicts directly, and reads the fields some resolvers compute from the source alone
  (`resolvers.SOURCE_READERS`: `action`, references asked for their id, a mosaic's image count);
* anything else — a field with a resolver or arguments, a null in a non-null field, a value the
  type would coerce or refuse, an item whose `__typename` is not a possible type — is executed
  by graphql-core's own `execute_field` (or list item completion) for that one field, so its
  value, its error message and its path are graphql-core's;
* a list item that the generated code completed alone is kept (`api.completed_items`) and
  served as it is to the next request completing the same source dict with the same plans:
  a page of shared cached representations asked for again costs one lookup per item.

Variables of type `[String!]` / `[String!]!` whose values are lists of strings (the hash lists
of every sync query) are taken as given instead of being coerced element by element; any
other value goes through graphql-core's coercion and its errors. Nothing here changes what a
document means: tests/test_fast_path.py and tests/test_fast_path_differential.py run documents
through this executor and through plain graphql-core and compare the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
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

from fieldsync.api.compiled_selections import (
    Complete,
    FieldRead,
    Getter,
    builtin_test,
    compile_selection,
)
from fieldsync.api.completed_items import COMPLETED_ITEMS
from fieldsync.api.limits import DeadlineExecutor, ExecutionStopped
from fieldsync.api.resolvers import RUN_RESOLVER, SOURCE_READERS, selected_names

_AS_IS = RUN_RESOLVER
"""What a source reader or a leaf coercion gives when graphql-core must execute the field
(its value is not one the field's type takes unchanged, or a resolver must compute it)."""


@cache
def _coercion(leaf: GraphQLLeafType) -> Callable[[Any], Any]:
    """A leaf type's output coercion, giving `_AS_IS` where graphql-core would report an error
    (it then does, with its own message)."""
    coerce: Callable[[Any], Any] = leaf.coerce_output_value

    def coerced(value: Any) -> Any:
        try:
            result = coerce(value)
        except Exception:
            return _AS_IS
        return _AS_IS if result is None or result is Undefined else result

    return coerced


def _getter(
    field: GraphQLField, name: str, details: FieldDetailsList
) -> tuple[bool, Getter | None]:
    """Whether a field's value is read from its source dict, and how: None for
    `source.get(name)`, else a function of the source (not readable: a resolver must run)."""
    node = details[0].node
    if field.resolve is None:
        return not (field.args or node.arguments), None
    reader = SOURCE_READERS.get(field.resolve)
    if reader is None or node.arguments:
        return False, None
    get = reader(name, selected_names(to_nodes(details)))
    return get is not None, get


def _field_read(
    schema: GraphQLSchema, parent_type: GraphQLObjectType, key: str, details: FieldDetailsList
) -> FieldRead:
    """How the compiled selection completes one collected field."""
    name = details[0].node.name.value
    if name == "__typename":
        return FieldRead(key, "typename", field_name=parent_type.name)  # the value itself
    execute = FieldRead(key, "execute")
    field: GraphQLField | None = schema.get_field(parent_type, name)
    if field is None:
        return execute
    readable, get = _getter(field, name, details)
    if not readable:
        return execute
    read = partial(
        FieldRead, key, field_name=name, nullable=not is_non_null_type(field.type), get=get
    )
    named = get_nullable_type(field.type)
    if is_leaf_type(named):
        test = builtin_test(named.name)
        if test is not None:
            return read("leaf", leaf_test=test)
        return read("leaf", coerce=_coercion(named))
    if is_object_type(named) and named.is_type_of is None:
        return read("object", object_type=named, field_type=field.type)
    return execute


@dataclass(frozen=True, slots=True)
class _Plan:
    complete: Complete
    details: tuple[FieldDetailsList, ...]
    grouped_field_set: GroupedFieldSet
    """Kept with its plan, so that its id cannot be reused during the request."""
    completion_key: tuple[Any, ...] | None
    """What a value completed by the generated code alone depends on besides its source: the
    compiled function and the keys of its object fields' plans (None: some field is executed
    by graphql-core, so the value may depend on more). See `api.completed_items`."""


class FastExecutor(DeadlineExecutor):
    """graphql-core's executor (with the request deadline) completing plain fields itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[int, _Plan] = {}
        self._subfield_plans: dict[tuple[GraphQLObjectType, int], _Plan] = {}
        self._item_types: dict[GraphQLOutputType, ItemTypes | None] = {}
        self._handed_over = 0
        """How many fields or objects the generated code has handed to graphql-core (or
        whose error it has handled): a value completed while this stays the same was made by
        generated code alone."""

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
        if type(source_value) is not dict or position_context is not None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        return plan.complete(self, source_value, path, plan.details)

    def run_field(
        self,
        parent_type: GraphQLObjectType,
        source: dict[str, Any],
        details: FieldDetailsList,
        path: Path | None,
        key: str,
        results: dict[str, Any],
    ) -> None:
        """Execute one field with graphql-core, into `results`."""
        self._handed_over += 1
        field_path = Path(path, key, parent_type.name)
        result = self.execute_field(parent_type, source, details, field_path, None)
        if result is not Undefined:
            results[key] = result

    def complete_object(
        self,
        object_type: GraphQLObjectType,
        field_type: GraphQLOutputType,
        details: FieldDetailsList,
        value: dict[str, Any],
        path: Path | None,
        key: str,
        parent_type: GraphQLObjectType,
    ) -> Any:
        """An object field's dict value completed, its errors handled as graphql-core's
        `execute_field` handles them (a non-null field's error goes up to its parent)."""
        field_path = Path(path, key, parent_type.name)
        try:
            plan = self._subfields_plan(object_type, details)
            return plan.complete(self, value, field_path, plan.details)
        except Exception as raw_error:
            self._handed_over += 1
            self.handle_field_error(raw_error, field_type, details, field_path)
            return None

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
                plan = self._subfields_plan(runtime, field_details_list)
                completed.append(self._complete_item(plan, item, item_path))
            except Exception as raw_error:  # as graphql-core's complete_list_item_value
                self._handed_over += 1
                self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                completed.append(None)
        return completed

    def _complete_item(self, plan: _Plan, item: dict[str, Any], path: Path) -> Any:
        """A list item completed by its plan, or as the plan completed it before when the
        generated code alone made that value (`api.completed_items`)."""
        key = plan.completion_key
        if key is None:
            return plan.complete(self, item, path, plan.details)
        completed = COMPLETED_ITEMS.get(key, item)
        if completed is None:
            handed_over = self._handed_over
            completed = plan.complete(self, item, path, plan.details)
            if self._handed_over == handed_over:
                COMPLETED_ITEMS.put(key, item, completed)
        return completed

    def _runtime_types(self, item_type: GraphQLOutputType) -> ItemTypes | None:
        """The object type of a list's items (None: not a list the fast path completes)."""
        if item_type not in self._item_types:
            self._item_types[item_type] = _object_types_of(self.schema, item_type, self)
        return self._item_types[item_type]

    def _subfields_plan(self, object_type: GraphQLObjectType, details: FieldDetailsList) -> _Plan:
        """The plan of a field's selection on one object type (`collect_subfields` and
        `_plan` in one lookup; the field's details live as long as the request)."""
        key = (object_type, id(details))
        plan = self._subfield_plans.get(key)
        if plan is None:
            grouped = self.collect_subfields(object_type, details).grouped_field_set
            plan = self._subfield_plans[key] = self._plan(object_type, grouped)
        return plan

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        """The compiled completion of a collected selection set (found once per request)."""
        plan = self._plans.get(id(grouped_field_set))
        if plan is None:
            reads = [
                _field_read(self.schema, parent_type, key, details)
                for key, details in grouped_field_set.items()
            ]
            complete = compile_selection(parent_type, reads, _AS_IS)
            details = tuple(grouped_field_set.values())
            plan = _Plan(
                complete,
                details,
                grouped_field_set,
                self._completion_key(complete, reads, details),
            )
            self._plans[id(grouped_field_set)] = plan
        return plan

    def _completion_key(
        self, complete: Complete, reads: list[FieldRead], details: tuple[FieldDetailsList, ...]
    ) -> tuple[Any, ...] | None:
        """A plan's completion key (see `_Plan.completion_key`)."""
        object_keys: list[tuple[Any, ...]] = []
        for read, field_details in zip(reads, details, strict=True):
            if read.kind == "execute":
                return None
            if read.kind == "object":
                assert read.object_type is not None
                key = self._subfields_plan(read.object_type, field_details).completion_key
                if key is None:
                    return None
                object_keys.append(key)
        return (complete, *object_keys)


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
            and set(map(type, value)) <= {str}  # every item a str, tested in C
        ):
            taken[name] = (definition, value)
    if not taken:
        return {}, raw
    # An empty list stands in for each taken one (a non-null variable must be given).
    return taken, {name: [] if name in taken else value for name, value in raw.items()}
