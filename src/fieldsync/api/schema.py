"""The executable schema: the checked-in SDL (`schema.graphql`) with resolvers bound to it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    StringValueNode,
    ValueNode,
    build_schema,
)

from fieldsync.api.mutations import MUTATION_RESOLVERS
from fieldsync.api.resolvers import (
    REFERENCE_FIELDS,
    RESOLVERS,
    resolve_action,
    resolve_reference,
)
from fieldsync.api.tile_access import resolve_map_url
from fieldsync.api.uploads import UPLOAD_RESOLVERS, resolve_url

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")


def schema_sdl() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


@cache
def build_fieldsync_schema() -> GraphQLSchema:
    schema = build_schema(schema_sdl())
    sync_item = schema.get_type("SyncItem")
    assert isinstance(sync_item, GraphQLInterfaceType)
    mutations = MUTATION_RESOLVERS | UPLOAD_RESOLVERS
    urls = {
        "Image": {"url": resolve_url},
        "File": {"url": resolve_url},
        "Survey": {"map_url": resolve_map_url},
    }
    for fields_by_type in (RESOLVERS, urls, {"Mutation": mutations}):
        for type_name, fields in fields_by_type.items():
            graphql_type = schema.get_type(type_name)
            assert isinstance(graphql_type, GraphQLObjectType), type_name
            for field_name, resolver in fields.items():
                graphql_type.fields[field_name].resolve = resolver
    for item_type in schema.get_implementations(sync_item).objects:
        names = ("created_by", "updated_by", *REFERENCE_FIELDS.get(item_type.name, ()))
        for field_name in names:
            item_type.fields[field_name].resolve = resolve_reference
        item_type.fields["action"].resolve = resolve_action
    membership = schema.get_type("Membership")
    assert isinstance(membership, GraphQLObjectType)
    for field_name in ("user", "organization"):
        membership.fields[field_name].resolve = resolve_reference
    _bind_big_int(schema)
    return schema


def _big_int(value: Any) -> int:
    """An integer, or its decimal digits as a string (sizes over 2 GB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise GraphQLError(f"BigInt cannot represent {value!r}: give a whole number or its digits")


def _big_int_literal(node: ValueNode, _variables: Any = None) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return _big_int(int(node.value) if isinstance(node, IntValueNode) else node.value)
    raise GraphQLError("BigInt takes a whole number or a string of its digits")


def _bind_big_int(schema: GraphQLSchema) -> None:
    scalar = schema.get_type("BigInt")
    assert isinstance(scalar, GraphQLScalarType)
    scalar.parse_value = scalar.coerce_input_value = _big_int  # type: ignore[method-assign]
    scalar.parse_literal = _big_int_literal  # type: ignore[method-assign,assignment]
    scalar.serialize = scalar.coerce_output_value = _big_int  # type: ignore[method-assign]
