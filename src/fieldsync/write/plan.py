"""Validating a changeset as a whole and turning it into a plan, before anything is written.

Every problem is collected with the JSON path of the value at fault, so one run reports them
all. The plan names references by sentera_id; `apply.py` maps them to rows when it writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping

from fieldsync.ids import TypeCode, new_sentera_id, type_code_of
from fieldsync.model import kinds as k
from fieldsync.model.kinds import (
    ALL_KINDS,
    COMMON_KEYS,
    KIND_BY_CHANGESET_KEY,
    KIND_BY_CODE,
    OWNER_CODES,
    EntityKind,
    ValueType,
)
from fieldsync.storage.organization_tree import parent_sentera_ids
from fieldsync.storage.rows import rows_by_id, rows_by_sentera_id
from fieldsync.write.access import WriteAccess
from fieldsync.write.values import (
    InvalidValue,
    check_sentera_id,
    check_value,
    describe,
    parse_timestamp,
)

TOP_LEVEL_KEYS = ("actor_sentera_id", "upsert", "delete")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class ChangesetIssue:
    """One problem, at the JSON path of the value at fault.

    `key` names the broken rule (`less_than_or_equal_to`, `not_found`, …) and `details` the
    values that vary; `attribute` names the key a problem of a whole record is about (the
    missing required key).
    """

    path: str
    message: str
    key: str = "invalid"
    attribute: str | None = None
    details: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ChangesetError(Exception):
    """The changeset was rejected; nothing was written."""

    def __init__(self, issues: list[ChangesetIssue]) -> None:
        super().__init__(f"{len(issues)} error(s) in changeset")
        self.issues = issues


@dataclass(slots=True)
class PlannedRecord:
    """The merged upsert of one item: what the changeset sets, on top of what exists."""

    kind: EntityKind
    sentera_id: str
    path: str
    existing: RowMapping | None
    values: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str | None = None
    updated_by: Any = _UNSET
    present: set[str] = field(default_factory=set)
    """Keys the changeset gave, valid or not (an invalid one is reported once, not as missing)."""

    @property
    def is_new(self) -> bool:
        return self.existing is None

    def updated_by_given(self) -> bool:
        return self.updated_by is not _UNSET


@dataclass(slots=True)
class Plan:
    actor: str | None
    records: list[PlannedRecord]
    deletes: list[tuple[str, str]]
    """(JSON path, sentera_id) of each id to delete."""


class ExistingRows:
    """Rows already in the database, looked up by sentera_id or id in batches."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.by_sentera_id: dict[str, RowMapping] = {}
        self.by_id: dict[tuple[TypeCode, int], RowMapping] = {}

    def _remember(self, code: TypeCode, rows: Iterable[RowMapping]) -> None:
        for row in rows:
            self.by_sentera_id[row["sentera_id"]] = row
            self.by_id[(code, row["id"])] = row

    def load(self, sentera_ids: Iterable[str]) -> None:
        by_code: dict[TypeCode, set[str]] = {}
        for sentera_id in sentera_ids:
            code = type_code_of(sentera_id)
            if code is not None and sentera_id not in self.by_sentera_id:
                by_code.setdefault(code, set()).add(sentera_id)
        for code, wanted in by_code.items():
            rows = rows_by_sentera_id(self.conn, KIND_BY_CODE[code].table, wanted)
            self._remember(code, rows.values())

    def row_by_id(self, code: TypeCode, row_id: int) -> RowMapping:
        key = (code, row_id)
        if key not in self.by_id:
            self._remember(code, rows_by_id(self.conn, KIND_BY_CODE[code].table, row_id))
        return self.by_id[key]

    def get(self, sentera_id: str) -> RowMapping | None:
        return self.by_sentera_id.get(sentera_id)


def _referenced_ids(document: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))

    add(document.get("actor_sentera_id"))
    add(document.get("delete"))
    upsert = document.get("upsert")
    if isinstance(upsert, dict):
        for key, records in upsert.items():
            kind = KIND_BY_CHANGESET_KEY.get(key)
            if kind is None or not isinstance(records, list):
                continue
            for record in records:
                if not isinstance(record, dict):
                    continue
                for name in ("sentera_id", "created_by_sentera_id", "updated_by_sentera_id"):
                    add(record.get(name))
                for attribute in kind.attributes:
                    if attribute.value_type in (ValueType.REF, ValueType.REF_LIST):
                        add(record.get(attribute.key))
                    elif attribute.value_type is ValueType.MEMBERSHIPS:
                        entries = record.get(attribute.key)
                        for entry in entries if isinstance(entries, list) else ():
                            if isinstance(entry, dict):
                                add(entry.get("organization_sentera_id"))
    return found


