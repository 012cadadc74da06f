"""A reference model of a small FieldSync world, for the sync property tests.

The model knows, without asking the server, which sync items exist, where each one hangs, the
values it holds, what deleting something takes with it, which items each sync scope covers, and
which fields a sync query returns for an item (for a deleted item: those of its last version,
its tombstone). Content hashes are not modelled: the tests read the current hash from the database
and check separately that it changes exactly when the model says the item's representation did.

Organization tree: `root` > `child` > `grandchild`, and a separate `other` root; the world's
user belongs to `root` and `other`. A `foreign` organization the user may not read holds one
field and one survey; the survey is a file owner the user may not read.

A mosaic's links are kept when its images or the mosaic move, but count (in its
`images { total_count }` and its hash) only while the image is live and hangs below the same
organization as the mosaic (`counted_links`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("field", "survey", "image", "mosaic", "cog", "file", "task")

TYPE_CODES = {
    "field": "AS",
    "survey": "CO",
    "image": "IM",
    "mosaic": "MO",
    "cog": "CG",
    "file": "FI",
    "task": "TA",
}
CHANGESET_KEYS = {
    "field": "fields",
    "survey": "surveys",
    "image": "images",
    "mosaic": "mosaics",
    "cog": "cogs",
    "file": "files",
    "task": "flight_tasks",
}
PARENT_KEYS = {
    "field": "organization_sentera_id",
    "survey": "field_sentera_id",
    "image": "survey_sentera_id",
    "mosaic": "survey_sentera_id",
    "cog": "mosaic_sentera_id",
    "file": "owner_sentera_id",
    "task": "organization_sentera_id",
}
# What an item of each kind may hang below ("org": one of the readable organizations).
PARENT_KINDS: dict[str, tuple[str, ...]] = {
    "field": ("org",),
    "survey": ("field",),
    "image": ("survey",),
    "mosaic": ("survey",),
    "cog": ("mosaic",),
    "file": ("survey", "field", "mosaic"),
    "task": ("org",),
}
OWNER_TYPES = {"survey": "SURVEY", "field": "FIELD", "mosaic": "MOSAIC"}

# The values an update may set; two per attribute, so a drawn update is sometimes a no-op.
CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {
    "field": {"name": ("North", "South"), "latitude": (45.0, 45.5)},
    "survey": {"name": ("June", "July"), "notes": (None, "windy")},
    "image": {"filename": ("a.jpg", "b.jpg"), "altitude": (100.0, 120.5)},
    "mosaic": {
        "name": ("Full RGB", "NDVI"),
        "quality": ("FULL", "PREVIEW"),
        "released": (False, True),
    },
    "cog": {"status": ("SUCCESS", "FAIL"), "max_zoom": (18, 19)},
    "file": {"filename": ("a.tif", "b.tif"), "size": (1, 2)},
    "task": {"status": ("OPEN", "COMPLETED"), "name": ("Scout", "Spray")},
}
FIXED: dict[str, dict[str, Any]] = {
    "mosaic": {"mosaic_type": "RGB"},
    "file": {"file_type": "OTHER"},
}

_ids = itertools.count(1)


def new_id(code: str) -> str:
    """A fresh, well-formed sentera_id (unique within the test process)."""
    return f"p{next(_ids):06d}_{code}_Prop_CV_test_abc123_240101_000000"


def ref(sentera_id: str | None) -> dict[str, str] | None:
    return None if sentera_id is None else {"sentera_id": sentera_id}


@dataclass
class Item:
    kind: str
    sentera_id: str
    order: tuple[datetime, int]
    """Creation order: (created_at, position in creation sequence)."""
    parent: str
    values: dict[str, Any]
    links: list[str] = field(default_factory=list)
    """A mosaic's images."""
    task_field: str | None = None
    task_survey: str | None = None
    live: bool = True
    last_fields: dict[str, Any] | None = None
    last_placement: str | None = None
    """What a sync query returns for the item, frozen when it was deleted."""


@dataclass(frozen=True)
class ScopeSpec:
    """The items one sync query covers: live items of `kind` placed below one of `parents`.

    An item's placement is its parent, except for a COG, which is placed in its mosaic's survey.
    """

    kind: str
    parents: frozenset[str]


