"""Resolvers of the upsert and delete mutations: GraphQL arguments in, `write.mutations` out.

The executor runs a mutation in one write transaction; each mutation field runs in a savepoint
of it, so a field that fails unexpectedly leaves nothing half-written while the fields before
it keep what they wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fieldsync.api.context import RequestContext
from fieldsync.ids import TypeCode
from fieldsync.model import kinds as k
from fieldsync.model.kinds import EntityKind
from fieldsync.write.mutations import MutationOutcome, Parent, delete_items, upsert_items

Resolver = Callable[..., Any]

# The argument naming each kind's parent, and the parent's type.
_PARENT_ARGUMENTS: dict[str, tuple[str, TypeCode | None]] = {
    k.FIELD.name: ("organization_sentera_id", TypeCode.ORGANIZATION),
    k.SURVEY.name: ("field_sentera_id", TypeCode.FIELD),
    k.IMAGE.name: ("survey_sentera_id", TypeCode.SURVEY),
    k.MOSAIC.name: ("survey_sentera_id", TypeCode.SURVEY),
    k.COG.name: ("mosaic_sentera_id", TypeCode.MOSAIC),
    k.FILE.name: ("owner", None),
    k.FEATURE_SET.name: ("owner", None),
    k.FLIGHT_TASK.name: ("organization_sentera_id", TypeCode.ORGANIZATION),
}


def _parent(kind: EntityKind, arguments: Mapping[str, Any]) -> Parent:
    name, code = _PARENT_ARGUMENTS[kind.name]
    value = arguments[name]
    if code is None:
        return Parent.owner(value["owner_type"], value["sentera_id"])
    return Parent(code, value)


def _result(context: RequestContext, outcome: MutationOutcome) -> dict[str, Any]:
    context.prime_references(outcome.succeeded)
    return {
        "succeeded": outcome.succeeded,
        "failed": [
            {
                "index": error.index,
                "item": error.item,
                "attributes": [asdict(attribute) for attribute in error.attributes],
            }
            for error in outcome.failed
        ],
    }


def _upsert(kind: EntityKind) -> Resolver:
    def resolve(_source: Any, info: Any, **arguments: Any) -> dict[str, Any]:
        context: RequestContext = info.context
        items: Sequence[Mapping[str, Any]] = arguments[kind.changeset_key]
        with context.conn.begin_nested():
            outcome = upsert_items(
                context.conn,
                context.write_access,
                kind,
                _parent(kind, arguments),
                items,
                context.now,
                context.attach_bytes,
            )
        return _result(context, outcome)

    return resolve


def _delete(kind: EntityKind) -> Resolver:
    def resolve(_source: Any, info: Any, sentera_ids: list[str], **arguments: Any) -> Any:
        context: RequestContext = info.context
        with context.conn.begin_nested():
            outcome = delete_items(
                context.conn,
                context.write_access,
                kind,
                _parent(kind, arguments),
                sentera_ids,
                context.now,
            )
        return _result(context, outcome)

    return resolve


MUTATION_RESOLVERS: dict[str, Resolver] = {
    f"{verb}_{kind.changeset_key}": make(kind)
    for kind in (
        k.FIELD,
        k.SURVEY,
        k.IMAGE,
        k.MOSAIC,
        k.COG,
        k.FILE,
        k.FEATURE_SET,
        k.FLIGHT_TASK,
    )
    for verb, make in (("upsert", _upsert), ("delete", _delete))
}
