"""Every upsert and delete mutation over real HTTP, on each backend: each kind created, updated,
written again unchanged, moved and deleted, with sync reflecting each write exactly; each rule
broken on purpose, with nothing written; limits; roles from changeset memberships; and the
request-level rules (several fields in one document, GET, tombstoned scopes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from fieldsync.storage import tables as t
from fieldsync.sync.engine import encode_hash
from tests.builder import (
    Changeset,
    World,
    field_record,
    image_record,
    mosaic_record,
    organization_record,
    row,
    sid,
    survey_record,
)
from tests.conftest import LiveServer
from tests.mutation_support import ITEM, RESULT, Client, Team

FAILED = "failed { index item attributes { attribute key message details } }"


@dataclass(frozen=True)
class Kind:
    """One kind's mutations: how they name the parent, and the values a created item shows."""

    key: str
    parent_arg: str
    parent_type: str
    input_type: str
    graphql_type: str
    fields: str
    """The selection of the kind's own values on the returned items."""

    def upsert(self) -> str:
        return (
            f"mutation($parent: {self.parent_type}, $items: [{self.input_type}!]!) {{ "
            f"upsert_{self.key}({self.parent_arg}: $parent, {self.key}: $items) {{ "
            f"succeeded {{ {ITEM} ... on {self.graphql_type} {{ {self.fields} }} }} {FAILED} }} }}"
        )

    def delete(self) -> str:
        return (
            f"mutation($parent: {self.parent_type}, $ids: [ID!]!) {{ "
            f"delete_{self.key}({self.parent_arg}: $parent, sentera_ids: $ids) {{ {RESULT} }} }}"
        )


KINDS = {
    kind.key: kind
    for kind in (
        Kind(
            "fields",
            "organization_sentera_id",
            "ID!",
            "FieldImport",
            "Field",
            "name latitude longitude",
        ),
        Kind(
            "surveys",
            "field_sentera_id",
            "ID!",
            "SurveyImport",
            "Survey",
            "name start_time end_time notes",
        ),
        Kind(
            "images",
            "survey_sentera_id",
            "ID!",
            "ImageImport",
            "Image",
            "filename latitude longitude altitude captured_at size",
        ),
        Kind(
            "mosaics",
            "survey_sentera_id",
            "ID!",
            "MosaicImport",
            "Mosaic",
            "name mosaic_type quality image_status captured_at area { value unit } "
            "is_from_sentera_sensor message released images { results { sentera_id } }",
        ),
        Kind(
            "cogs", "mosaic_sentera_id", "ID!", "CogImport", "Cog", "status clipped error max_zoom"
        ),
        Kind(
            "files",
            "owner",
            "FileOwnerInput!",
            "FileImport",
            "File",
            "filename download_filename file_type path size version "
            "file_owner { owner_type sentera_id }",
        ),
        Kind(
            "feature_sets",
            "owner",
            "FeatureSetOwnerInput!",
            "FeatureSetImport",
            "FeatureSet",
            "name type status feature_set_owner { owner_type sentera_id }",
        ),
        Kind(
            "flight_tasks",
            "organization_sentera_id",
            "ID!",
            "FlightTaskImport",
            "FlightTask",
            "status name notes field { sentera_id } survey { sentera_id }",
        ),
    )
}


