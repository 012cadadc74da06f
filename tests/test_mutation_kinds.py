"""Every upsert and delete mutation over real HTTP, on each backend: each kind created, updated,
written again unchanged, moved and deleted, with sync reflecting each write exactly; each rule
broken on purpose, with nothing written; limits; roles from changeset memberships; and the
request-level rules (several fields in one document, GET, tombstoned scopes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.hashing import encode_hash
from fieldsync.storage import tables as t
from tests.builder import (
    Changeset,
    World,
    field_record,
    image_record,
    mosaic_record,
    organization_record,
    representation,
    row,
    sid,
    survey_record,
)
from tests.conftest import LiveServer
from tests.mutation_support import ITEM, RESULT, Client, Team, data, member

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


@pytest.fixture
def team(engine: Engine, live_server: LiveServer) -> Team:
    return Team(engine, live_server)


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
        given: dict[str, Any] = {"name": "West 20", "latitude": 44.5, "longitude": -92.25}
        return Case(world.org, [places.org], given, given, {"name": "W20"}, {"name": "W20"})
    if key == "surveys":
        given = {"name": "July flight", **when, "notes": "windy"}
        update: dict[str, Any] = {"notes": "calm"}
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


def hashes(client: Client, query: str, scope: dict[str, Any]) -> dict[str, str]:
    page = client.sync(query, scope, [])
    return {item["sentera_id"]: item["content_hash"] for item in page["upserted"]}


def test_deletes_cascade_as_in_changesets_and_sync_says_so(team: Team, engine: Engine) -> None:
    world, editor = team.world, team.editor
    in_survey = {"survey_sentera_id": world.survey}
    cogs, mosaics = (
        hashes(editor, "sync_cogs", in_survey),
        hashes(editor, "sync_mosaics", in_survey),
    )
    images = hashes(editor, "sync_images", in_survey)
    surveys = hashes(editor, "sync_surveys", {"field_sentera_id": world.field})

    # A mosaic goes with its COGs and files; its survey's images stay.
    result = delete(editor, "mosaics", world.survey, [world.mosaic])
    assert [i["sentera_id"] for i in result["succeeded"]] == [world.mosaic]
    assert editor.sync("sync_cogs", in_survey, list(cogs.values()))["deleted"] == [
        {"sentera_id": world.cog, "content_hash": cogs[world.cog]}
    ]
    assert editor.sync("sync_mosaics", in_survey, list(mosaics.values()))["deleted"] == [
        {"sentera_id": world.mosaic, "content_hash": mosaics[world.mosaic]}
    ]
    assert hashes(editor, "sync_images", in_survey) == images
    mosaic_files = (
        "query($o: [FileOwnerInput!]!) { sync_files(owners: $o, content_hashes: []) "
        "{ upserted { sentera_id } failed { key } } }"
    )
    found = editor.data(mosaic_files, o=[owner("MOSAIC", world.mosaic)])["sync_files"]
    assert found == {"upserted": [], "failed": [{"key": "invalid_object"}]}

    # A survey goes with everything below it: its syncs answer NOT_FOUND, its field's reports it.
    result = delete(editor, "surveys", world.field, [world.survey])
    assert [i["sentera_id"] for i in result["succeeded"]] == [world.survey]
    left = editor.sync("sync_surveys", {"field_sentera_id": world.field}, list(surveys.values()))
    assert left["deleted"] == [{"sentera_id": world.survey, "content_hash": surveys[world.survey]}]
    for query in ("sync_images", "sync_mosaics", "sync_cogs"):
        body = editor.call(
            f"query($s: ID!) {{ {query}(survey_sentera_id: $s, content_hashes: []) "
            "{ remaining_count } }",
            s=world.survey,
        )
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", query
    for item in (world.image, world.image2, world.survey_file, world.feature_set, world.fs_file):
        assert row(engine, item)["deleted_at"] is not None, item
    for item in (world.field, world.field_file, world.field_feature_set, world.task):
        assert row(engine, item)["deleted_at"] is None, item
    # The flight task that pointed at the survey stays, without it, as a new version.
    assert representation(engine, world.task)["survey"] is None
    assert hashes(editor, "sync_flight_tasks", {"organization_sentera_id": world.org}) == {
        world.task: encode_hash(row(engine, world.task)["content_hash"])
    }


# -- every rule broken on purpose: reported by index and attribute, nothing written ------------


def faults(result: dict[str, Any]) -> list[tuple[int, str, str, Any]]:
    """(index, attribute, key, details) of every fault, with nothing written."""
    assert result["succeeded"] == []
    return [
        (error["index"], attribute["attribute"], attribute["key"], attribute["details"])
        for error in result["failed"]
        for attribute in error["attributes"]
    ]


def test_broken_rules_are_reported_per_item_and_nothing_is_written(
    team: Team, engine: Engine
) -> None:
    world, editor = team.world, team.editor
    places = Elsewhere.build(engine, world)
    before = data(engine)
    bad_images: list[dict[str, Any]] = [
        {"filename": "a.jpg", "latitude": 91},
        {"filename": "b.jpg", "longitude": -180.5},
        {"latitude": 1.0},
        {"sentera_id": sid("IM")},
        {"sentera_id": world.mosaic},
    ]
    assert faults(upsert(editor, "images", world.survey, bad_images)) == [
        (0, "latitude", "less_than_or_equal_to", {"count": 90, "value": 91}),
        (1, "longitude", "greater_than_or_equal_to", {"count": -180, "value": -180.5}),
        (2, "filename", "blank", None),
        (3, "sentera_id", "not_found", {"sentera_id": bad_images[3]["sentera_id"]}),
        (4, "sentera_id", "invalid", None),
    ]
    assert faults(upsert(editor, "fields", world.org, [{"latitude": 1.0}])) == [
        (0, "name", "blank", None)
    ]
    other_tenants = [{"sentera_id": team.other_survey, "name": "mine"}]
    assert faults(upsert(editor, "surveys", world.field, other_tenants)) == [
        (0, "sentera_id", "not_found", {"sentera_id": team.other_survey})
    ]
    mosaics: list[dict[str, Any]] = [
        {"mosaic_type": "RGB", "quality": "FULL", "image_sentera_ids": [world.image, places.image]},
        {"name": "incomplete"},
    ]
    assert faults(upsert(editor, "mosaics", world.survey, mosaics)) == [
        (0, "image_sentera_ids[1]", "invalid", None),
        (1, "mosaic_type", "blank", None),
        (1, "quality", "blank", None),
    ]
    cogs: list[dict[str, Any]] = [{"status": "SUCCESS", "max_zoom": 31}, {"max_zoom": -1}]
    assert faults(upsert(editor, "cogs", world.mosaic, cogs)) == [
        (0, "max_zoom", "less_than_or_equal_to", {"count": 30, "value": 31}),
        (1, "max_zoom", "greater_than_or_equal_to", {"count": 0, "value": -1}),
        (1, "status", "blank", None),
    ]
    files: list[dict[str, Any]] = [
        {"filename": "f", "file_type": "OTHER", "version": -1},
        {"file_type": "OTHER"},
    ]
    assert faults(upsert(editor, "files", owner("SURVEY", world.survey), files)) == [
        (0, "version", "greater_than_or_equal_to", {"count": 0, "value": -1}),
        (1, "filename", "blank", None),
    ]
    assert faults(upsert(editor, "feature_sets", owner("FIELD", world.field), [{"name": "x"}])) == [
        (0, "type", "blank", None)
    ]
    missing_survey = sid("CO")
    tasks: list[dict[str, Any]] = [
        {"status": "OPEN", "field_sentera_id": team.other_field},
        {"status": "OPEN", "survey_sentera_id": missing_survey},
        {"name": "no status"},
    ]
    assert faults(upsert(editor, "flight_tasks", world.org, tasks)) == [
        (0, "field_sentera_id", "not_found", {"sentera_id": team.other_field}),
        (1, "survey_sentera_id", "not_found", {"sentera_id": missing_survey}),
        (2, "status", "blank", None),
    ]
    assert data(engine) == before


def test_bad_enums_and_mismatched_owners_write_nothing(
    team: Team, engine: Engine, live_server: LiveServer
) -> None:
    world, editor = team.world, team.editor
    before = data(engine)
    item = {"mosaic_type": "SQUARE", "quality": "FULL"}
    response = live_server.post(
        KINDS["mosaics"].upsert(), {"parent": world.survey, "items": [item]}, editor.token
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "[0].mosaic_type" in error["message"] and "SQUARE" in error["message"]
    inline = (
        f'mutation {{ upsert_cogs(mosaic_sentera_id: "{world.mosaic}", cogs: [{{status: DONE}}]) '
        f"{{ {RESULT} }} }}"
    )
    response = live_server.post(inline, None, editor.token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    # An owner whose id is of another type than owner_type names no such owner.
    for key, wrong in (
        ("files", owner("MOSAIC", world.survey)),
        ("feature_sets", owner("FIELD", world.survey)),
    ):
        body = editor.call(KINDS[key].upsert(), parent=wrong, items=[{"sentera_id": None}])
        assert body["data"] == {f"upsert_{key}": None}
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert body["errors"][0]["message"] == (
            f"{wrong['owner_type'].lower()} {world.survey!r} not found"
        )
    assert data(engine) == before


# -- limits -------------------------------------------------------------------------------------

LIMITS = {key: 2000 if key in ("mosaics", "flight_tasks") else 1000 for key in KINDS}


def parents(world: World) -> dict[str, Any]:
    """A parent of each kind in the world."""
    return {
        "fields": world.org,
        "surveys": world.field,
        "images": world.survey,
        "mosaics": world.survey,
        "cogs": world.mosaic,
        "files": owner("SURVEY", world.survey),
        "feature_sets": owner("SURVEY", world.survey),
        "flight_tasks": world.org,
    }


def test_over_the_limit_is_one_error_and_writes_nothing(team: Team, engine: Engine) -> None:
    world, editor = team.world, team.editor
    before = data(engine)
    for key, parent in parents(world).items():
        limit = LIMITS[key]
        body = editor.call(KINDS[key].upsert(), parent=parent, items=[{}] * (limit + 1))
        assert body["data"] == {f"upsert_{key}": None}, key
        [error] = body["errors"]
        assert error["extensions"]["code"] == "TOO_MANY_ITEMS"
        assert error["message"] == (
            f"upsert_{key} takes at most {limit:,} {key} a call; got {limit + 1:,}: split the "
            "list into several calls"
        )
        body = editor.call(KINDS[key].delete(), parent=parent, ids=[world.image] * 1001)
        assert body["data"] == {f"delete_{key}": None}
        assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_ITEMS"
        assert (
            f"delete_{key} takes at most 1,000 ids a call; got 1,001"
            in body["errors"][0]["message"]
        )
    # Exactly at the limit is planned item by item (every one of these lacks a required key).
    for key in ("mosaics", "flight_tasks"):
        result = upsert(editor, key, parents(world)[key], [{}] * LIMITS[key])
        assert len(result["failed"]) == LIMITS[key] and result["succeeded"] == []
    unknown = [sid("IM") for _ in range(1000)]
    result = delete(editor, "images", world.survey, unknown)
    assert [error["attributes"][0]["key"] for error in result["failed"]] == ["not_found"] * 1000
    assert data(engine) == before


def test_a_delete_of_an_id_in_another_scope_is_reported_and_not_done(
    team: Team, engine: Engine
) -> None:
    world, editor = team.world, team.editor
    places = Elsewhere.build(engine, world)
    before = data(engine)
    elsewhere: dict[str, tuple[Any, str]] = {
        "fields": (places.org, world.field),
        "surveys": (places.field, world.survey),
        "images": (places.survey, world.image),
        "mosaics": (places.survey, world.mosaic),
        "cogs": (places.mosaic, world.cog),
        "files": (owner("MOSAIC", world.mosaic), world.survey_file),
        "feature_sets": (owner("FIELD", world.field), world.feature_set),
        "flight_tasks": (places.org, world.task),
    }
    for key, (parent, item) in elsewhere.items():
        result = delete(editor, key, parent, [item])
        assert result["succeeded"] == [], key
        [error] = result["failed"]
        assert error["index"] == 0 and error["item"] == item
        [attribute] = error["attributes"]
        assert (attribute["attribute"], attribute["key"]) == ("sentera_id", "not_found")
        assert attribute["details"] == {"sentera_id": item}
    assert data(engine) == before


# -- roles --------------------------------------------------------------------------------------


def mutations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """Every mutation with valid arguments in the world: (field name, document, variables)."""
    items: dict[str, dict[str, Any]] = {
        "fields": {"name": "F"},
        "surveys": {"name": "S"},
        "images": {"filename": "i.jpg"},
        "mosaics": {"mosaic_type": "RGB", "quality": "FULL"},
        "cogs": {"status": "PENDING"},
        "files": {"filename": "f.txt", "file_type": "OTHER"},
        "feature_sets": {"name": "FS", "type": "UNKNOWN"},
        "flight_tasks": {"status": "OPEN"},
    }
    victims = {
        "fields": world.field,
        "surveys": world.survey,
        "images": world.image,
        "mosaics": world.mosaic,
        "cogs": world.cog,
        "files": world.survey_file,
        "feature_sets": world.feature_set,
        "flight_tasks": world.task,
    }
    found: list[tuple[str, str, dict[str, Any]]] = []
    for key, parent in parents(world).items():
        kind = KINDS[key]
        found.append((f"upsert_{key}", kind.upsert(), {"parent": parent, "items": [items[key]]}))
        found.append((f"delete_{key}", kind.delete(), {"parent": parent, "ids": [victims[key]]}))
    return found


def test_a_viewer_syncs_but_every_mutation_is_forbidden(team: Team, engine: Engine) -> None:
    world = team.world
    before = data(engine)
    for name, document, variables in mutations(world):
        body = team.reader.call(document, **variables)
        assert body["data"] == {name: None}, name
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", name
        assert "your role in its organization is viewer" in error["message"]
    assert data(engine) == before
    assert team.reader.sync("sync_images", {"survey_sentera_id": world.survey}, [])["upserted"]
    assert team.reader.sync("sync_fields", {"organization_sentera_id": world.org}, [])["upserted"]


def test_editors_and_admins_write_and_a_parent_role_reaches_the_children(
    team: Team, engine: Engine, live_server: LiveServer
) -> None:
    world = team.world
    child = Elsewhere.build(engine, world).org
    editor = member(engine, live_server, world.user, {world.org: "editor"})
    admin = member(engine, live_server, world.user, {world.org: "admin"})
    mixed = member(engine, live_server, world.user, {world.org: "viewer", child: "editor"})
    for client in (editor, admin):
        for org in (world.org, child):  # the parent's role applies to its child
            [task] = upsert(client, "flight_tasks", org, [{"status": "OPEN"}])["succeeded"]
            assert task["action"] == "CREATE"
            [field] = upsert(client, "fields", org, [{"name": "by role"}])["succeeded"]
            assert delete(client, "fields", org, [field["sentera_id"]])["failed"] == []
    # A viewer of the parent who edits the child writes in the child only.
    [written] = upsert(mixed, "fields", child, [{"name": "child field"}])["succeeded"]
    assert representation(engine, written["sentera_id"])["name"] == "child field"
    before = data(engine)
    body = mixed.call(KINDS["fields"].upsert(), parent=world.org, items=[{"name": "no"}])
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Moving the parent's field into the child would change the parent: forbidden per item.
    result = upsert(mixed, "fields", child, [{"sentera_id": world.field}])
    assert faults(result) == [(0, "sentera_id", "forbidden", {"sentera_id": world.field})]
    assert data(engine) == before


def test_another_tenant_is_answered_exactly_like_a_missing_scope(
    team: Team, engine: Engine
) -> None:
    world = team.world
    before = data(engine)
    missing = World.fresh()
    hidden_ids = {getattr(world, name): name for name in vars(world)}
    missing_ids = {getattr(missing, name): name for name in vars(missing)}
    for (name, document, variables), (_, _, absent) in zip(
        mutations(world), mutations(missing), strict=True
    ):
        hidden = team.outsider.call(document, **variables)
        nowhere = team.outsider.call(document, **absent)
        assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND", name
        assert _without(hidden, hidden_ids) == _without(nowhere, missing_ids), name
    assert data(engine) == before


def _without(body: dict[str, Any], ids: dict[str, str]) -> str:
    """The body with each id replaced by its name in the world, and no request id."""
    for error in body["errors"]:
        error["extensions"].pop("request_id", None)
    text = json.dumps(body, sort_keys=True)
    for sentera_id, name in ids.items():
        text = text.replace(sentera_id, name)
    return text


def test_changesets_validate_memberships(team: Team, engine: Engine) -> None:
    world = team.world
    before = data(engine)

    def issues(user: dict[str, Any]) -> list[tuple[str, str]]:
        user = {"sentera_id": sid("US"), "email": "new@acme.test", **user}
        with pytest.raises(ChangesetError) as raised:
            apply_changeset(engine, Changeset(actor=world.user).add("users", user).document())
        return [(issue.path, issue.key) for issue in raised.value.issues]

    membership = {"organization_sentera_id": world.org, "role": "editor"}
    assert issues({"memberships": [{**membership, "role": "owner"}]}) == [
        ("upsert.users[0].memberships[0].role", "inclusion")
    ]
    both = {"memberships": [membership], "organization_sentera_ids": [world.org]}
    assert issues(both) == [("upsert.users[0].memberships", "invalid")]
    assert issues({"memberships": []}) == [("upsert.users[0].memberships", "blank")]
    assert issues({}) == [("upsert.users[0]", "blank")]
    missing = sid("OR")
    assert issues({"memberships": [{**membership, "organization_sentera_id": missing}]}) == [
        ("upsert.users[0].memberships[0].organization_sentera_id", "not_found")
    ]
    assert data(engine) == before


# -- requests -----------------------------------------------------------------------------------


def test_mutation_fields_of_one_document_are_all_written_in_order(
    team: Team, engine: Engine
) -> None:
    world, editor = team.world, team.editor
    image = {"sentera_id": world.image}
    document = f"""mutation($org: ID!, $survey: ID!, $first: [ImageImport!]!,
        $second: [ImageImport!]!) {{
      field: upsert_fields(organization_sentera_id: $org, fields: [{{name: "Both"}}]) {{ {RESULT} }}
      first: upsert_images(survey_sentera_id: $survey, images: $first) {{ {RESULT} }}
      second: upsert_images(survey_sentera_id: $survey, images: $second) {{ {RESULT} }}
    }}"""
    result = editor.data(
        document,
        org=world.org,
        survey=world.survey,
        first=[{**image, "altitude": 1.0}],
        second=[{**image, "altitude": 2.0}],
    )
    assert list(result) == ["field", "first", "second"]
    assert all(part["failed"] == [] for part in result.values())
    [field] = result["field"]["succeeded"]
    assert representation(engine, field["sentera_id"])["name"] == "Both"
    first, second = result["first"]["succeeded"][0], result["second"]["succeeded"][0]
    assert first["content_hash"] != second["content_hash"]
    assert representation(engine, world.image)["altitude"] == 2.0
    images = hashes(editor, "sync_images", {"survey_sentera_id": world.survey})
    assert images[world.image] == second["content_hash"]


def test_a_get_request_never_runs_a_mutation(
    team: Team, engine: Engine, live_server: LiveServer
) -> None:
    before = data(engine)
    document = KINDS["fields"].upsert()
    variables = {"parent": team.world.org, "items": [{"name": "by GET"}]}
    response = live_server.http.get(
        live_server.url,
        params={"query": document, "variables": json.dumps(variables)},
        headers={"Authorization": f"Bearer {team.editor.token}"},
    )
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert data(engine) == before


def test_a_mutation_of_a_tombstoned_scope_is_not_found(team: Team, engine: Engine) -> None:
    world, editor = team.world, team.editor
    assert delete(editor, "surveys", world.field, [world.survey])["failed"] == []
    before = data(engine)
    for key in ("images", "mosaics", "files", "feature_sets"):
        parent = owner("SURVEY", world.survey) if key in ("files", "feature_sets") else world.survey
        for document, variables in (
            (KINDS[key].upsert(), {"items": [{"sentera_id": None}]}),
            (KINDS[key].delete(), {"ids": [world.image]}),
        ):
            body = editor.call(document, parent=parent, **variables)
            [error] = body["errors"]
            assert error["extensions"]["code"] == "NOT_FOUND", key
            assert error["message"] == f"survey {world.survey!r} not found"
    assert data(engine) == before


def test_files_and_feature_sets_are_written_under_every_owner_type(
    team: Team, engine: Engine
) -> None:
    world, editor = team.world, team.editor
    file_owners = [
        owner("SURVEY", world.survey),
        owner("MOSAIC", world.mosaic),
        owner("FIELD", world.field),
        owner("FEATURE_SET", world.feature_set),
        owner("LOGO", world.logo),
    ]
    for parent in file_owners:
        result = upsert(editor, "files", parent, [{"filename": "a.txt", "file_type": "OTHER"}])
        [item] = result["succeeded"]
        assert item["file_owner"] == parent and result["failed"] == []
        listed = hashes(editor, "sync_files", {"owners": [parent]})
        assert listed[item["sentera_id"]] == item["content_hash"]
    scopes = Scopes(engine, editor, world, Elsewhere.build(engine, world))
    for parent in (
        owner("SURVEY", world.survey),
        owner("FIELD", world.field),
        owner("ORGANIZATION", world.org),
    ):
        result = upsert(editor, "feature_sets", parent, [{"name": "n", "type": "UNKNOWN"}])
        [item] = result["succeeded"]
        assert item["feature_set_owner"] == parent and item["status"] == "SUCCESS"
        assert scopes.items("feature_sets", parent)[item["sentera_id"]] == item["content_hash"]
