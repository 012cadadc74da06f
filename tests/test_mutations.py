"""The upsert and delete mutations over real HTTP, on each backend: every type created, updated,
moved and deleted; per-item failures next to written items; limits; roles; sync reflecting
every write exactly, and a rejected write changing nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.builder import Changeset, representation, sid, survey_record
from tests.conftest import LiveServer
from tests.mutation_support import RESULT, Team, data


@pytest.fixture
def team(engine: Engine, live_server: LiveServer) -> Team:
    return Team(engine, live_server)


UPSERT_IMAGES = f"""
mutation($survey: ID!, $images: [ImageImport!]!) {{
  upsert_images(survey_sentera_id: $survey, images: $images) {{ {RESULT} }}
}}"""


def test_valid_images_are_written_next_to_failing_ones(team: Team, engine: Engine) -> None:
    survey = team.world.survey
    before = team.editor.sync("sync_images", {"survey_sentera_id": survey}, [])
    held = [item["content_hash"] for item in before["upserted"]]
    result = team.editor.data(
        UPSERT_IMAGES,
        survey=survey,
        images=[
            {"filename": "new-1.jpg", "latitude": 45.0},
            {"filename": "bad.jpg", "latitude": 91},
            {"latitude": 1.0},
            {"filename": "new-2.jpg", "size": "5000000000"},
        ],
    )["upsert_images"]
    assert [item["action"] for item in result["succeeded"]] == ["CREATE", "CREATE"]
    assert result["failed"] == [
        {
            "index": 1,
            "item": {"filename": "bad.jpg", "latitude": 91},
            "attributes": [
                {
                    "attribute": "latitude",
                    "key": "less_than_or_equal_to",
                    "message": "must be less than or equal to 90",
                    "details": {"count": 90, "value": 91},
                }
            ],
        },
        {
            "index": 2,
            "item": {"latitude": 1.0},
            "attributes": [
                {
                    "attribute": "filename",
                    "key": "blank",
                    "message": "missing required key 'filename' (required when creating images)",
                    "details": None,
                }
            ],
        },
    ]
    created = {item["sentera_id"]: item["content_hash"] for item in result["succeeded"]}
    after = team.editor.sync("sync_images", {"survey_sentera_id": survey}, held)
    assert {item["sentera_id"]: item["content_hash"] for item in after["upserted"]} == created
    assert representation(engine, list(created)[1])["size"] == "5000000000"


def test_update_keeps_left_out_values_and_identical_write_is_a_no_op(
    team: Team, engine: Engine
) -> None:
    image = team.world.image
    before = representation(engine, image)
    same = team.editor.data(
        UPSERT_IMAGES,
        survey=team.world.survey,
        images=[{"sentera_id": image, "filename": before["filename"]}],
    )["upsert_images"]
    assert same["failed"] == []
    assert same["succeeded"][0]["updated_at"] == before["updated_at"]
    assert same["succeeded"][0]["action"] == before["action"] == "CREATE"
    changed = team.editor.data(
        UPSERT_IMAGES, survey=team.world.survey, images=[{"sentera_id": image, "altitude": 99.5}]
    )["upsert_images"]["succeeded"][0]
    after = representation(engine, image)
    assert changed["action"] == after["action"] == "UPDATE"
    assert after["altitude"] == 99.5 and after["filename"] == before["filename"]
    assert after["latitude"] == before["latitude"]


def test_upserting_under_another_parent_moves_the_item(team: Team, engine: Engine) -> None:
    world = team.world
    survey2 = sid("CO")
    Changeset(actor=world.user).add("surveys", survey_record(survey2, world.field)).apply(engine)
    old = team.editor.sync("sync_images", {"survey_sentera_id": world.survey}, [])
    held = {item["sentera_id"]: item["content_hash"] for item in old["upserted"]}
    moved = team.editor.data(UPSERT_IMAGES, survey=survey2, images=[{"sentera_id": world.image}])[
        "upsert_images"
    ]
    assert moved["failed"] == [] and moved["succeeded"][0]["sentera_id"] == world.image
    left = team.editor.sync("sync_images", {"survey_sentera_id": world.survey}, list(held.values()))
    assert left["deleted"] == [{"sentera_id": world.image, "content_hash": held[world.image]}]
    arrived = team.editor.sync("sync_images", {"survey_sentera_id": survey2}, [])
    assert [item["sentera_id"] for item in arrived["upserted"]] == [world.image]


def test_a_viewer_may_not_write_and_nothing_changes(team: Team, engine: Engine) -> None:
    before = data(engine)
    body = team.reader.call(UPSERT_IMAGES, survey=team.world.survey, images=[{"filename": "x"}])
    assert body["data"] == {"upsert_images": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "viewer" in body["errors"][0]["message"]
    # The viewer still reads and syncs.
    assert team.reader.sync("sync_images", {"survey_sentera_id": team.world.survey}, [])["upserted"]
    assert data(engine) == before


def test_another_tenants_scope_and_items_look_missing(team: Team, engine: Engine) -> None:
    before = data(engine)
    hidden = team.outsider.call(UPSERT_IMAGES, survey=team.world.survey, images=[{"filename": "x"}])
    missing = team.outsider.call(UPSERT_IMAGES, survey=sid("CO"), images=[{"filename": "x"}])
    for body in (hidden, missing):
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert hidden["errors"][0]["message"].replace(team.world.survey, "?") == missing["errors"][0][
        "message"
    ].replace(missing["errors"][0]["message"].split("'")[1], "?")
    # Naming another tenant's image inside one's own survey: answered as a missing image.
    result = team.outsider.data(
        UPSERT_IMAGES,
        survey=team.other_survey,
        images=[{"sentera_id": team.world.image}, {"sentera_id": sid("IM")}],
    )["upsert_images"]
    assert result["succeeded"] == []
    keys = [error["attributes"][0]["key"] for error in result["failed"]]
    assert keys == ["not_found", "not_found"]
    assert data(engine) == before


def test_over_the_limit_is_one_error_and_writes_nothing(team: Team, engine: Engine) -> None:
    before = data(engine)
    body = team.editor.call(
        UPSERT_IMAGES,
        survey=team.world.survey,
        images=[{"filename": f"{n}.jpg"} for n in range(1001)],
    )
    assert body["data"] == {"upsert_images": None}
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_ITEMS"
    assert "at most 1,000" in body["errors"][0]["message"]
    assert data(engine) == before


DELETE_IMAGES = f"""
mutation($survey: ID!, $ids: [ID!]!) {{
  delete_images(survey_sentera_id: $survey, sentera_ids: $ids) {{ {RESULT} }}
}}"""


def test_delete_reports_ids_outside_the_scope_and_syncs_as_deleted(team: Team) -> None:
    world = team.world
    scope = {"survey_sentera_id": world.survey}
    held = {
        i["sentera_id"]: i["content_hash"]
        for i in team.editor.sync("sync_images", scope, [])["upserted"]
    }
    result = team.editor.data(
        DELETE_IMAGES, survey=world.survey, ids=[world.image, world.mosaic, sid("IM")]
    )["delete_images"]
    assert [item["sentera_id"] for item in result["succeeded"]] == [world.image]
    assert [(e["index"], e["attributes"][0]["key"]) for e in result["failed"]] == [
        (1, "invalid"),
        (2, "not_found"),
    ]
    after = team.editor.sync("sync_images", scope, list(held.values()))
    assert after["deleted"] == [{"sentera_id": world.image, "content_hash": held[world.image]}]
    again = team.editor.data(DELETE_IMAGES, survey=world.survey, ids=[world.image])
    assert [i["sentera_id"] for i in again["delete_images"]["succeeded"]] == [world.image]
