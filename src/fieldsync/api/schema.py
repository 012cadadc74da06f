"""The executable schema: the checked-in SDL (`schema.graphql`) with resolvers bound to it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema, build_schema

from fieldsync.api.resolvers import REFERENCE_FIELDS, RESOLVERS, resolve_reference

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")


def schema_sdl() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


@cache
def build_fieldsync_schema() -> GraphQLSchema:
    schema = build_schema(schema_sdl())
    sync_item = schema.get_type("SyncItem")
    assert isinstance(sync_item, GraphQLInterfaceType)
    for type_name, fields in RESOLVERS.items():
        graphql_type = schema.get_type(type_name)
        assert isinstance(graphql_type, GraphQLObjectType), type_name
        for field_name, resolver in fields.items():
            graphql_type.fields[field_name].resolve = resolver
    for item_type in schema.get_implementations(sync_item).objects:
        names = ("created_by", "updated_by", *REFERENCE_FIELDS.get(item_type.name, ()))
        for field_name in names:
            item_type.fields[field_name].resolve = resolve_reference
    return schema
