"""The upsert and delete mutations as plain functions: one scope, a list of items, one outcome.

They validate and write through the same planner and writer as changesets (`write.plan`,
`write.writer`), with the caller's `WriteAccess`. Unlike a changeset, a call keeps its valid
items when others fail: every item is checked, the failing ones are reported by their index in
the input list, and the rest are written together in the caller's transaction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping

from fieldsync.errors import (
    FieldSyncError,
    ForbiddenError,
    NoBlobStoreError,
    NotFoundError,
    TooManyItemsError,
)
from fieldsync.ids import TypeCode, type_code_of
from fieldsync.model import kinds as k
from fieldsync.model.kinds import OWNER_CODES, EntityKind
from fieldsync.storage.rows import rows_by_sentera_id
from fieldsync.sync.engine import load_representations
from fieldsync.write.access import WriteAccess
from fieldsync.write.plan import ChangesetIssue, Plan, PlannedRecord, Planner
from fieldsync.write.values import InvalidValue, check_sentera_id
from fieldsync.write.writer import write_plan

MAX_DELETES = 1000


@dataclass(frozen=True, slots=True)
class Parent:
    """The scope a mutation writes into: its argument, e.g. a survey, or a file's owner."""

    code: TypeCode
    sentera_id: str
    owner_type: str | None = None
    """For files and feature sets: the owner type given (SURVEY, MOSAIC, …)."""

    @classmethod
    def owner(cls, owner_type: str, sentera_id: str) -> Parent:
        return cls(OWNER_CODES[owner_type], sentera_id, owner_type)


@dataclass(frozen=True, slots=True)
class MutationScope:
    """How a mutation of one kind names its parent, and how many items one call may carry."""

    kind: EntityKind
    parent_keys: tuple[str, ...]
    """The record keys the parent fills in: one reference, or owner type and owner."""
    max_items: int

    def parent_values(self, parent: Parent) -> dict[str, str]:
        if parent.owner_type is not None:
            return {"owner_type": parent.owner_type, "owner_sentera_id": parent.sentera_id}
        return {self.parent_keys[0]: parent.sentera_id}


SCOPES: dict[str, MutationScope] = {
    scope.kind.name: scope
    for scope in (
        MutationScope(k.FIELD, ("organization_sentera_id",), 1000),
        MutationScope(k.SURVEY, ("field_sentera_id",), 1000),
        MutationScope(k.IMAGE, ("survey_sentera_id",), 1000),
        MutationScope(k.MOSAIC, ("survey_sentera_id",), 2000),
        MutationScope(k.COG, ("mosaic_sentera_id",), 1000),
        MutationScope(k.FILE, ("owner_type", "owner_sentera_id"), 1000),
        MutationScope(k.FEATURE_SET, ("owner_type", "owner_sentera_id"), 1000),
        MutationScope(k.FLIGHT_TASK, ("organization_sentera_id",), 2000),
    )
}


