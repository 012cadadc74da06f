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
from fieldsync.processing.imports import MosaicImport, import_mosaic
from fieldsync.sync.engine import load_representations
from fieldsync.write.memberships import (
    Membership,
    MembershipOutcome,
    delete_memberships,
    upsert_memberships,
)
from fieldsync.write.mutations import (
    ItemError,
    MutationOutcome,
    Parent,
    delete_items,
    upsert_items,
)

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
        "failed": _failed(outcome.failed),
    }


def _failed(errors: Sequence[ItemError]) -> list[dict[str, Any]]:
    return [
        {
            "index": error.index,
            "item": error.item,
            "attributes": [asdict(attribute) for attribute in error.attributes],
        }
        for error in errors
    ]


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


def membership_object(membership: Membership) -> dict[str, Any]:
    return {
        "user": {"sentera_id": membership.user_sentera_id},
        "organization": {"sentera_id": membership.organization_sentera_id},
        "role": membership.role,
    }


def _membership_result(outcome: MembershipOutcome) -> dict[str, Any]:
    return {
        "succeeded": [membership_object(m) for m in outcome.succeeded],
        "failed": _failed(outcome.failed),
    }


def resolve_upsert_memberships(
    _source: Any, info: Any, organization_sentera_id: str, memberships: list[dict[str, str]]
) -> dict[str, Any]:
    context: RequestContext = info.context
    with context.conn.begin_nested():
        outcome = upsert_memberships(
            context.conn, context.write_access, organization_sentera_id, memberships
        )
    return _membership_result(outcome)


def resolve_delete_memberships(
    _source: Any, info: Any, organization_sentera_id: str, user_sentera_ids: list[str]
) -> dict[str, Any]:
    context: RequestContext = info.context
    with context.conn.begin_nested():
        outcome = delete_memberships(
            context.conn, context.write_access, organization_sentera_id, user_sentera_ids
        )
    return _membership_result(outcome)


def resolve_import_mosaic(
    _source: Any,
    info: Any,
    survey_sentera_id: str,
    file_keys: list[str],
    mosaic_type: str,
    **optional: Any,
) -> dict[str, Any]:
    context: RequestContext = info.context
    request = MosaicImport(survey_sentera_id, file_keys, mosaic_type, **optional)
    with context.conn.begin_nested():
        imported = import_mosaic(
            context.conn, context.write_access, request, context.now, context.attach_bytes
        )
    by_id = dict(
        load_representations(context.conn, k.MOSAIC, [imported.mosaic_sentera_id], by="sentera_id")
    )
    by_id |= load_representations(context.conn, k.COG, [imported.cog_sentera_id], by="sentera_id")
    by_id |= load_representations(context.conn, k.FILE, imported.file_sentera_ids, by="sentera_id")
    result: dict[str, Any] = {
        "mosaic": by_id[imported.mosaic_sentera_id],
        "cog": by_id[imported.cog_sentera_id],
        "files": [by_id[sentera_id] for sentera_id in imported.file_sentera_ids],
    }
    context.prime_references([result["mosaic"], result["cog"], *result["files"]])
    return result


_MEMBERSHIP_RESOLVERS: dict[str, Resolver] = {
    "upsert_memberships": resolve_upsert_memberships,
    "delete_memberships": resolve_delete_memberships,
    "import_mosaic": resolve_import_mosaic,
}
MUTATION_RESOLVERS: dict[str, Resolver] = _MEMBERSHIP_RESOLVERS | {
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