def upsert(client: Client, key: str, parent: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = client.data(KINDS[key].upsert(), parent=parent, items=items)[
        f"upsert_{key}"
    ]
    return result


def delete(client: Client, key: str, parent: Any, ids: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = client.data(KINDS[key].delete(), parent=parent, ids=ids)[
        f"delete_{key}"
    ]
    return result


def owner(owner_type: str, sentera_id: str) -> dict[str, str]:
    return {"owner_type": owner_type, "sentera_id": sentera_id}


@dataclass
class Elsewhere:
    """Second parents in the world's organization: a child organization, and a second field
    with a survey and a mosaic (with an image, for the link rule)."""

    org: str
    field: str
    survey: str
    image: str
    mosaic: str

    @classmethod
    def build(cls, engine: Engine, world: World) -> Elsewhere:
        places = cls(sid("OR"), sid("AS"), sid("CO"), sid("IM"), sid("MO"))
        Changeset(actor=world.user).add(
            "organizations", organization_record(places.org, "Child", parent_sentera_id=world.org)
        ).add("fields", field_record(places.field, world.org, name="South 80")).add(
            "surveys", survey_record(places.survey, places.field)
        ).add("images", image_record(places.image, places.survey, "far.jpg")).add(
            "mosaics",
            mosaic_record(places.mosaic, places.survey, mosaic_type="RGB", quality="FULL"),
        ).apply(engine)
        return places


# -- what the scope of a parent holds, as its sync says ----------------------------------------


class Scopes:
    """Reads the items of a scope through sync (or, for feature sets, which have no sync query
    yet, from their rows), and a scope's deltas against the hashes a client holds."""

    def __init__(self, engine: Engine, client: Client, world: World, places: Elsewhere) -> None:
        self.engine, self.client, self.world = engine, client, world
        self.cog_surveys = {world.mosaic: world.survey, places.mosaic: places.survey}

    def _query(self, key: str, parent: Any) -> tuple[str, dict[str, Any]]:
        """The sync query and scope arguments that list the items of `key` below `parent`."""
        if key == "cogs":
            return "sync_cogs", {"survey_sentera_id": self.cog_surveys[parent]}
        if key == "files":
            return "sync_files", {"owners": parent}
        argument = KINDS[key].parent_arg
        return f"sync_{key}", {argument: parent}

    def items(self, key: str, parent: Any) -> dict[str, str]:
        if key == "feature_sets":
            return self._feature_sets(parent)
        query, scope = self._query(key, parent)
        page = self.client.sync(query, scope, [])
        assert page["remaining_count"] == 0 and page["deleted"] == []
        return {item["sentera_id"]: item["content_hash"] for item in page["upserted"]}

    def changes(self, key: str, parent: Any, held: dict[str, str]) -> dict[str, Any]:
        """What a client holding `held` of the scope gets from its next sync."""
        query, scope = self._query(key, parent)
        page = self.client.sync(query, scope, list(held.values()))
        return {
            "upserted": {item["sentera_id"]: item["content_hash"] for item in page["upserted"]},
            "deleted": {item["sentera_id"]: item["content_hash"] for item in page["deleted"]},
        }

    def _feature_sets(self, parent: dict[str, str]) -> dict[str, str]:
        table = t.feature_sets
        owner_row = row(self.engine, parent["sentera_id"])
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.sentera_id, table.c.content_hash).where(
                    table.c.scope_type == parent["owner_type"],
                    table.c.scope_id == owner_row["id"],
                    table.c.deleted_at.is_(None),
                )
            )
            return {r.sentera_id: encode_hash(r.content_hash) for r in rows}


# -- create, update, identical write, move, delete: every kind ---------------------------------


@dataclass
class Case:
    """One kind's walk: the parent it is created in, the parents it moves to, the input of
    the create (every key) and of an update (one key), and what the item then shows."""

    parent: Any
    moves: list[Any]
    create: dict[str, Any]
    shown: dict[str, Any]
    update: dict[str, Any]
    updated: dict[str, Any]