class WorldModel:
    def __init__(self, now: datetime) -> None:
        self.user = new_id("US")
        self.root = new_id("OR")
        self.child = new_id("OR")
        self.grandchild = new_id("OR")
        self.other = new_id("OR")
        self.foreign = new_id("OR")
        self.foreign_field = new_id("AS")
        self.foreign_survey = new_id("CO")
        self.org_parent = {self.child: self.root, self.grandchild: self.child}
        self.readable_orgs = (self.root, self.child, self.grandchild, self.other)
        self.items: dict[str, Item] = {}
        self._sequence = itertools.count()

        # The scope roots: never deleted (every delete that would take one is skipped).
        self.field1 = self.add("field", self.root, {"name": "North", "latitude": 45.0}, now)
        self.survey1 = self.add("survey", self.field1, {"name": "June", "notes": None}, now)
        self.protected = {self.field1, self.survey1}
        self.add("field", self.root, {"name": "South", "latitude": 45.0}, now)
        field2 = self.add("field", self.child, {"name": "South", "latitude": 45.5}, now)
        self.add("field", self.grandchild, {"name": "North", "latitude": 45.5}, now)
        self.add("field", self.other, {"name": "South", "latitude": 45.0}, now)
        survey2 = self.add("survey", self.field1, {"name": "July", "notes": "windy"}, now)
        self.add("survey", field2, {"name": "June", "notes": None}, now)
        image1 = self.add("image", self.survey1, {"filename": "a.jpg", "altitude": 100.0}, now)
        image2 = self.add("image", self.survey1, {"filename": "b.jpg", "altitude": 120.5}, now)
        image3 = self.add("image", survey2, {"filename": "a.jpg", "altitude": 120.5}, now)
        mosaic_values = {"name": "Full RGB", "quality": "FULL", "released": False}
        self.mosaic1 = self.add("mosaic", self.survey1, mosaic_values, now, [image1, image2])
        self.protected.add(self.mosaic1)
        mosaic2 = self.add("mosaic", survey2, mosaic_values, now, [image3])
        self.add("cog", self.mosaic1, {"status": "SUCCESS", "max_zoom": 19}, now)
        self.add("cog", mosaic2, {"status": "FAIL", "max_zoom": 18}, now)
        for owner in (self.survey1, self.field1, self.mosaic1, survey2, self.foreign_survey):
            self.add("file", owner, {"filename": "a.tif", "size": 1}, now)
        self.add("task", self.root, {"status": "OPEN", "name": "Scout"}, now, field=self.field1)
        self.add("task", self.child, {"status": "OPEN", "name": "Spray"}, now, survey=survey2)
        self.add("task", self.grandchild, {"status": "COMPLETED", "name": "Scout"}, now)
        self.add("task", self.other, {"status": "OPEN", "name": "Scout"}, now)

    # -- building ----------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        parent: str,
        values: dict[str, Any],
        now: datetime,
        links: Iterable[str] = (),
        *,
        field: str | None = None,
        survey: str | None = None,
    ) -> str:
        sentera_id = new_id(TYPE_CODES[kind])
        self.items[sentera_id] = Item(
            kind=kind,
            sentera_id=sentera_id,
            order=(now, next(self._sequence)),
            parent=parent,
            values=dict(values),
            links=list(links),
            task_field=field,
            task_survey=survey,
        )
        return sentera_id

    def initial_document(self) -> dict[str, Any]:
        """A changeset creating the whole world (organizations, user and every item)."""
        upsert: dict[str, list[dict[str, Any]]] = {
            "organizations": [
                {"sentera_id": self.root, "name": "Root"},
                {"sentera_id": self.child, "name": "Child", "parent_sentera_id": self.root},
                {"sentera_id": self.grandchild, "name": "Grand", "parent_sentera_id": self.child},
                {"sentera_id": self.other, "name": "Other"},
                {"sentera_id": self.foreign, "name": "Foreign"},
            ],
            "users": [
                {
                    "sentera_id": self.user,
                    "email": "prop@example.test",
                    "organization_sentera_ids": [self.root, self.other],
                }
            ],
            "fields": [
                {
                    "sentera_id": self.foreign_field,
                    "organization_sentera_id": self.foreign,
                    "name": "Elsewhere",
                }
            ],
            "surveys": [
                {"sentera_id": self.foreign_survey, "field_sentera_id": self.foreign_field}
            ],
        }
        for item in self.items.values():
            upsert.setdefault(CHANGESET_KEYS[item.kind], []).append(self.record(item))
        return self.document(upsert)

    def document(
        self, upsert: dict[str, list[dict[str, Any]]] | None = None, delete: list[str] | None = None
    ) -> dict[str, Any]:
        document: dict[str, Any] = {"actor_sentera_id": self.user}
        if upsert:
            document["upsert"] = upsert
        if delete:
            document["delete"] = delete
        return document

    def record(self, item: Item, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """The item's changeset record with every value it holds (or only `keys` of them)."""
        full: dict[str, Any] = {
            PARENT_KEYS[item.kind]: item.parent,
            **FIXED.get(item.kind, {}),
            **item.values,
        }
        if item.kind == "file":
            full["owner_type"] = self.owner_type(item.parent)
        if item.kind == "task":
            full["field_sentera_id"] = item.task_field
            full["survey_sentera_id"] = item.task_survey
        if item.kind == "mosaic" and self._links_writable(item):
            full["image_sentera_ids"] = self.live_links(item)
        if keys is not None:
            wanted = set(keys)
            full = {key: value for key, value in full.items() if key in wanted}
        return {"sentera_id": item.sentera_id, **full}

    def live_links(self, mosaic: Item) -> list[str]:
        """The live images a mosaic links (wherever they are now)."""
        return [image for image in mosaic.links if self.items[image].live]

    def _links_writable(self, mosaic: Item) -> bool:
        """A changeset may name only images of the mosaic's own survey in its links."""
        return all(self.items[image].parent == mosaic.parent for image in self.live_links(mosaic))

    def organization_of(self, sentera_id: str) -> str:
        """The organization an item hangs below."""
        while sentera_id in self.items:
            sentera_id = self.items[sentera_id].parent
        return sentera_id

    def counted_links(self, mosaic: Item) -> frozenset[str]:
        """The links that count: live images of the mosaic's organization. The others are
        kept but hidden, and count again when image and mosaic share an organization again."""
        organization = self.organization_of(mosaic.sentera_id)
        return frozenset(
            image
            for image in self.live_links(mosaic)
            if self.organization_of(image) == organization
        )

    def link_counts(self) -> dict[str, frozenset[str]]:
        """The counted links of every live mosaic (compare with `relinked`)."""
        return {mosaic.sentera_id: self.counted_links(mosaic) for mosaic in self.live("mosaic")}

    def relinked(self, before: dict[str, frozenset[str]]) -> set[str]:
        """Live mosaics whose counted links differ from `before`: their representation (the
        image count and link digest) changes."""
        return {
            mosaic
            for mosaic, counted in self.link_counts().items()
            if mosaic in before and before[mosaic] != counted
        }

    def kind_of(self, sentera_id: str) -> str:
        return self.items[sentera_id].kind

    # -- reading -----------------------------------------------------------------------------

    def owner_type(self, owner: str) -> str:
        if owner == self.foreign_survey:
            return "SURVEY"
        return OWNER_TYPES[self.items[owner].kind]

    def live(self, kind: str | None = None) -> list[Item]:
        return [
            item
            for item in self.items.values()
            if item.live and (kind is None or item.kind == kind)
        ]

    def parent_candidates(self, kind: str) -> list[str]:
        """Where an item of `kind` may be created or moved to."""
        found: list[str] = []
        for parent_kind in PARENT_KINDS[kind]:
            if parent_kind == "org":
                found.extend(self.readable_orgs)
            else:
                found.extend(item.sentera_id for item in self.live(parent_kind))
        if kind == "file":
            found.append(self.foreign_survey)
        return found

    def descendants(self, organization: str) -> frozenset[str]:
        found = {organization}
        changed = True
        while changed:
            changed = False
            for org, parent in self.org_parent.items():
                if parent in found and org not in found:
                    found.add(org)
                    changed = True
        return frozenset(found)

    def placement(self, item: Item) -> str:
        if item.kind == "cog":
            return self.items[item.parent].parent
        return item.parent

    def members(self, scope: ScopeSpec) -> list[str]:
        """Live items of the scope, in creation order."""
        found = [item for item in self.live(scope.kind) if self.placement(item) in scope.parents]
        return [item.sentera_id for item in sorted(found, key=lambda item: item.order)]

    def deleted_in(self, sentera_id: str, scope: ScopeSpec) -> bool:
        """Whether the item was deleted while in the scope (not moved out of it first)."""
        item = self.items[sentera_id]
        return not item.live and item.last_placement in scope.parents

    def sync_fields(self, sentera_id: str) -> dict[str, Any]:
        """The fields the sync queries select for an item (see SELECTIONS in the tests)."""
        item = self.items[sentera_id]
        if not item.live:
            assert item.last_fields is not None
            return item.last_fields
        values = item.values
        if item.kind == "image":
            return {"filename": values["filename"], "survey": ref(item.parent)}
        if item.kind == "mosaic":
            return {
                "name": values["name"],
                "survey": ref(item.parent),
                "images": {"total_count": len(self.counted_links(item))},
            }
        if item.kind == "cog":
            return {
                "status": values["status"],
                "mosaic": ref(item.parent),
                "survey": ref(self.items[item.parent].parent),
            }
        if item.kind == "file":
            return {
                "filename": values["filename"],
                "file_owner": {
                    "owner_type": self.owner_type(item.parent),
                    "sentera_id": item.parent,
                },
            }
        if item.kind == "task":
            return {
                "status": values["status"],
                "organization": ref(item.parent),
                "field": ref(item.task_field),
                "survey": ref(item.task_survey),
            }
        if item.kind == "field":
            return {"name": values["name"], "organization": ref(item.parent)}
        assert item.kind == "survey"
        return {"name": values["name"], "field": ref(item.parent)}

    # -- changing ----------------------------------------------------------------------------

    def doomed_by(self, sentera_id: str) -> set[str]:
        """Everything deleting `sentera_id` deletes: the item and every live item below it."""
        doomed: set[str] = set()
        stack = [sentera_id]
        while stack:
            current = stack.pop()
            if current in doomed:
                continue
            doomed.add(current)
            stack.extend(
                item.sentera_id
                for item in self.live()
                if item.parent == current and item.kind != "task"
            )
        return doomed

    def can_delete(self, sentera_id: str) -> bool:
        return not (self.doomed_by(sentera_id) & self.protected)

    def versions_below(self, sentera_id: str) -> dict[str, tuple[dict[str, Any], str]]:
        """Fields and placement, as they are now, of every live item below an item."""
        return {
            below: (self.sync_fields(below), self.placement(self.items[below]))
            for below in self.doomed_by(sentera_id) - {sentera_id}
        }

    def delete(
        self, sentera_id: str, last_versions: dict[str, tuple[dict[str, Any], str]] | None = None
    ) -> tuple[set[str], set[str]]:
        """Delete an item and what hangs below it. Each keeps its last version as a tombstone:
        as it is now, or as `last_versions` says for what the deleting changeset did not write.

        Returns (deleted ids, ids of live items whose representation changes as a result),
        except the mosaics whose counted links change (see `relinked`).
        """
        doomed = self.doomed_by(sentera_id)
        for doomed_id in doomed:
            item = self.items[doomed_id]
            item.last_fields, item.last_placement = (last_versions or {}).get(
                doomed_id, (self.sync_fields(doomed_id), self.placement(item))
            )
        changed: set[str] = set()
        for doomed_id in doomed:
            self.items[doomed_id].live = False
        for item in self.live():
            if item.kind == "task":
                # A task outlives the field or survey it pointed at; the reference is cleared.
                if item.task_field in doomed:
                    item.task_field = None
                    changed.add(item.sentera_id)
                if item.task_survey in doomed:
                    item.task_survey = None
                    changed.add(item.sentera_id)
        return doomed, changed

    def move(
        self, sentera_id: str, parent: str, *, keep_links: bool = False
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """Give an item a new parent.

        Returns the changeset records that do it and the ids whose representation changes,
        except the mosaics whose counted links change (see `relinked`). A moved image or
        mosaic keeps its links unless `keep_links` is false: then a moved mosaic drops them
        all, and a mosaic linking a moved image drops every link outside its own survey.
        """
        item = self.items[sentera_id]
        assert parent != item.parent
        item.parent = parent
        record: dict[str, Any] = {"sentera_id": sentera_id, PARENT_KEYS[item.kind]: parent}
        if item.kind == "file":
            record["owner_type"] = self.owner_type(parent)
        records = [record]
        changed = {sentera_id}
        if item.kind == "mosaic":
            if not keep_links:
                record["image_sentera_ids"] = []
                item.links = []
            # Its COGs are placed in the mosaic's survey: they move with it.
            changed |= {cog.sentera_id for cog in self.live("cog") if cog.parent == sentera_id}
        if item.kind == "image" and not keep_links:
            for mosaic in self.live("mosaic"):
                if sentera_id in self.live_links(mosaic):
                    mosaic.links = [
                        i for i in self.live_links(mosaic) if self.items[i].parent == mosaic.parent
                    ]
                    records.append(
                        {"sentera_id": mosaic.sentera_id, "image_sentera_ids": mosaic.links}
                    )
        return records, changed

    def update(self, sentera_id: str, key: str, value: Any) -> set[str]:
        """Set one value; returns the ids whose representation changes (none for a no-op)."""
        item = self.items[sentera_id]
        if item.values[key] == value:
            return set()
        item.values[key] = value
        return {sentera_id}
