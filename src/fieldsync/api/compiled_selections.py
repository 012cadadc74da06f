"""Selection sets compiled into Python functions, for the fast execution path.

`compile_selection(parent_type, fields)` turns one collected selection set of an object type
(its response names, each with the field's name and how its value is read: `FieldRead`) into
a function `complete(executor, source, path, details) -> dict` written out for that set: one
`dict.get` and one type test per plain field, in the set's order, with no per-field calls.
Whatever the generated code does not take as is — a null in a non-null field, a value the
field's type would coerce or refuse, a field a resolver must compute — it hands to
`executor.run_field`, which executes that one field with graphql-core.

The generated source is small and regular; `describe_selection` returns it for reading. The
functions are cached by the set's shape (type, response names, field names, reads), which a
document's every request shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

from graphql import GraphQLObjectType, GraphQLOutputType

Complete = Callable[[Any, dict[str, Any], Any, Sequence[Any]], dict[str, Any]]
Getter = Callable[[dict[str, Any]], Any]

_BUILTIN_TESTS = {
    "String": "type(value) is str",
    "ID": "type(value) is str",
    "Int": "type(value) is int and -2147483648 <= value <= 2147483647",
    "Float": "type(value) is float and isfinite(value)",
    "Boolean": "type(value) is bool",
}
"""For each built-in scalar, the test of a value its output coercion returns unchanged."""
_CACHE_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class FieldRead:
    """How one collected field is completed by the generated code."""

    response_name: str
    kind: str
    """"typename", "leaf", "object", or "execute" (graphql-core runs the field)."""
    field_name: str = ""
    """The field's name (for "typename": the parent type's name, which is the value)."""
    nullable: bool = True
    get: Getter | None = None
    """A function of the source giving the value (None: `source.get(field_name)`)."""
    leaf_test: str | None = None
    """For a built-in scalar leaf, the generated test (see _BUILTIN_TESTS)."""
    coerce: Callable[[Any], Any] | None = None
    """For another leaf (an enum, a custom scalar): its coercion, AS_IS if it refuses."""
    object_type: GraphQLObjectType | None = None
    field_type: GraphQLOutputType | None = None

    def shape(self) -> tuple[Any, ...]:
        """What the generated code depends on (functions by identity)."""
        return (
            self.response_name,
            self.kind,
            self.field_name,
            self.nullable,
            self.get,
            self.leaf_test,
            self.coerce,
            self.object_type,
            self.field_type,
        )


def builtin_test(type_name: str) -> str | None:
    return _BUILTIN_TESTS.get(type_name)


class _Writer:
    def __init__(self, parent_type: GraphQLObjectType, as_is: object) -> None:
        self.lines = ["def complete(executor, source, path, details):", "    results = {}"]
        self.names: dict[str, Any] = {
            "AS_IS": as_is,
            "isfinite": math.isfinite,
            "PARENT": parent_type,
        }

    def bind(self, name: str, value: Any) -> str:
        self.names[name] = value
        return name

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def field(self, index: int, read: FieldRead) -> None:
        key = repr(read.response_name)
        run = f"executor.run_field(PARENT, source, details[{index}], path, {key}, results)"
        if read.kind == "typename":
            self.emit(f"    results[{key}] = {self.bind(f'TYPENAME_{index}', read.field_name)}")
            return
        if read.kind == "execute":
            self.emit(f"    {run}")
            return
        if read.get is None:
            self.emit(f"    value = source.get({read.field_name!r})")
        else:
            self.emit(f"    value = {self.bind(f'get_{index}', read.get)}(source)")
        on_null = f"results[{key}] = None" if read.nullable else run
        if read.kind == "object":
            object_type = self.bind(f"OBJECT_{index}", read.object_type)
            field_type = self.bind(f"TYPE_{index}", read.field_type)
            self.emit(
                "    if type(value) is dict:",
                f"        results[{key}] = executor.complete_object({object_type}, "
                f"{field_type}, details[{index}], value, path, {key}, PARENT)",
                "    elif value is None:",
                f"        {on_null}",
                "    else:",
                f"        {run}",
            )
        elif read.leaf_test is not None:
            self.emit(
                f"    if {read.leaf_test}:",
                f"        results[{key}] = value",
                "    elif value is None:",
                f"        {on_null}",
                "    else:",
                f"        {run}",
            )
        else:
            coerce = self.bind(f"coerce_{index}", read.coerce)
            self.emit(
                "    if value is None:",
                f"        {on_null}",
                f"    elif (value := {coerce}(value)) is AS_IS:",
                f"        {run}",
                "    else:",
                f"        results[{key}] = value",
            )

    def source(self) -> str:
        return "\n".join([*self.lines, "    return results", ""])


def describe_selection(
    parent_type: GraphQLObjectType, reads: Sequence[FieldRead], as_is: object
) -> tuple[str, dict[str, Any]]:
    """The generated source of a selection set, and the names it refers to."""
    writer = _Writer(parent_type, as_is)
    for index, read in enumerate(reads):
        writer.field(index, read)
    return writer.source(), writer.names


_compiled: dict[tuple[Any, ...], Complete] = {}
_compiled_lock = Lock()


def compile_selection(
    parent_type: GraphQLObjectType, reads: Sequence[FieldRead], as_is: object
) -> Complete:
    """The function completing a selection set on a dict source (cached by shape)."""
    key = (parent_type, as_is, *(read.shape() for read in reads))
    found = _compiled.get(key)
    if found is not None:
        return found
    source, names = describe_selection(parent_type, reads, as_is)
    exec(compile(source, f"<selection of {parent_type.name}>", "exec"), names)
    complete: Complete = names["complete"]
    with _compiled_lock:
        if len(_compiled) >= _CACHE_ENTRIES:
            _compiled.clear()
        _compiled[key] = complete
    return complete