def case(key: str, world: World, places: Elsewhere) -> Case:
    """The walk of `key` in `world` (fresh ids each time)."""
    when = {"start_time": "2024-07-01T10:00:00Z", "end_time": "2024-07-01T10:30:00Z"}
    if key == "fields":
        given = {"name": "West 20", "latitude": 44.5, "longitude": -92.25}
        return Case(world.org, [places.org], given, given, {"name": "W20"}, {"name": "W20"})
    if key == "surveys":
        given = {"name": "July flight", **when, "notes": "windy"}
        update = {"notes": "calm"}
        return Case(world.field, [places.field], given, given, update, update)
    if key == "images":
        given = {
            "filename": "IMG_9.jpg",
            "latitude": -12.5,
            "longitude": 130.75,
            "altitude": 88.0,
            "captured_at": "2024-07-01T10:05:00Z",
            "size": "5000000000",
        }
        shown = dict(given)
        return Case(
            world.survey, [places.survey], given, shown, {"altitude": 1.5}, {"altitude": 1.5}
        )
    if key == "mosaics":
        given = {
            "name": "NDVI",
            "mosaic_type": "NDVI",
            "quality": "PREVIEW",
            "image_status": "PROCESSING",
            "captured_at": "2024-07-01T11:00:00Z",
            "area": {"value": 12.5, "unit": "HECTARE"},
            "is_from_sentera_sensor": True,
            "message": "stitching",
            "released": True,
            "image_sentera_ids": [world.image2],
        }
        shown = {key: value for key, value in given.items() if key != "image_sentera_ids"}
        shown["images"] = {"results": [{"sentera_id": world.image2}]}
        update = {"released": False}
        return Case(world.survey, [places.survey], given, shown, update, update)
    if key == "cogs":
        given = {"status": "FAIL", "clipped": True, "error": "tiling failed", "max_zoom": 22}
        update = {"max_zoom": 18}
        return Case(world.mosaic, [places.mosaic], given, given, update, update)
    if key == "files":
        given = {
            "filename": "notes.pdf",
            "download_filename": "Survey notes.pdf",
            "file_type": "DOCUMENT",
            "path": "docs/notes.pdf",
            "size": "2048",
            "version": 3,
        }
        start = owner("SURVEY", world.survey)
        shown = {**given, "file_type": "document", "file_owner": start}
        moves = [owner("SURVEY", places.survey), owner("MOSAIC", world.mosaic)]
        return Case(start, moves, given, shown, {"version": 4}, {"version": 4})
    if key == "feature_sets":
        given = {"name": "Weeds", "type": "WEEDS_GROUND_TRUTH", "status": "PROCESSING"}
        start = owner("SURVEY", world.survey)
        moves = [owner("SURVEY", places.survey), owner("FIELD", world.field)]
        update = {"status": "NO_CONTENT"}
        return Case(start, moves, given, {**given, "feature_set_owner": start}, update, update)
    assert key == "flight_tasks"
    given = {
        "status": "IN_PROGRESS",
        "name": "Rescout",
        "field_sentera_id": world.field,
        "survey_sentera_id": world.survey,
        "notes": "east edge",
    }
    shown = {
        "status": "IN_PROGRESS",
        "name": "Rescout",
        "notes": "east edge",
        "field": {"sentera_id": world.field},
        "survey": {"sentera_id": world.survey},
    }
    update = {"status": "COMPLETED"}
    return Case(world.org, [places.org], given, shown, update, update)


def values(item: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    return {key: item[key] for key in shown}


@pytest.mark.parametrize("key", list(KINDS))
def test_every_kind_is_created_updated_moved_and_deleted(
    key: str, team: Team, engine: Engine
) -> None:
    world, editor = team.world, team.editor
    places = Elsewhere.build(engine, world)
    scopes = Scopes(engine, editor, world, places)
    walk = case(key, world, places)
    before = scopes.items(key, walk.parent)

    created = upsert(editor, key, walk.parent, [walk.create])
    assert created["failed"] == []
    [item] = created["succeeded"]
    assert item["action"] == "CREATE" and values(item, walk.shown) == walk.shown
    item_id, first_hash = item["sentera_id"], item["content_hash"]
    assert scopes.items(key, walk.parent) == {**before, item_id: first_hash}

    [changed] = upsert(editor, key, walk.parent, [{"sentera_id": item_id, **walk.update}])[
        "succeeded"
    ]
    expected = {**walk.shown, **walk.updated}
    assert changed["action"] == "UPDATE" and values(changed, expected) == expected
    assert changed["content_hash"] != first_hash
    assert scopes.items(key, walk.parent) == {**before, item_id: changed["content_hash"]}

    # The same representation again: a no-op, with the same hash and updated_at.
    again = upsert(editor, key, walk.parent, [{"sentera_id": item_id, **walk.update}])
    assert again == {"succeeded": [changed], "failed": []}

    parent, held = walk.parent, scopes.items(key, walk.parent)
    for new_parent in walk.moves:
        [moved] = upsert(editor, key, new_parent, [{"sentera_id": item_id}])["succeeded"]
        assert moved["sentera_id"] == item_id and moved["action"] == "UPDATE"
        if key != "feature_sets":
            left = scopes.changes(key, parent, held)
            assert left == {"upserted": {}, "deleted": {item_id: held[item_id]}}
        assert item_id not in scopes.items(key, parent)
        held = scopes.items(key, new_parent)
        assert held[item_id] == moved["content_hash"]
        parent = new_parent

    deleted = delete(editor, key, parent, [item_id])
    assert deleted["failed"] == [] and [i["sentera_id"] for i in deleted["succeeded"]] == [item_id]
    if key != "feature_sets":
        assert scopes.changes(key, parent, held) == {
            "upserted": {},
            "deleted": {item_id: held[item_id]},
        }
    assert item_id not in scopes.items(key, parent)
    assert row(engine, item_id)["deleted_at"] is not None


@pytest.fixture
def team(engine: Engine, live_server: LiveServer) -> Team:
    return Team(engine, live_server)
