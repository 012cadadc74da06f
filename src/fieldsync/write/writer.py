"""Writing a validated plan in the caller's write transaction.

Order: upserts kind by kind (parents first), then deletes with their cascades, then the
representations of every touched sync item are recomputed from the database state
(`model.representation`), so a content hash only ever changes when what a client can read does.
Changesets (`fieldsync load`) and the upsert/delete mutations both write through `write_plan`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table

from fieldsync.ids import type_code_of
from fieldsync.model import kinds as k
from fieldsync.model.enums import DEFAULT_ROLE
from fieldsync.model.kinds import ALL_KINDS, EntityKind, ValueType
from fieldsync.model.representation import refresh_representations
from fieldsync.storage import tables as t
from fieldsync.storage.api_tokens import revoke_tokens_of_users
from fieldsync.storage.cog_jobs import cancel_jobs_of_cogs
from fieldsync.storage.item_writes import (
    clear_column,
    delete_links,
    images_of_mosaic,
    insert_items,
    insert_links,
    live_children,
    live_mosaics_linking,
    live_owned,
    mark_deleted,
    update_items,
)
from fieldsync.storage.memberships import memberships_of_user
from fieldsync.storage.rows import ids_by_sentera_id
from fieldsync.write.plan import ChangesetError, ChangesetIssue, Plan, PlannedRecord

_PLACEHOLDER_HASH = bytes(12)
# The column that places an item below its parent: changing it moves the item.
_PARENT_COLUMNS = {
    k.FIELD.name: "organization_id",
    k.SURVEY.name: "field_id",
    k.IMAGE.name: "survey_id",
    k.MOSAIC.name: "survey_id",
}


@dataclass(slots=True)
class WriteSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def line(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}"
        )


def _kind_of(sentera_id: str) -> EntityKind:
    """The kind of a sentera_id the planner has already checked."""
    code = type_code_of(sentera_id)
    assert code is not None, sentera_id
    return k.KIND_BY_CODE[code]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def write_plan(conn: Connection, plan: Plan, now: datetime) -> WriteSummary:
    """Write a validated plan; raises ChangesetError for what only writing can find out."""
    return _Writer(conn, plan, now).run()


class _Writer:
    def __init__(self, conn: Connection, plan: Plan, now: datetime) -> None:
        self.conn = conn
        self.plan = plan
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.summary = WriteSummary()
        self.ids: dict[str, int] = {}
        # kind name -> item id -> the user the change is attributed to
        self.dirty: dict[str, dict[int, int | None]] = defaultdict(dict)
        # kind name -> ids of the fields, surveys, images and mosaics given a new parent
        self.moved: dict[str, set[int]] = defaultdict(set)
        for record in plan.records:
            if record.existing is not None:
                self.ids[record.sentera_id] = record.existing["id"]

    def run(self) -> WriteSummary:
        self._known_ids()
        by_kind: dict[str, list[PlannedRecord]] = defaultdict(list)
        for record in self.plan.records:
            by_kind[record.kind.name].append(record)
        for kind in ALL_KINDS:
            records = by_kind.get(kind.name, [])
            new = [r for r in records if r.is_new]
            if kind is k.ORGANIZATION:
                self._insert_organizations(new)
            else:
                self._insert(kind, new)
            # The actor may be a user this changeset creates: look it up once users exist.
            actor_id = self.ids.get(self.plan.actor) if self.plan.actor else None
            self._update(kind, [r for r in records if not r.is_new], actor_id)
            self._write_links(kind, records)
        actor_id = self._user_id(self.plan.actor)
        self._delete(actor_id)
        self._cogs_of_moved_mosaics(actor_id)
        self._mosaics_relinked_by_moves(actor_id)
        for kind in k.SYNC_KINDS:
            updaters = self.dirty.get(kind.name)
            if updaters:
                refresh_representations(self.conn, kind, updaters, self.now)
        return self.summary

    # -- ids -------------------------------------------------------------------------------

    def _known_ids(self) -> None:
        """Internal ids of every existing row the plan refers to."""
        wanted: set[str] = set()
        for record in self.plan.records:
            for attribute in record.kind.attributes:
                value = record.values.get(attribute.key)
                if attribute.value_type is ValueType.REF and isinstance(value, str):
                    wanted.add(value)
                elif attribute.value_type is ValueType.REF_LIST and value:
                    wanted.update(value)
                elif attribute.value_type is ValueType.MEMBERSHIPS and value:
                    wanted.update(entry["organization_sentera_id"] for entry in value)
            for user in (record.created_by, record.updated_by):
                if isinstance(user, str):
                    wanted.add(user)
        if self.plan.actor:
            wanted.add(self.plan.actor)
        wanted.update(sentera_id for _, sentera_id in self.plan.deletes)
        self._load_ids(wanted - self.ids.keys())

    def _load_ids(self, sentera_ids: set[str]) -> None:
        by_kind: dict[EntityKind, list[str]] = defaultdict(list)
        for sentera_id in sentera_ids:
            by_kind[_kind_of(sentera_id)].append(sentera_id)
        for kind, wanted in by_kind.items():
            self.ids.update(ids_by_sentera_id(self.conn, kind.table, wanted))

    def _user_id(self, sentera_id: str | None) -> int | None:
        return None if sentera_id is None else self.ids[sentera_id]

    # -- upserts ---------------------------------------------------------------------------

    def _columns(self, record: PlannedRecord) -> dict[str, Any]:
        """Column values for the attributes the record sets, references as internal ids."""
        columns: dict[str, Any] = {}
        for key, value in record.values.items():
            attribute = record.kind.attribute(key)
            assert attribute is not None
            if attribute.value_type is ValueType.REF:
                columns[attribute.target] = None if value is None else self.ids[value]
            elif attribute.value_type is ValueType.AREA:
                columns["area_value"] = None if value is None else value["value"]
                columns["area_unit"] = None if value is None else value["unit"]
            elif attribute.value_type not in (ValueType.REF_LIST, ValueType.MEMBERSHIPS):
                columns[attribute.target] = value
        return columns

    def _new_row(self, record: PlannedRecord) -> dict[str, Any]:
        kind = record.kind
        row: dict[str, Any] = {
            column.name: None for column in kind.table.columns if column.name != "id"
        }
        created_at = record.created_at or self.now
        row.update(sentera_id=record.sentera_id, created_at=created_at, updated_at=created_at)
        row.update(self._columns(record))
        if kind.sync is not None:
            creator = self._user_id(record.created_by)
            updater = self._user_id(record.updated_by) if record.updated_by_given() else creator
            row.update(
                created_by_id=creator,
                updated_by_id=updater,
                content_hash=_PLACEHOLDER_HASH,
                representation="",
            )
            if kind.sync.scope_type is not None:
                # Placeholder; the representation refresh sets the real scope key.
                row.update(scope_type=kind.sync.scope_type, scope_id=0)
        return row

    def _insert(self, kind: EntityKind, records: list[PlannedRecord]) -> None:
        if not records:
            return
        rows = [self._new_row(record) for record in records]
        self.ids.update(insert_items(self.conn, kind.table, rows))
        self.summary.created += len(records)
        if kind.sync is not None:
            for record in records:
                self.dirty[kind.name][self.ids[record.sentera_id]] = None

    def _insert_organizations(self, records: list[PlannedRecord]) -> None:
        """Insert new organizations parents first (a parent may be new in the same changeset)."""
        pending = list(records)
        while pending:
            ready = [
                r
                for r in pending
                if r.values.get("parent_sentera_id") is None
                or r.values["parent_sentera_id"] in self.ids
            ]
            assert ready, "organization cycle passed validation"
            self._insert(k.ORGANIZATION, ready)
            pending = [r for r in pending if r.sentera_id not in self.ids]

    def _update(self, kind: EntityKind, records: list[PlannedRecord], actor_id: int | None) -> None:
        changes: dict[int, dict[str, Any]] = {}
        for record in records:
            existing = record.existing
            assert existing is not None
            changed = {
                name: value
                for name, value in self._columns(record).items()
                if existing[name] != value
            }
            if record.created_at is not None and record.created_at != existing["created_at"]:
                changed["created_at"] = record.created_at
            links_changed = self._links_changed(record)
            if not changed and not links_changed:
                self.summary.unchanged += 1
                continue
            self.summary.updated += 1
            item_id = existing["id"]
            if kind.sync is not None:
                updater = (
                    self._user_id(record.updated_by) if record.updated_by_given() else actor_id
                )
                self.dirty[kind.name][item_id] = updater
                if _PARENT_COLUMNS.get(kind.name) in changed:
                    self.moved[kind.name].add(item_id)
            else:
                changed["updated_at"] = self.now
            if changed:
                changes[item_id] = changed
        update_items(self.conn, kind.table, changes)

    def _current_links(self, record: PlannedRecord) -> dict[int, str | None]:
        """A user's organizations with its role in each, or a mosaic's images."""
        assert record.existing is not None
        if record.kind is k.USER:
            return dict(memberships_of_user(self.conn, record.existing["id"]))
        return dict.fromkeys(images_of_mosaic(self.conn, record.existing["id"]))

    def _wanted_links(self, record: PlannedRecord) -> dict[int, str | None] | None:
        values = record.values
        if record.kind is k.USER and "memberships" in values:
            return {
                self.ids[entry["organization_sentera_id"]]: entry["role"]
                for entry in values["memberships"]
            }
        if record.kind is k.USER and "organization_sentera_ids" in values:
            return dict.fromkeys(
                (self.ids[sid] for sid in values["organization_sentera_ids"]), DEFAULT_ROLE
            )
        if record.kind is k.MOSAIC and "image_sentera_ids" in values:
            return dict.fromkeys(self.ids[sid] for sid in values["image_sentera_ids"])
        return None

    def _links_changed(self, record: PlannedRecord) -> bool:
        wanted = self._wanted_links(record)
        return wanted is not None and wanted != self._current_links(record)

    def _write_links(self, kind: EntityKind, records: list[PlannedRecord]) -> None:
        if kind is k.USER:
            table, owner, target = t.memberships, "user_id", "organization_id"
        elif kind is k.MOSAIC:
            table, owner, target = t.mosaic_images, "mosaic_id", "image_id"
        else:
            return
        rows: list[dict[str, Any]] = []
        for record in records:
            wanted = self._wanted_links(record)
            if wanted is None:
                continue
            owner_id = self.ids[record.sentera_id]
            if not record.is_new:
                if wanted == self._current_links(record):
                    continue
                delete_links(self.conn, table, owner, owner_id)
            for target_id, role in sorted(wanted.items()):
                row: dict[str, Any] = {owner: owner_id, target: target_id}
                rows.append(row if role is None else row | {"role": role})
        insert_links(self.conn, table, rows)

    # -- deletes ---------------------------------------------------------------------------

    def _delete(self, actor_id: int | None) -> None:
        if not self.plan.deletes:
            return
        named: dict[EntityKind, set[int]] = defaultdict(set)
        paths: dict[int, str] = {}
        for path, sentera_id in self.plan.deletes:
            kind = _kind_of(sentera_id)
            named[kind].add(self.ids[sentera_id])
            if kind is k.ORGANIZATION:
                paths[self.ids[sentera_id]] = path
        # Deleting what is deleted already is a no-op: only live rows are doomed.
        doomed: dict[str, set[int]] = defaultdict(set)
        for kind, named_ids in named.items():
            doomed[kind.name] = self._children(kind.table, "id", named_ids)
        self._cascade(doomed)
        self._check_organizations(doomed, paths)
        # What this changeset wrote to a doomed item is represented before it becomes a
        # tombstone: a tombstone always holds a real representation and content hash.
        for kind in k.SYNC_KINDS:
            written = self.dirty.get(kind.name, {})
            last = {
                item_id: written[item_id] for item_id in doomed[kind.name] if item_id in written
            }
            if last:
                refresh_representations(self.conn, kind, last, self.now)
        for kind in ALL_KINDS:
            ids = sorted(doomed.get(kind.name, ()))
            mark_deleted(self.conn, kind.table, ids, self.now)
            self.summary.deleted += len(ids)
            for item_id in ids:
                self.dirty.get(kind.name, {}).pop(item_id, None)
        self._after_delete(doomed, actor_id)

    def _owned(self, table: Table, owner_type: str, owner_ids: set[int]) -> set[int]:
        return live_owned(self.conn, table, owner_type, owner_ids)

    def _children(self, table: Table, column: str, parent_ids: set[int]) -> set[int]:
        return live_children(self.conn, table, column, parent_ids)

    def _cascade(self, doomed: dict[str, set[int]]) -> None:
        """Everything below a deleted field, survey, mosaic, feature set or logo goes too."""
        fields = doomed[k.FIELD.name]
        if fields:
            doomed[k.SURVEY.name] |= self._children(t.surveys, "field_id", fields)
            doomed[k.FEATURE_SET.name] |= self._owned(t.feature_sets, "FIELD", fields)
            doomed[k.FILE.name] |= self._owned(t.files, "FIELD", fields)
        surveys = doomed[k.SURVEY.name]
        if surveys:
            doomed[k.IMAGE.name] |= self._children(t.images, "survey_id", surveys)
            doomed[k.MOSAIC.name] |= self._children(t.mosaics, "survey_id", surveys)
            doomed[k.FEATURE_SET.name] |= self._owned(t.feature_sets, "SURVEY", surveys)
            doomed[k.FILE.name] |= self._owned(t.files, "SURVEY", surveys)
        mosaics = doomed[k.MOSAIC.name]
        if mosaics:
            doomed[k.COG.name] |= self._children(t.cogs, "mosaic_id", mosaics)
            doomed[k.FILE.name] |= self._owned(t.files, "MOSAIC", mosaics)
        if doomed[k.FEATURE_SET.name]:
            doomed[k.FILE.name] |= self._owned(t.files, "FEATURE_SET", doomed[k.FEATURE_SET.name])
        if doomed[k.LOGO.name]:
            doomed[k.FILE.name] |= self._owned(t.files, "LOGO", doomed[k.LOGO.name])

    def _check_organizations(self, doomed: dict[str, set[int]], paths: dict[int, str]) -> None:
        organizations = doomed[k.ORGANIZATION.name]
        if not organizations:
            return
        holders = (
            ("child organization", t.organizations, "parent_id", k.ORGANIZATION),
            ("field", t.fields, "organization_id", k.FIELD),
            ("logo", t.logos, "organization_id", k.LOGO),
            ("flight task", t.flight_tasks, "organization_id", k.FLIGHT_TASK),
        )
        issues: list[ChangesetIssue] = []
        for org_id in sorted(organizations):
            held: list[str] = []
            for label, table, column, kind in holders:
                remaining = self._children(table, column, {org_id}) - doomed[kind.name]
                if remaining:
                    held.append(_count(len(remaining), label))
            feature_sets = self._owned(t.feature_sets, "ORGANIZATION", {org_id})
            feature_sets -= doomed[k.FEATURE_SET.name]
            if feature_sets:
                held.append(_count(len(feature_sets), "feature set"))
            if held:
                issues.append(
                    ChangesetIssue(
                        paths.get(org_id, "delete"),
                        "cannot delete an organization that still holds "
                        + ", ".join(held)
                        + "; delete or move them first",
                    )
                )
        if issues:
            raise ChangesetError(issues)

    def _after_delete(self, doomed: dict[str, set[int]], actor_id: int | None) -> None:
        revoke_tokens_of_users(self.conn, doomed[k.USER.name], self.now)
        # A flight task outlives the field or survey it pointed at; the reference is cleared.
        for column, kind in (("field_id", k.FIELD), ("survey_id", k.SURVEY)):
            gone = doomed[kind.name]
            if not gone:
                continue
            tasks = self._children(t.flight_tasks, column, gone)
            clear_column(self.conn, t.flight_tasks, column, tasks)
            for task_id in tasks:
                self.dirty[k.FLIGHT_TASK.name].setdefault(task_id, actor_id)
        # A deleted COG's queued or running generation stops (its worker drops the result).
        cancel_jobs_of_cogs(self.conn, doomed[k.COG.name], self.now)
        # A mosaic's image count counts live images only.
        for mosaic_id in live_mosaics_linking(self.conn, "id", doomed[k.IMAGE.name]):
            self.dirty[k.MOSAIC.name].setdefault(mosaic_id, actor_id)

    def _cogs_of_moved_mosaics(self, actor_id: int | None) -> None:
        """A COG's scope is its mosaic's survey: moving the mosaic moves its COGs."""
        moved = self.moved[k.MOSAIC.name]
        if not moved:
            return
        for cog_id in self._children(t.cogs, "mosaic_id", moved):
            self.dirty[k.COG.name].setdefault(cog_id, actor_id)

    def _mosaics_relinked_by_moves(self, actor_id: int | None) -> None:
        """A link counts only while image and mosaic share an organization, so moving an
        image, a mosaic, or a survey or field above them may change which links of a mosaic
        count. Every mosaic on either side of such a move is refreshed; the refresh stores a
        new hash only where the counted links (or anything else) really changed."""
        fields = self.moved[k.FIELD.name]
        surveys = self.moved[k.SURVEY.name] | self._children(t.surveys, "field_id", fields)
        mosaics = self.moved[k.MOSAIC.name] | self._children(t.mosaics, "survey_id", surveys)
        mosaics |= live_mosaics_linking(self.conn, "id", self.moved[k.IMAGE.name])
        mosaics |= live_mosaics_linking(self.conn, "survey_id", surveys)
        for mosaic_id in mosaics:
            self.dirty[k.MOSAIC.name].setdefault(mosaic_id, actor_id)
