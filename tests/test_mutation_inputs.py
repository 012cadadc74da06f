"""Every upsert's input type carries the keys of the changeset record of its kind, minus the
parent the mutation's argument gives, plus `sentera_id` (and `file_key` where bytes attach)."""

from __future__ import annotations

from graphql import GraphQLInputObjectType

from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.model import kinds as k
from fieldsync.write.mutations import SCOPES


def test_input_types_carry_the_changeset_keys_of_their_kind() -> None:
    schema = build_fieldsync_schema()
    mutation = schema.mutation_type
    assert mutation is not None
    for scope in SCOPES.values():
        kind = scope.kind
        field = mutation.fields[f"upsert_{kind.changeset_key}"]
        items = field.args[kind.changeset_key].type
        input_type = getattr(getattr(items, "of_type", None), "of_type", None)
        input_type = getattr(input_type, "of_type", input_type)
        assert isinstance(input_type, GraphQLInputObjectType), kind.name
        expected = {a.key for a in kind.given_attributes} - set(scope.parent_keys)
        expected |= {"sentera_id"} | ({"file_key"} if kind in (k.IMAGE, k.FILE) else set())
        assert set(input_type.fields) == expected, kind.name
