"""Turning a sync query's arguments into a `Scope` the caller may read.

A scope that does not exist and one the caller may not read raise the same NotFoundError
(for `sync_files` and `sync_feature_sets`, yield the same `invalid_object` failure), so
nothing leaks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from fieldsync.errors import NotFoundError
from fieldsync.ids import TypeCode, type_code_of
from fieldsync.model.kinds import OWNER_CODES, EntityKind
from fieldsync.storage.locate import SCOPE_OWNED_TYPES, live_objects, live_owned, lookup_tables
from fieldsync.storage.organization_tree import descendant_ids
from fieldsync.storage.representation_rows import owner_sentera_ids
from fieldsync.storage.sql import chunks
from fieldsync.storage.sync_revisions import revisions_read_at_begin
from fieldsync.sync.engine import Scope, SyncError
from fieldsync.sync.revision_cache import RevisionCache


@dataclass(frozen=True, slots=True)
class Located:
    """A live object: its internal id and the organization it belongs to."""

    id: int
    organization_id: int


def locate_many(
    conn: Connection, code: TypeCode, sentera_ids: Collection[str]
) -> dict[str, Located]:
    """Live objects by sentera_id, each with the organization it hangs below.

    Any number of ids: they are looked up in chunks within every backend's parameter limit.
    In a snapshot that read the revisions of the tables a lookup reads at its BEGIN, objects
    found before at the same revisions are taken from `LOCATED` rather than looked up again.
    """
    wanted = sorted(set(sentera_ids))
    found: dict[str, Located] = {}
    if code in SCOPE_OWNED_TYPES:
        for part in chunks(wanted):
            found.update(_locate_owned(conn, code, part))
        return found
    tables = lookup_tables(code)
    if tables is None:
        return {}
    revisions = revisions_read_at_begin(conn, tables)
    if revisions is not None:
        found = {sid: hit for sid in wanted if (hit := LOCATED.get((code, sid), revisions))}
        wanted = [sid for sid in wanted if sid not in found]
    for part in chunks(wanted):
        for sentera_id, item_id, org in live_objects(conn, code, part):
            found[sentera_id] = Located(item_id, org)
            if revisions is not None:
                LOCATED.put((code, sentera_id), revisions, found[sentera_id])
    return found


# About 250 bytes an entry: some 5 MB at most.
DEFAULT_MAX_LOCATED = 20_000
LocatedCache = RevisionCache[tuple[TypeCode, str], Located]
LOCATED = LocatedCache(DEFAULT_MAX_LOCATED)
"""Objects found by `locate_many`, by type and sentera_id, stamped with the revisions of the
tables their lookup read."""


def _locate_owned(conn: Connection, code: TypeCode, wanted: Sequence[str]) -> dict[str, Located]:
    """A feature set or file hangs below its owner (a survey, a field, a mosaic…)."""
    rows = live_owned(conn, code, wanted)
    owners = owner_sentera_ids(conn, ((row.scope_type, row.scope_id) for row in rows))
    found: dict[str, Located] = {}
    for owner_type in {row.scope_type for row in rows}:
        of_type = [row for row in rows if row.scope_type == owner_type]
        located = locate_many(
            conn, OWNER_CODES[owner_type], [owners[(owner_type, r.scope_id)] for r in of_type]
        )
        for row in of_type:
            owner = located.get(owners[(owner_type, row.scope_id)])
            if owner is not None:
                found[row.sentera_id] = Located(row.id, owner.organization_id)
    return found


def readable_objects(
    conn: Connection, readable: set[int], code: TypeCode, sentera_ids: Collection[str]
) -> dict[str, Located]:
    """The objects among `sentera_ids` (all of type `code`) that the caller may read."""
    candidates = [sid for sid in sentera_ids if type_code_of(sid) is code]
    return {
        sid: found
        for sid, found in locate_many(conn, code, candidates).items()
        if found.organization_id in readable
    }


def readable_object(
    conn: Connection, readable: set[int], code: TypeCode, sentera_id: str
) -> Located | None:
    return readable_objects(conn, readable, code, [sentera_id]).get(sentera_id)


def _not_found(what: str, sentera_id: str) -> NotFoundError:
    return NotFoundError(f"{what} {sentera_id!r} not found")


_PARENT_SCOPES = {TypeCode.SURVEY: "SURVEY", TypeCode.FIELD: "FIELD"}


def parent_scope(
    conn: Connection, readable: set[int], kind: EntityKind, code: TypeCode, sentera_id: str
) -> Scope:
    """The items of `kind` below one survey or field (sync_images, sync_surveys, …)."""
    scope_type = _PARENT_SCOPES[code]
    found = readable_object(conn, readable, code, sentera_id)
    if found is None:
        raise _not_found(scope_type.lower(), sentera_id)
    return Scope(kind, {scope_type: [found.id]})


def organization_scope(
    conn: Connection,
    readable: set[int],
    kind: EntityKind,
    organization_sentera_id: str,
    include_descendants: bool,
) -> Scope:
    found = readable_object(conn, readable, TypeCode.ORGANIZATION, organization_sentera_id)
    if found is None:
        raise _not_found("organization", organization_sentera_id)
    ids = {found.id}
    if include_descendants:
        ids = descendant_ids(conn, ids)
    return Scope(kind, {"ORGANIZATION": sorted(ids)})


def owners_scope(
    conn: Connection, readable: set[int], kind: EntityKind, owners: Sequence[tuple[str, str]]
) -> tuple[Scope, list[SyncError]]:
    """The items of `kind` owned by the valid `owners` (sync_files, sync_feature_sets);
    one `invalid_object` failure per owner that does not exist or is not readable."""
    distinct = list(dict.fromkeys(owners))
    found: dict[tuple[str, str], Located] = {}
    for owner_type in {owner_type for owner_type, _ in distinct}:
        of_type = [sentera_id for kind, sentera_id in distinct if kind == owner_type]
        located = readable_objects(conn, readable, OWNER_CODES[owner_type], of_type)
        found.update(((owner_type, sid), where) for sid, where in located.items())
    keys: dict[str, list[int]] = {}
    failed: list[SyncError] = []
    for owner in distinct:
        if owner not in found:
            owner_type, sentera_id = owner
            failed.append(
                SyncError(
                    key="invalid_object",
                    message="Invalid owner",
                    code="INVALID_OBJECT",
                    details={"owner_type": owner_type, "sentera_id": sentera_id},
                )
            )
            continue
        keys.setdefault(owner[0], []).append(found[owner].id)
    return Scope(kind, keys), failed
