"""The served GraphQL schema: the checked-in SDL, the documented arguments and return fields,
and enumerations that match the Python ones."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLSchema,
    build_client_schema,
    build_schema,
    get_introspection_query,
    print_ast,
    print_schema,
    print_type,
)

from fieldsync.api.schema import SCHEMA_PATH, build_fieldsync_schema
from fieldsync.model import enums
from fieldsync.tokens import create_token
from tests.builder import build_world
from tests.conftest import ServerClient

SYNC_RESULT_FIELDS = {
    "deleted": "[SyncItem!]!",
    "failed": "[SyncError!]",
    "remaining_count": "Int!",
    "upserted": "[SyncItem!]!",
}

# query -> argument -> type, as the source documents (and sync-semantics.md §4) give them.
SYNC_ARGUMENTS = {
    "sync_cogs": {"content_hashes": "[String!]!", "survey_sentera_id": "ID!"},
    "sync_mosaics": {"content_hashes": "[String!]!", "survey_sentera_id": "ID!"},
    "sync_images": {"content_hashes": "[String!]!", "survey_sentera_id": "ID!"},
    "sync_files": {"content_hashes": "[String!]!", "owners": "[FileOwnerInput!]!"},
    "sync_flight_tasks": {
        "content_hashes": "[String!]!",
        "include_descendant_organizations": "Boolean",
        "organization_sentera_id": "ID!",
    },
    "sync_fields": {
        "content_hashes": "[String!]!",
        "include_descendant_organizations": "Boolean",
        "organization_sentera_id": "ID!",
    },
    "sync_surveys": {"content_hashes": "[String!]!", "field_sentera_id": "ID!"},
}

ENUMS = {
    "CogStatus": enums.COG_STATUS,
    "MosaicType": enums.MOSAIC_TYPE,
    "MosaicQuality": enums.MOSAIC_QUALITY,
    "MosaicImageStatus": enums.MOSAIC_IMAGE_STATUS,
    "AreaUnitType": enums.AREA_UNIT,
    "FileOwnerType": enums.FILE_OWNER_TYPE,
    "TaskStatus": enums.TASK_STATUS,
    "FeatureSetType": enums.FEATURE_SET_TYPE,
    "FeatureSetStatus": enums.FEATURE_SET_STATUS,
    "FeatureSetOwnerType": enums.FEATURE_SET_OWNER_TYPE,
    "UpsertActionType": ("CREATE", "UPDATE"),
    "FileType": enums.FILE_TYPE,
    "MembershipRole": enums.ROLES,
}

SYNC_ITEM_TYPES = {"Cog", "Mosaic", "Image", "File", "FlightTask", "Field", "Survey", "FeatureSet"}


@pytest.fixture(scope="module")
def checked_in() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def test_checked_in_sdl_is_in_canonical_printed_form(checked_in: str) -> None:
    assert print_schema(build_schema(checked_in)) == checked_in.strip()


def _args(schema: GraphQLSchema, query: str) -> dict[str, str]:
    query_type = schema.query_type
    assert query_type is not None
    return {name: str(arg.type) for name, arg in query_type.fields[query].args.items()}


@pytest.fixture(scope="module")
def schema(checked_in: str) -> GraphQLSchema:
    return build_schema(checked_in)


@pytest.mark.parametrize("query", list(SYNC_ARGUMENTS))
def test_sync_query_arguments_and_return_fields(schema: GraphQLSchema, query: str) -> None:
    assert _args(schema, query) == SYNC_ARGUMENTS[query]
    query_type = schema.query_type
    assert query_type is not None
    result_type = query_type.fields[query].type
    fields = {name: str(f.type) for name, f in result_type.fields.items()}
    assert fields == SYNC_RESULT_FIELDS
    if "include_descendant_organizations" in SYNC_ARGUMENTS[query]:
        argument = query_type.fields[query].args["include_descendant_organizations"]
        assert argument.ast_node is not None and argument.ast_node.default_value is not None
        assert print_ast(argument.ast_node.default_value) == "false"


def test_served_schema(engine, app_server: ServerClient, checked_in: str) -> None:
    """What a client sees through introspection over HTTP: the checked-in SDL, and the
    documented arguments and return fields of every sync query."""
    world = build_world(engine)
    token = create_token(engine, world.user)
    response = app_server.post(get_introspection_query(descriptions=True), token=token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    served = build_client_schema(body["data"])
    assert print_schema(served) == print_schema(build_schema(checked_in))
    # The executable schema is that same file.
    assert print_schema(build_fieldsync_schema()) == print_schema(build_schema(checked_in))

    query = """
    {
      __schema { queryType { fields { name args { name defaultValue type { ...T } }
        type { name fields { name type { ...T } } } } } }
    }
    fragment T on __Type {
      kind name ofType { kind name ofType { kind name ofType { kind name } } }
    }
    """
    response = app_server.post(query, token=token)
    assert response.status_code == 200, response.text
    fields = {f["name"]: f for f in response.json()["data"]["__schema"]["queryType"]["fields"]}

    def type_text(node: dict[str, Any]) -> str:
        if node["kind"] == "NON_NULL":
            return type_text(node["ofType"]) + "!"
        if node["kind"] == "LIST":
            return "[" + type_text(node["ofType"]) + "]"
        name: str = node["name"]
        return name

    for query_name, arguments in SYNC_ARGUMENTS.items():
        field = fields[query_name]
        assert {a["name"]: type_text(a["type"]) for a in field["args"]} == arguments
        returned = {f["name"]: type_text(f["type"]) for f in field["type"]["fields"]}
        assert returned == SYNC_RESULT_FIELDS, query_name
        for argument in field["args"]:
            if argument["name"] == "include_descendant_organizations":
                assert argument["defaultValue"] == "false"
            else:
                assert argument["defaultValue"] is None


def test_shared_types(schema: GraphQLSchema) -> None:
    assert print_type(schema.get_type("SyncError")) == (  # type: ignore[arg-type]
        "type SyncError {\n  key: String!\n  message: String!\n  code: String\n"
        "  reason: String\n  details: JSON\n}"
    )
    assert print_type(schema.get_type("FileOwnerInput")) == (  # type: ignore[arg-type]
        "input FileOwnerInput {\n  owner_type: FileOwnerType!\n  sentera_id: ID!\n}"
    )
    sync_item = schema.get_type("SyncItem")
    interface_fields = {
        "sentera_id": "ID!",
        "content_hash": "String!",
        "created_at": "ISO8601DateTime!",
        "created_by": "User!",
        "updated_at": "ISO8601DateTime!",
        "updated_by": "User",
        # Not in the wider API's interface, but on all its types: selectable on every item.
        "action": "UpsertActionType!",
    }
    assert {n: str(f.type) for n, f in sync_item.fields.items()} == interface_fields  # type: ignore[union-attr]
    implementations = schema.get_implementations(sync_item)  # type: ignore[arg-type]
    assert {t.name for t in implementations.objects} == SYNC_ITEM_TYPES

    # The fields the five examples select exist with the documented types.
    expected = {
        "Cog": {"status": "CogStatus!", "clipped": "Boolean!", "error": "String"},
        "Mosaic": {
            "area": "Area",
            "captured_at": "ISO8601DateTime",
            "image_status": "MosaicImageStatus!",
            "is_from_sentera_sensor": "Boolean!",
            "message": "String",
            "mosaic_type": "MosaicType!",
            "name": "String",
            "quality": "MosaicQuality!",
            "released": "Boolean!",
            "survey": "Survey",
        },
        "Image": {"latitude": "Float", "longitude": "Float", "filename": "String!"},
        "File": {
            "action": "UpsertActionType!",
            "download_filename": "String!",
            "filename": "String!",
            "file_owner": "FileOwner!",
            "size": "String",
            "url": "String",
        },
        "FlightTask": {"status": "TaskStatus!"},
        "Area": {"value": "Float!", "unit": "AreaUnitType!"},
        "FileOwner": {"owner_type": "FileOwnerType!", "sentera_id": "ID!"},
        "User": {"sentera_id": "ID!", "last_name": "String"},
    }
    for type_name, field_types in expected.items():
        graphql_type = schema.get_type(type_name)
        for field_name, field_type in field_types.items():
            assert str(graphql_type.fields[field_name].type) == field_type, (  # type: ignore[union-attr]
                type_name,
                field_name,
            )
    mosaic = schema.get_type("Mosaic")
    assert "total_count" in mosaic.fields["images"].type.of_type.fields  # type: ignore[union-attr]
    cog = schema.get_type("Cog")
    assert str(cog.fields["max_zoom"].type) == "Int"  # type: ignore[union-attr]
    # References are nullable: an object moved to another tenant is not shown.
    assert str(cog.fields["mosaic"].type) == "Mosaic"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(ENUMS))
def test_enums_match_python(schema: GraphQLSchema, name: str) -> None:
    graphql_enum = schema.get_type(name)
    assert isinstance(graphql_enum, GraphQLEnumType)
    assert tuple(graphql_enum.values) == ENUMS[name]


def test_every_enum_is_checked(schema: GraphQLSchema) -> None:
    declared = {
        t.name
        for t in schema.type_map.values()
        if isinstance(t, GraphQLEnumType) and not t.name.startswith("__")
    }
    assert declared == set(ENUMS)