class Planner:
    """Builds a `Plan` from a parsed changeset, collecting every issue."""

    def __init__(self, conn: Connection, document: Any, access: WriteAccess | None = None) -> None:
        self.conn = conn
        self.document = document
        self.access = access
        self.issues: list[ChangesetIssue] = []
        self.existing = ExistingRows(conn)
        self.planned: dict[str, PlannedRecord] = {}
        self.will_exist: set[str] = set()
        # The sentera_id each record (by identity) creates or updates; None when invalid.
        self.record_ids: dict[int, str | None] = {}

    def fail(
        self,
        path: str,
        message: str,
        *,
        key: str = "invalid",
        attribute: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.issues.append(ChangesetIssue(path, message, key, attribute, details))

    def build(self) -> Plan:
        """The plan of a valid document; raises ChangesetError listing every issue."""
        plan = self.check()
        if self.issues:
            raise ChangesetError(self.issues)
        return plan

    def check(self) -> Plan:
        """The plan of what is valid; every issue found is left in `issues`."""
        document = self.document
        if not isinstance(document, dict):
            raise ChangesetError([ChangesetIssue("", "a changeset is a JSON object")])
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                self.fail(key, f"unknown key (expected {', '.join(TOP_LEVEL_KEYS)})")
        upsert = document.get("upsert", {})
        records_by_kind: list[tuple[EntityKind, list[tuple[str, dict[str, Any]]]]] = []
        if upsert is None:
            upsert = {}
        if not isinstance(upsert, dict):
            self.fail("upsert", f"expected an object, got {describe(upsert)}")
            upsert = {}
        for key, records in upsert.items():
            kind = KIND_BY_CHANGESET_KEY.get(key)
            if kind is None:
                self.fail(
                    f"upsert.{key}",
                    f"unknown kind (expected one of {', '.join(KIND_BY_CHANGESET_KEY)})",
                )
                continue
            if not isinstance(records, list):
                self.fail(f"upsert.{key}", f"expected a list, got {describe(records)}")
                continue
            good: list[tuple[str, dict[str, Any]]] = []
            for index, record in enumerate(records):
                path = f"upsert.{key}[{index}]"
                if isinstance(record, dict):
                    good.append((path, record))
                else:
                    self.fail(path, f"expected an object, got {describe(record)}")
            records_by_kind.append((kind, good))
        records_by_kind.sort(key=lambda pair: ALL_KINDS.index(pair[0]))

        referenced = _referenced_ids(document)
        self.existing.load(referenced)
        if self.access is not None:
            self.access.prime(sid for sid in referenced if self.existing.get(sid) is not None)
        self._register_ids(records_by_kind)
        actor = self._actor(document.get("actor_sentera_id"))
        for kind, records in records_by_kind:
            for path, record in records:
                self._plan_record(kind, path, record, actor)
        deletes = self._deletes(document.get("delete", []))
        self._check_mosaic_links()
        self._check_organization_cycles()
        return Plan(actor=actor, records=list(self.planned.values()), deletes=deletes)

    # -- identities ------------------------------------------------------------------------

    def _register_ids(
        self, records_by_kind: list[tuple[EntityKind, list[tuple[str, dict[str, Any]]]]]
    ) -> None:
        """Know every id the changeset creates before checking references to it."""
        for kind, records in records_by_kind:
            for path, record in records:
                self.record_ids[id(record)] = None
                if "sentera_id" not in record or (
                    self.access is not None and record["sentera_id"] is None
                ):
                    generated = new_sentera_id(kind.code)
                    self.record_ids[id(record)] = generated
                    self.will_exist.add(generated)
                    continue
                try:
                    sentera_id = check_sentera_id(record["sentera_id"], (kind.code.value,))
                except InvalidValue as exc:
                    self.fail(f"{path}.sentera_id", str(exc))
                    continue
                row = self.existing.get(sentera_id)
                if self.access is not None and not self._may_update(path, kind, sentera_id):
                    continue
                if row is not None and row["deleted_at"] is not None:
                    self.fail(
                        f"{path}.sentera_id",
                        f"{sentera_id!r} was deleted; a deleted id cannot be used again",
                    )
                    continue
                self.record_ids[id(record)] = sentera_id
                self.will_exist.add(sentera_id)

    def _may_update(self, path: str, kind: EntityKind, sentera_id: str) -> bool:
        """Through the API an input with a sentera_id updates that item, which must exist and
        be the caller's to write; one it may not read is answered as one that does not exist."""
        assert self.access is not None
        if not self.access.may_read(sentera_id):
            self.fail(
                f"{path}.sentera_id",
                f"{kind.name.replace('_', ' ')} {sentera_id!r} does not exist",
                key="not_found",
                details={"sentera_id": sentera_id},
            )
            return False
        if not self.access.may_write(sentera_id):
            self.fail(
                f"{path}.sentera_id",
                f"you may read {sentera_id!r} but not change it: your role in its "
                "organization is viewer",
                key="forbidden",
                details={"sentera_id": sentera_id},
            )
            return False
        return True

    def _reference(self, path: str, sentera_id: str) -> None:
        if sentera_id in self.will_exist:
            return
        row = self.existing.get(sentera_id)
        hidden = (
            row is not None and self.access is not None and not self.access.may_read(sentera_id)
        )
        if row is None or hidden:
            self.fail(
                path,
                f"{sentera_id!r} does not exist",
                key="not_found",
                details={"sentera_id": sentera_id},
            )
        elif row["deleted_at"] is not None:
            self.fail(
                path,
                f"{sentera_id!r} was deleted",
                key="not_found",
                details={"sentera_id": sentera_id},
            )

    def _actor(self, actor: Any) -> str | None:
        if actor is None:
            return None
        try:
            sentera_id = check_sentera_id(actor, (TypeCode.USER.value,))
        except InvalidValue as exc:
            self.fail("actor_sentera_id", str(exc))
            return None
        self._reference("actor_sentera_id", sentera_id)
        return sentera_id

    # -- records ---------------------------------------------------------------------------

    def _plan_record(
        self, kind: EntityKind, path: str, record: dict[str, Any], actor: str | None
    ) -> None:
        sentera_id = self.record_ids[id(record)]
        if sentera_id is None:
            return
        planned = self.planned.get(sentera_id)
        if planned is None:
            planned = PlannedRecord(kind, sentera_id, path, self.existing.get(sentera_id))
            self.planned[sentera_id] = planned
        for key, value in record.items():
            if key == "sentera_id":
                continue
            key_path = f"{path}.{key}"
            planned.present.add(key)
            if key == "created_at":
                try:
                    planned.created_at = parse_timestamp(value)
                except InvalidValue as exc:
                    self.fail(key_path, str(exc))
                continue
            if key in ("created_by_sentera_id", "updated_by_sentera_id"):
                user = self._user_reference(key_path, value, nullable=key.startswith("updated"))
                if key.startswith("created"):
                    planned.created_by = user
                else:
                    planned.updated_by = user
                continue
            attribute = kind.attribute(key)
            if attribute is None or attribute.internal:
                allowed = ", ".join([a.key for a in kind.given_attributes] + list(COMMON_KEYS))
                self.fail(key_path, f"unknown key for {kind.changeset_key} (expected {allowed})")
                continue
            try:
                checked = check_value(kind, attribute, value)
            except InvalidValue as exc:
                self.fail(key_path + exc.subpath, str(exc), key=exc.key, details=exc.details)
                continue
            if attribute.value_type is ValueType.REF and checked is not None:
                self._reference(key_path, checked)
            elif attribute.value_type is ValueType.REF_LIST:
                for position, item in enumerate(checked):
                    self._reference(f"{key_path}[{position}]", item)
            elif attribute.value_type is ValueType.MEMBERSHIPS:
                for position, entry in enumerate(checked):
                    self._reference(
                        f"{key_path}[{position}].organization_sentera_id",
                        entry["organization_sentera_id"],
                    )
            planned.values[key] = checked
        if planned.is_new:
            self._complete_new(planned, path, actor)
        if kind in (k.FILE, k.FEATURE_SET):
            self._check_owner(planned, path)
        if kind is k.USER:
            self._check_memberships(planned, path)

    def _user_reference(self, path: str, value: Any, *, nullable: bool) -> str | None:
        if value is None and nullable:
            return None
        try:
            sentera_id = check_sentera_id(value, (TypeCode.USER.value,))
        except InvalidValue as exc:
            self.fail(path, str(exc))
            return None
        self._reference(path, sentera_id)
        return sentera_id

    def _complete_new(self, planned: PlannedRecord, path: str, actor: str | None) -> None:
        kind = planned.kind
        for attribute in kind.given_attributes:
            if attribute.key in planned.present:
                continue
            if attribute.required:
                self._missing(planned, path, attribute.key)
            elif attribute.default is not None:
                planned.values[attribute.key] = attribute.default
        if kind is k.USER and not {"organization_sentera_ids", "memberships"} & planned.present:
            self._missing(planned, path, "organization_sentera_ids")
        if kind is k.FILE and "download_filename" not in planned.values:
            planned.values["download_filename"] = planned.values.get("filename")
        if kind.sync is not None and planned.created_by is None:
            planned.created_by = actor
            # A user that is given but invalid is reported once, where it is given.
            given = (
                "created_by_sentera_id" in planned.present
                or self.document.get("actor_sentera_id") is not None
            )
            if actor is None and not given:
                self.fail(
                    path,
                    "no user to attribute the new item to: set actor_sentera_id or "
                    "created_by_sentera_id",
                )

    def _missing(self, planned: PlannedRecord, path: str, key: str) -> None:
        self.fail(
            path,
            f"missing required key {key!r} (required when creating "
            f"{planned.kind.changeset_key.replace('_', ' ')})",
            key="blank",
            attribute=key,
        )

    def _check_memberships(self, planned: PlannedRecord, path: str) -> None:
        """A user's organizations come as plain ids or as memberships, and there is one."""
        given = [
            key for key in ("organization_sentera_ids", "memberships") if key in planned.values
        ]
        if len(given) == 2:
            self.fail(
                f"{path}.memberships",
                "give organization_sentera_ids or memberships, not both",
            )
        elif given and planned.values[given[0]] == []:
            self.fail(f"{path}.{given[0]}", "a user needs at least one organization", key="blank")

    def _check_owner(self, planned: PlannedRecord, path: str) -> None:
        values, existing = planned.values, planned.existing
        owner_type = values.get("owner_type", existing["scope_type"] if existing else None)
        owner = values.get("owner_sentera_id")
        if owner is None and existing is not None and "owner_type" in values:
            current = self.existing.row_by_id(
                OWNER_CODES[existing["scope_type"]], existing["scope_id"]
            )
            owner = current["sentera_id"]
        if owner_type is None or owner is None:
            return
        expected = OWNER_CODES[owner_type]
        if type_code_of(owner) is not expected:
            self.fail(
                f"{path}.owner_sentera_id",
                f"{owner!r} is not a {owner_type.lower()} (owner_type is {owner_type}; "
                f"expected a {expected.value} id)",
            )

    # -- cross-record checks ---------------------------------------------------------------

    def _final_ref(self, sentera_id: str, key: str, code: TypeCode, column: str) -> str | None:
        """The sentera_id an item's reference will hold once the changeset applies."""
        planned = self.planned.get(sentera_id)
        if planned is not None and key in planned.values:
            value: str | None = planned.values[key]
            return value
        row = self.existing.get(sentera_id)
        if row is None or row[column] is None:
            return None
        parent: str = self.existing.row_by_id(code, row[column])["sentera_id"]
        return parent

    def _check_mosaic_links(self) -> None:
        """Images given in image_sentera_ids belong to the mosaic's survey (after this changeset).

        Moving a linked image or mosaic later keeps the link, but it counts only while the image
        is live and in the mosaic's organization (`storage.mosaic_links.counted_links`).
        """
        for planned in self.planned.values():
            if planned.kind is not k.MOSAIC or "image_sentera_ids" not in planned.values:
                continue
            survey = self._final_ref(
                planned.sentera_id, "survey_sentera_id", TypeCode.SURVEY, "survey_id"
            )
            if survey is None:
                continue  # the mosaic's own survey is invalid and already reported
            for position, image in enumerate(planned.values["image_sentera_ids"]):
                if image not in self.will_exist and self.existing.get(image) is None:
                    continue  # already reported as missing
                image_survey = self._final_ref(
                    image, "survey_sentera_id", TypeCode.SURVEY, "survey_id"
                )
                if image_survey != survey:
                    self.fail(
                        f"{planned.path}.image_sentera_ids[{position}]",
                        f"image {image!r} belongs to survey {image_survey!r}, not to the "
                        f"mosaic's survey {survey!r}",
                    )

    def _check_organization_cycles(self) -> None:
        moved = [
            p
            for p in self.planned.values()
            if p.kind is k.ORGANIZATION and p.values.get("parent_sentera_id") is not None
        ]
        if not moved:
            return
        parents = parent_sentera_ids(self.conn)
        for planned in self.planned.values():
            if planned.kind is k.ORGANIZATION and "parent_sentera_id" in planned.values:
                parents[planned.sentera_id] = planned.values["parent_sentera_id"]
        for planned in moved:
            seen = {planned.sentera_id}
            current = parents.get(planned.sentera_id)
            while current is not None:
                if current in seen:
                    self.fail(
                        f"{planned.path}.parent_sentera_id",
                        "this parent would make the organization its own ancestor",
                    )
                    break
                seen.add(current)
                current = parents.get(current)

    # -- deletes ---------------------------------------------------------------------------

    def _deletes(self, deletes: Any) -> list[tuple[str, str]]:
        if deletes is None:
            return []
        if not isinstance(deletes, list):
            self.fail("delete", f"expected a list of sentera_ids, got {describe(deletes)}")
            return []
        checked: list[tuple[str, str]] = []
        for index, value in enumerate(deletes):
            path = f"delete[{index}]"
            try:
                sentera_id = check_sentera_id(value, ())
            except InvalidValue as exc:
                self.fail(path, str(exc))
                continue
            if self.existing.get(sentera_id) is None and sentera_id not in self.will_exist:
                self.fail(path, f"{sentera_id!r} does not exist")
                continue
            checked.append((path, sentera_id))
        return checked