@dataclass(frozen=True, slots=True)
class AttributeIssue:
    attribute: str
    key: str
    message: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why the item at `index` of the input list was not written."""

    index: int
    item: Any
    attributes: list[AttributeIssue]


@dataclass(slots=True)
class MutationOutcome:
    succeeded: list[dict[str, Any]]
    """Representations of the items written (or deleted), in input order."""
    failed: list[ItemError]


class StoredBytes(Protocol):
    """Uploaded bytes an item may attach by `file_key` (see fieldsync.blobs)."""

    @property
    def blob_key(self) -> str: ...
    @property
    def checksum(self) -> str: ...
    @property
    def byte_size(self) -> int: ...
    @property
    def content_type(self) -> str | None: ...


AttachBytes = Callable[[str], StoredBytes]
"""Looks up (and claims) the upload behind a `file_key`; raises FieldSyncError when unusable."""


def check_parent(access: WriteAccess, parent: Parent) -> None:
    """The scope must be readable (else it does not exist) and writable (else FORBIDDEN)."""
    what = (parent.owner_type or parent.code.name).lower().replace("_", " ")
    if type_code_of(parent.sentera_id) is not parent.code or not access.may_read(parent.sentera_id):
        raise NotFoundError(f"{what} {parent.sentera_id!r} not found")
    if not access.may_write(parent.sentera_id):
        raise ForbiddenError(
            f"you may read {what} {parent.sentera_id!r} but not write to it: your role in its "
            "organization is viewer (an editor or admin may write)"
        )


def _check_count(name: str, count: int, limit: int, noun: str) -> None:
    if count > limit:
        raise TooManyItemsError(
            f"{name} takes at most {limit:,} {noun} a call; got {count:,}: split the list "
            "into several calls"
        )


def upsert_items(
    conn: Connection,
    access: WriteAccess,
    kind: EntityKind,
    parent: Parent,
    items: Sequence[Mapping[str, Any]],
    now: datetime,
    attach: AttachBytes | None = None,
) -> MutationOutcome:
    """Create or update `items` below `parent`; see the module docstring."""
    scope = SCOPES[kind.name]
    _check_count(f"upsert_{kind.changeset_key}", len(items), scope.max_items, kind.changeset_key)
    check_parent(access, parent)
    records = [dict(item) | scope.parent_values(parent) for item in items]
    file_keys = {i: r.pop("file_key") for i, r in enumerate(records) if "file_key" in r}
    failed: dict[int, list[AttributeIssue]] = defaultdict(list)
    while True:
        # Each round plans the items not failed yet; a round that finds no new fault writes.
        valid = [i for i in range(len(records)) if i not in failed]
        planner = Planner(conn, _document(access, kind, [records[i] for i in valid]), access)
        plan = planner.check()
        for position, issues in _issues_by_position(kind, planner.issues).items():
            failed[valid[position]].extend(issues)
        if planner.issues:
            continue
        sentera_ids = {i: planner.record_ids[id(records[i])] for i in valid}
        if _attach_bytes(plan, sentera_ids, file_keys, attach, failed):
            break
    write_plan(conn, plan, now)
    written = [sid for sid in sentera_ids.values() if sid is not None]
    return MutationOutcome(_representations(conn, kind, written), _item_errors(items, failed))


def _attach_bytes(
    plan: Plan,
    sentera_ids: Mapping[int, str | None],
    file_keys: Mapping[int, Any],
    attach: AttachBytes | None,
    failed: dict[int, list[AttributeIssue]],
) -> bool:
    """Give each item with a `file_key` the uploaded bytes' key, checksum and size.

    Returns whether every one could be given them (else `failed` says why not).
    """
    attached = True
    planned = {record.sentera_id: record for record in plan.records}
    for index, file_key in file_keys.items():
        if index not in sentera_ids:  # failed already
            continue
        record = planned.get(sentera_ids[index] or "")
        if record is None or file_key is None:
            continue
        try:
            if attach is None:
                raise NoBlobStoreError
            stored = attach(file_key)
        except FieldSyncError as exc:
            failed[index].append(AttributeIssue("file_key", exc.code.lower(), str(exc)))
            attached = False
            continue
        given_size = record.values.get("size")
        if "size" in record.present and given_size not in (None, stored.byte_size):
            failed[index].append(
                AttributeIssue(
                    "size",
                    "mismatch",
                    f"size {given_size} does not match the uploaded bytes ({stored.byte_size})",
                    {"count": stored.byte_size},
                )
            )
            attached = False
            continue
        give_bytes(record, stored)
    return attached


def give_bytes(record: PlannedRecord, stored: StoredBytes) -> None:
    """Record stored bytes (key, checksum, type, size) on a planned image or file."""
    record.values.update(
        blob_key=stored.blob_key,
        checksum=stored.checksum,
        content_type=stored.content_type,
        size=stored.byte_size,
    )


def _document(access: WriteAccess, kind: EntityKind, records: list[dict[str, Any]]) -> Any:
    return {"actor_sentera_id": access.user_sentera_id, "upsert": {kind.changeset_key: records}}


_POSITION = re.compile(r"\Aupsert\.\w+\[(\d+)\](?:\.(.+))?\Z")


def _issues_by_position(
    kind: EntityKind, issues: Sequence[ChangesetIssue]
) -> dict[int, list[AttributeIssue]]:
    """The planner's issues by the position of the record they are about."""
    found: dict[int, list[AttributeIssue]] = defaultdict(list)
    for issue in issues:
        match = _POSITION.match(issue.path)
        if match is None:  # pragma: no cover - every record issue has a record path
            raise AssertionError(f"an issue outside the {kind.changeset_key}: {issue}")
        attribute = match.group(2) or issue.attribute or "base"
        found[int(match.group(1))].append(
            AttributeIssue(attribute, issue.key, issue.message, issue.details)
        )
    return found


def _item_errors(
    items: Sequence[Any], failed: Mapping[int, list[AttributeIssue]]
) -> list[ItemError]:
    return [ItemError(i, items[i], failed[i]) for i in sorted(failed)]


def _representations(
    conn: Connection, kind: EntityKind, sentera_ids: list[str]
) -> list[dict[str, Any]]:
    found = load_representations(conn, kind, sentera_ids, by="sentera_id")
    return [found[sentera_id] for sentera_id in sentera_ids]


def delete_items(
    conn: Connection,
    access: WriteAccess,
    kind: EntityKind,
    parent: Parent,
    sentera_ids: Sequence[str],
    now: datetime,
) -> MutationOutcome:
    """Delete items of `parent`, with the cascade of a changeset delete.

    An id not in the scope is reported and not deleted. Deleting an item of the scope that is
    deleted already succeeds again (a retried call changes nothing).
    """
    _check_count(f"delete_{kind.changeset_key}", len(sentera_ids), MAX_DELETES, "ids")
    check_parent(access, parent)
    rows = rows_by_sentera_id(conn, kind.table, sentera_ids)
    parent_row = rows_by_sentera_id(conn, k.KIND_BY_CODE[parent.code].table, [parent.sentera_id])
    parent_id = parent_row[parent.sentera_id]["id"]
    failed: dict[int, list[AttributeIssue]] = {}
    doomed: dict[str, str] = {}  # sentera_id -> the path it was given at
    deleted: list[str] = []
    for index, value in enumerate(sentera_ids):
        try:
            sentera_id = check_sentera_id(value, (kind.code.value,))
        except InvalidValue as exc:
            failed[index] = [AttributeIssue("sentera_id", exc.key, str(exc))]
            continue
        row = rows.get(sentera_id)
        if row is None or not _in_scope(kind, row, parent, parent_id):
            failed[index] = [_not_in_scope(kind, sentera_id, parent)]
            continue
        if row["deleted_at"] is None:
            doomed.setdefault(sentera_id, f"sentera_ids[{index}]")
        deleted.append(sentera_id)
    if doomed:
        deletes = [(path, sentera_id) for sentera_id, path in doomed.items()]
        write_plan(conn, Plan(access.user_sentera_id, [], deletes), now)
    return MutationOutcome(_representations(conn, kind, deleted), _item_errors(sentera_ids, failed))


def _in_scope(kind: EntityKind, row: RowMapping, parent: Parent, parent_id: int) -> bool:
    """Whether the item (live or its tombstone) is directly below `parent`."""
    if parent.owner_type is not None:
        return bool(row["scope_type"] == parent.owner_type and row["scope_id"] == parent_id)
    attribute = kind.attribute(SCOPES[kind.name].parent_keys[0])
    assert attribute is not None
    return bool(row[attribute.target] == parent_id)


def _not_in_scope(kind: EntityKind, sentera_id: str, parent: Parent) -> AttributeIssue:
    what = (parent.owner_type or parent.code.name).lower().replace("_", " ")
    return AttributeIssue(
        "sentera_id",
        "not_found",
        f"{kind.name.replace('_', ' ')} {sentera_id!r} does not exist in {what} "
        f"{parent.sentera_id!r}",
        {"sentera_id": sentera_id},
    )
