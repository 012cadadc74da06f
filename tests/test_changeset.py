"""The changeset contract (docs: spec/changeset.md), on SQLite and on PostgreSQL.

Every test goes through `apply_changeset` and reads the result back from the tables.
"""

from __future__ import annotations

import copy
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

from fieldsync.changeset import ChangesetError, ChangesetSummary, apply_changeset
from fieldsync.changeset import apply as apply_module
from fieldsync.hashing import parse_client_hashes
from fieldsync.ids import SENTERA_ID_RE, TypeCode, type_code_of
from fieldsync.model import enums
from fieldsync.model import kinds as k
from fieldsync.storage import tables as t
from fieldsync.storage.database import read_snapshot
from fieldsync.sync.engine import Scope, compute_page
from tests.builder import (
    T0,
    T1,
    T2,
    Changeset,
    World,
    build_world,
    file_record,
    image_record,
    is_deleted,
    organization_record,
    representation,
    row,
    row_counts,
    sid,
    snapshot,
    survey_record,
    user_record,
    versions_of,
)

# -- helpers -------------------------------------------------------------------------------


def rejected(engine: Engine, document: Any) -> list[str]:
    """The issues of a rejected changeset, after checking that it wrote nothing at all."""
    before = snapshot(engine)
    with pytest.raises(ChangesetError) as caught:
        apply_changeset(engine, document, now=T2)
    assert snapshot(engine) == before
    return [str(issue) for issue in caught.value.issues]


def org_and_user(engine: Engine) -> tuple[str, str]:
    org, user = sid("OR"), sid("US")
    Changeset().add("organizations", organization_record(org, "Acme")).add(
        "users", user_record(user, "a@acme.test", [org])
    ).apply(engine, now=T0)
    return org, user


def field_doc(actor: str | None, org: str, **record: Any) -> dict[str, Any]:
    return {
        "actor_sentera_id": actor,
        "upsert": {"fields": [{"organization_sentera_id": org, "name": "F", **record}]},
    }


def hash_of(engine: Engine, sentera_id: str) -> bytes:
    value: bytes = row(engine, sentera_id)["content_hash"]
    return value


MOSAIC_TYPES = ", ".join(enums.MOSAIC_TYPE)


# -- creating --------------------------------------------------------------------------------


def check_every_kind_created_with_required_fields_only(engine: Engine) -> None:
    ids = {code: sid(code.value) for code in TypeCode}
    o, u = ids[TypeCode.ORGANIZATION], ids[TypeCode.USER]
    document = {
        # The actor may be a user the same changeset creates.
        "actor_sentera_id": u,
        "upsert": {
            "organizations": [{"sentera_id": o, "name": "Acme"}],
            "users": [{"sentera_id": u, "email": "a@acme.test", "organization_sentera_ids": [o]}],
            "fields": [
                {"sentera_id": ids[TypeCode.FIELD], "organization_sentera_id": o, "name": "F"}
            ],
            "surveys": [
                {"sentera_id": ids[TypeCode.SURVEY], "field_sentera_id": ids[TypeCode.FIELD]}
            ],
            "images": [
                {
                    "sentera_id": ids[TypeCode.IMAGE],
                    "survey_sentera_id": ids[TypeCode.SURVEY],
                    "filename": "IMG_1.jpg",
                }
            ],
            "mosaics": [
                {
                    "sentera_id": ids[TypeCode.MOSAIC],
                    "survey_sentera_id": ids[TypeCode.SURVEY],
                    "mosaic_type": "NDVI",
                    "quality": "PREVIEW",
                }
            ],
            "cogs": [
                {
                    "sentera_id": ids[TypeCode.COG],
                    "mosaic_sentera_id": ids[TypeCode.MOSAIC],
                    "status": "PENDING",
                }
            ],
            "feature_sets": [
                {
                    "sentera_id": ids[TypeCode.FEATURE_SET],
                    "owner_type": "ORGANIZATION",
                    "owner_sentera_id": o,
                    "name": "Plots",
                    "type": "PLOT_LAYOUT",
                }
            ],
            "logos": [{"sentera_id": ids[TypeCode.LOGO], "organization_sentera_id": o}],
            "files": [
                {
                    "sentera_id": ids[TypeCode.FILE],
                    "owner_type": "LOGO",
                    "owner_sentera_id": ids[TypeCode.LOGO],
                    "filename": "logo.png",
                    "file_type": "IMAGE",
                }
            ],
            "flight_tasks": [
                {
                    "sentera_id": ids[TypeCode.FLIGHT_TASK],
                    "organization_sentera_id": o,
                    "status": "OPEN",
                }
            ],
        },
    }
    summary = apply_changeset(engine, document, now=T0)
    assert summary == ChangesetSummary(created=len(TypeCode))
    assert summary.line() == f"created {len(TypeCode)}, updated 0, unchanged 0, deleted 0"

    user_id = row(engine, u)["id"]
    for code, sentera_id in ids.items():
        item = row(engine, sentera_id)
        assert item["created_at"] == T0 and item["updated_at"] == T0
        assert item["deleted_at"] is None
        kind = k.KIND_BY_CODE[code]
        if kind.sync is None:
            continue
        assert item["created_by_id"] == user_id
        assert item["updated_by_id"] == user_id
        assert len(item["content_hash"]) == 12 and item["content_hash"] != bytes(12)
        rep = representation(engine, sentera_id)
        assert rep["sentera_id"] == sentera_id
        assert rep["created_at"] == "2024-06-01T12:00:00Z"
        assert rep["updated_at"] == "2024-06-01T12:00:00Z"
        assert rep["created_by"] == {"sentera_id": u}
        assert rep["updated_by"] == {"sentera_id": u}
        assert set(versions_of(engine, sentera_id)) == {item["content_hash"]}

    # Defaults of the optional keys.
    mosaic = row(engine, ids[TypeCode.MOSAIC])
    assert mosaic["image_status"] == "AVAILABLE"
    assert mosaic["is_from_sentera_sensor"] is False and mosaic["released"] is False
    assert mosaic["area_value"] is None and mosaic["area_unit"] is None
    assert representation(engine, ids[TypeCode.MOSAIC])["images"] == {"total_count": 0}
    cog = row(engine, ids[TypeCode.COG])
    assert cog["clipped"] is False and cog["max_zoom"] is None and cog["error"] is None
    assert row(engine, ids[TypeCode.FEATURE_SET])["status"] == "SUCCESS"
    the_file = row(engine, ids[TypeCode.FILE])
    assert the_file["download_filename"] == "logo.png"
    assert representation(engine, ids[TypeCode.FILE])["action"] == "CREATE"
    task = row(engine, ids[TypeCode.FLIGHT_TASK])
    assert task["field_id"] is None and task["survey_id"] is None and task["name"] is None

    # References and scope keys.
    org_id, field_id = row(engine, o)["id"], row(engine, ids[TypeCode.FIELD])["id"]
    survey_id = row(engine, ids[TypeCode.SURVEY])["id"]
    expected_scopes = {
        TypeCode.FIELD: ("ORGANIZATION", org_id),
        TypeCode.SURVEY: ("FIELD", field_id),
        TypeCode.IMAGE: ("SURVEY", survey_id),
        TypeCode.MOSAIC: ("SURVEY", survey_id),
        TypeCode.COG: ("SURVEY", survey_id),
        TypeCode.FEATURE_SET: ("ORGANIZATION", org_id),
        TypeCode.FILE: ("LOGO", row(engine, ids[TypeCode.LOGO])["id"]),
        TypeCode.FLIGHT_TASK: ("ORGANIZATION", org_id),
    }
    for code, scope in expected_scopes.items():
        item = row(engine, ids[code])
        assert (item["scope_type"], item["scope_id"]) == scope, code
        (version,) = versions_of(engine, ids[code]).values()
        assert (version["scope_type"], version["scope_id"]) == scope, code
    assert row(engine, ids[TypeCode.COG])["mosaic_id"] == row(engine, ids[TypeCode.MOSAIC])["id"]
    with engine.connect() as conn:
        memberships = conn.execute(select(t.memberships)).mappings().all()
    assert [(m["user_id"], m["organization_id"]) for m in memberships] == [(user_id, org_id)]


def check_empty_changeset_changes_nothing(engine: Engine) -> None:
    before = row_counts(engine)
    summary = apply_changeset(engine, {}, now=T0)
    assert summary == ChangesetSummary()
    assert summary.line() == "created 0, updated 0, unchanged 0, deleted 0"
    assert apply_changeset(engine, {"upsert": {}, "delete": []}) == ChangesetSummary()
    assert row_counts(engine) == before


def test_every_kind_created_with_required_fields_only(engine: Engine) -> None:
    check_every_kind_created_with_required_fields_only(engine)
    check_empty_changeset_changes_nothing(engine)


def check_the_spec_example_with_every_optional_key(engine: Engine) -> None:
    world = build_world(engine)
    image = row(engine, world.image)
    assert image["latitude"] == 45.328761 and image["altitude"] == 120.5
    assert image["captured_at"] == datetime(2024, 6, 1, 14, 3, 11, tzinfo=UTC)
    survey = row(engine, world.survey)
    assert survey["start_time"] == datetime(2024, 6, 1, 14, tzinfo=UTC)
    assert survey["end_time"] == datetime(2024, 6, 1, 14, 40, tzinfo=UTC)
    mosaic = representation(engine, world.mosaic)
    assert mosaic["area"] == {"value": 40.2, "unit": "ACRE"}
    assert mosaic["images"] == {"total_count": 2}
    assert mosaic["survey"] == {"sentera_id": world.survey}
    assert representation(engine, world.cog)["max_zoom"] == 19
    assert representation(engine, world.cog)["survey"] == {"sentera_id": world.survey}
    assert representation(engine, world.mosaic_file)["file_owner"] == {
        "owner_type": "MOSAIC",
        "sentera_id": world.mosaic,
    }
    task = representation(engine, world.task)
    assert task["field"] == {"sentera_id": world.field}
    assert task["survey"] == {"sentera_id": world.survey}
    # Every sync item got its own hash.
    hashes = {hash_of(engine, item) for item in world.sync_items}
    assert len(hashes) == len(world.sync_items)


def check_changeset_documents_are_not_modified(engine: Engine) -> None:
    world = World.fresh()
    document = world.document()
    original = copy.deepcopy(document)
    apply_changeset(engine, document, now=T0)
    assert document == original


def test_the_spec_example_with_every_optional_key(engine: Engine) -> None:
    check_the_spec_example_with_every_optional_key(engine)
    check_changeset_documents_are_not_modified(engine)


def test_parent_created_later_in_the_same_changeset(engine: Engine) -> None:
    _, user = org_and_user(engine)
    grandchild, child, parent = sid("OR"), sid("OR"), sid("OR")
    field, survey, image = sid("AS"), sid("CO"), sid("IM")
    document = {
        "actor_sentera_id": user,
        # Children are listed before their parents, and kinds in reverse order.
        "upsert": {
            "images": [image_record(image, survey, "a.jpg")],
            "surveys": [{"sentera_id": survey, "field_sentera_id": field}],
            "fields": [{"sentera_id": field, "organization_sentera_id": child, "name": "F"}],
            "organizations": [
                {"sentera_id": grandchild, "name": "GC", "parent_sentera_id": child},
                {"sentera_id": child, "name": "C", "parent_sentera_id": parent},
                {"sentera_id": parent, "name": "P"},
            ],
        },
    }
    assert apply_changeset(engine, document, now=T1).created == 6
    assert row(engine, grandchild)["parent_id"] == row(engine, child)["id"]
    assert row(engine, child)["parent_id"] == row(engine, parent)["id"]
    assert row(engine, parent)["parent_id"] is None
    assert row(engine, image)["survey_id"] == row(engine, survey)["id"]


def test_record_without_sentera_id_gets_a_generated_id(engine: Engine) -> None:
    org, user = org_and_user(engine)
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "organizations": [{"name": "Generated org", "parent_sentera_id": org}],
                "fields": [{"organization_sentera_id": org, "name": "Generated field"}],
            },
        },
        now=T1,
    )
    assert summary.created == 2
    with engine.connect() as conn:
        org_sid = conn.execute(
            select(t.organizations.c.sentera_id).where(t.organizations.c.name == "Generated org")
        ).scalar_one()
        field_sid = conn.execute(
            select(t.fields.c.sentera_id).where(t.fields.c.name == "Generated field")
        ).scalar_one()
    assert SENTERA_ID_RE.match(org_sid) and type_code_of(org_sid) is TypeCode.ORGANIZATION
    assert SENTERA_ID_RE.match(field_sid) and type_code_of(field_sid) is TypeCode.FIELD
    assert representation(engine, field_sid)["sentera_id"] == field_sid
    # Each record without an id is a new item.
    apply_changeset(engine, field_doc(user, org, name="Generated field"), now=T1)
    with engine.connect() as conn:
        names = conn.execute(
            select(t.fields.c.sentera_id).where(t.fields.c.name == "Generated field")
        ).all()
    assert len(names) == 2


def test_explicit_created_at_is_kept(engine: Engine) -> None:
    org, user = org_and_user(engine)
    field, old_org = sid("AS"), sid("OR")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "organizations": [
                    {"sentera_id": old_org, "name": "Old", "created_at": "2019-05-06T07:08:09Z"}
                ],
                "fields": [
                    {
                        "sentera_id": field,
                        "organization_sentera_id": org,
                        "name": "F",
                        "created_at": "2020-01-02T05:04:05.678+02:00",
                    }
                ],
            },
        },
        now=T1,
    )
    created = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row(engine, field)["created_at"] == created
    assert representation(engine, field)["created_at"] == "2020-01-02T03:04:05Z"
    assert row(engine, old_org)["created_at"] == datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
    # A later update keeps created_at and moves updated_at.
    apply_changeset(
        engine,
        {"actor_sentera_id": user, "upsert": {"fields": [{"sentera_id": field, "name": "G"}]}},
        now=T2,
    )
    assert row(engine, field)["created_at"] == created
    assert row(engine, field)["updated_at"] == T2


# -- validation ------------------------------------------------------------------------------


def test_missing_required_keys_are_reported_per_record(engine: Engine) -> None:
    org, user = org_and_user(engine)
    field, survey, mosaic = sid("AS"), sid("CO"), sid("MO")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "fields": [{"sentera_id": field, "organization_sentera_id": org, "name": "F"}],
                "surveys": [{"sentera_id": survey, "field_sentera_id": field}],
                "mosaics": [
                    {
                        "sentera_id": mosaic,
                        "survey_sentera_id": survey,
                        "mosaic_type": "RGB",
                        "quality": "FULL",
                    }
                ],
            },
        },
        now=T0,
    )
    document = {
        "actor_sentera_id": user,
        "upsert": {
            "organizations": [{}],
            "users": [
                {"email": "x@acme.test"},
                {"email": "y@acme.test", "organization_sentera_ids": []},
            ],
            "fields": [{"name": "F"}],
            "surveys": [{}],
            "images": [{"survey_sentera_id": survey}],
            "mosaics": [{"survey_sentera_id": survey, "quality": "FULL"}],
            "cogs": [{"mosaic_sentera_id": mosaic}],
            "feature_sets": [{"owner_type": "SURVEY", "owner_sentera_id": survey, "name": "x"}],
            "logos": [{"name": "x"}],
            "files": [{"owner_type": "SURVEY", "owner_sentera_id": survey, "filename": "a"}],
            "flight_tasks": [{"organization_sentera_id": org}],
        },
    }
    assert rejected(engine, document) == [
        "upsert.organizations[0]: missing required key 'name' "
        "(required when creating organizations)",
        "upsert.users[0]: missing required key 'organization_sentera_ids' "
        "(required when creating users)",
        "upsert.users[1].organization_sentera_ids: a user needs at least one organization",
        "upsert.fields[0]: missing required key 'organization_sentera_id' "
        "(required when creating fields)",
        "upsert.surveys[0]: missing required key 'field_sentera_id' "
        "(required when creating surveys)",
        "upsert.images[0]: missing required key 'filename' (required when creating images)",
        "upsert.mosaics[0]: missing required key 'mosaic_type' (required when creating mosaics)",
        "upsert.cogs[0]: missing required key 'status' (required when creating cogs)",
        "upsert.feature_sets[0]: missing required key 'type' (required when creating feature sets)",
        "upsert.logos[0]: missing required key 'organization_sentera_id' "
        "(required when creating logos)",
        "upsert.files[0]: missing required key 'file_type' (required when creating files)",
        "upsert.flight_tasks[0]: missing required key 'status' "
        "(required when creating flight tasks)",
    ]
    # Updating needs none of them.
    summary = apply_changeset(
        engine,
        {"upsert": {"mosaics": [{"sentera_id": mosaic, "name": "renamed"}]}},
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1)


def test_unknown_keys_are_rejected(engine: Engine) -> None:
    org, user = org_and_user(engine)
    document = {
        "actor_sentera_id": user,
        "upsert": {
            "fields": [{"organization_sentera_id": org, "name": "F", "colour": "red"}],
            "farms": [],
        },
        "update": {},
    }
    assert rejected(engine, document) == [
        "update: unknown key (expected actor_sentera_id, upsert, delete)",
        "upsert.farms: unknown kind (expected one of organizations, users, fields, surveys, "
        "images, mosaics, cogs, feature_sets, logos, files, flight_tasks)",
        "upsert.fields[0].colour: unknown key for fields (expected organization_sentera_id, "
        "name, latitude, longitude, sentera_id, created_at, created_by_sentera_id, "
        "updated_by_sentera_id)",
    ]


def test_wrong_types_are_rejected(engine: Engine) -> None:
    world = build_world(engine)
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "fields": [{"sentera_id": world.field, "name": 5, "latitude": "north"}],
            "surveys": [{"sentera_id": world.survey, "start_time": "June 1st"}],
            "images": [{"sentera_id": world.image, "size": 10.5, "altitude": True}],
            "mosaics": [
                {
                    "sentera_id": world.mosaic,
                    "released": "yes",
                    "area": {"value": 3, "unit": "ACRES"},
                    "image_sentera_ids": world.image,
                }
            ],
            "cogs": [{"sentera_id": world.cog, "max_zoom": 31, "clipped": 1}],
            "files": [{"sentera_id": world.survey_file, "size": -1}],
            "flight_tasks": [{"sentera_id": world.task, "field_sentera_id": ["x"]}],
            "logos": "nope",
            "organizations": [[]],
        },
        "delete": world.image,
    }
    assert rejected(engine, document) == [
        "upsert.logos: expected a list, got 'nope'",
        "upsert.organizations[0]: expected an object, got a list",
        "upsert.fields[0].name: expected a string, got 5",
        "upsert.fields[0].latitude: expected a number, got 'north'",
        "upsert.surveys[0].start_time: 'June 1st' is not an ISO-8601 timestamp "
        "(e.g. 2024-06-01T14:00:00Z)",
        "upsert.images[0].size: expected an integer, got 10.5",
        "upsert.images[0].altitude: expected a number, got true",
        "upsert.mosaics[0].released: expected true or false, got 'yes'",
        "upsert.mosaics[0].area.unit: 'ACRES' is not one of ACRE, HECTARE, SQUARE_METER, "
        "SQUARE_FOOT",
        f"upsert.mosaics[0].image_sentera_ids: expected a list of sentera_ids, got '{world.image}'",
        "upsert.cogs[0].max_zoom: must be less than or equal to 30",
        "upsert.cogs[0].clipped: expected true or false, got 1",
        "upsert.files[0].size: must be greater than or equal to 0",
        "upsert.flight_tasks[0].field_sentera_id: expected a sentera_id string, got a list",
        f"delete: expected a list of sentera_ids, got '{world.image}'",
    ]
    assert rejected(engine, []) == ["a changeset is a JSON object"]


def test_wrong_enum_value_message(engine: Engine) -> None:
    world = build_world(engine)
    mosaics = [
        {"survey_sentera_id": world.survey, "mosaic_type": kind, "quality": "FULL"}
        for kind in ("RGB", "NDVI", "THERMAL", "RBG")
    ]
    mosaics[1]["quality"] = "full"
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "mosaics": mosaics,
            "cogs": [{"sentera_id": world.cog, "status": "DONE"}],
            "files": [{"sentera_id": world.mosaic_file, "owner_type": "ORGANIZATION"}],
        },
    }
    assert rejected(engine, document) == [
        "upsert.mosaics[1].quality: 'full' is not one of FULL, PREVIEW",
        f"upsert.mosaics[3].mosaic_type: 'RBG' is not one of {MOSAIC_TYPES}",
        "upsert.cogs[0].status: 'DONE' is not one of PENDING, PROCESSING, SUCCESS, FAIL",
        "upsert.files[0].owner_type: 'ORGANIZATION' is not one of SURVEY, MOSAIC, FIELD, "
        "FEATURE_SET, LOGO",
    ]


def check_coordinates_out_of_range(engine: Engine) -> None:
    org, user = org_and_user(engine)
    cases = [
        ("latitude", 90.5, "must be less than or equal to 90"),
        ("latitude", -91, "must be greater than or equal to -90"),
        ("longitude", 180.01, "must be less than or equal to 180"),
        ("longitude", -181, "must be greater than or equal to -180"),
    ]
    for key, value, message in cases:
        assert rejected(engine, field_doc(user, org, **{key: value})) == [
            f"upsert.fields[0].{key}: {message}"
        ]
    image = {"survey_sentera_id": sid("CO"), "filename": "x", "latitude": -90.5}
    issues = rejected(engine, {"actor_sentera_id": user, "upsert": {"images": [image]}})
    assert "upsert.images[0].latitude: must be greater than or equal to -90" in issues
    # The bounds themselves are fine.
    apply_changeset(engine, field_doc(user, org, latitude=-90, longitude=180), now=T1)
    apply_changeset(engine, field_doc(user, org, latitude=90, longitude=-180), now=T1)


def check_values_every_backend_can_store(engine: Engine) -> None:
    world = build_world(engine)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"version": 2**31}, f"version: {2**31} is out of range (at most {2**31 - 1})"),
        ({"version": -1}, "version: must be greater than or equal to 0"),
        ({"size": 2**63}, f"size: {2**63} is out of range (at most {2**63 - 1})"),
        ({"filename": "a\x00b"}, "filename: may not contain a NUL character (\\u0000)"),
        ({"filename": "x" * 1025}, "filename: is longer than 1024 characters"),
        ({"created_at": 20240101}, "created_at: expected an ISO-8601 timestamp, got 20240101"),
        (
            {"created_at": "0001-01-01T00:00:00+01:00"},
            "created_at: '0001-01-01T00:00:00+01:00' is not an ISO-8601 timestamp "
            "(e.g. 2024-06-01T14:00:00Z)",
        ),
    ]
    for record, message in cases:
        document = {"upsert": {"files": [{"sentera_id": world.survey_file, **record}]}}
        assert rejected(engine, document) == [f"upsert.files[0].{message}"]
    # The largest values that fit are stored as given, on every backend.
    largest = {"version": 2**31 - 1, "size": 2**63 - 1, "filename": "ü" * 1024}
    apply_changeset(
        engine, {"upsert": {"files": [{"sentera_id": world.survey_file, **largest}]}}, now=T1
    )
    stored = row(engine, world.survey_file)
    assert {key: stored[key] for key in largest} == largest
    assert representation(engine, world.survey_file)["size"] == str(2**63 - 1)


def test_ranges_and_values_every_backend_can_store(engine: Engine) -> None:
    check_coordinates_out_of_range(engine)
    check_values_every_backend_can_store(engine)


def test_paths_point_inside_lists_and_objects(engine: Engine) -> None:
    world = build_world(engine)
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "fields": [{"sentera_id": world.field, "latitude": 10**400, "longitude": float("inf")}],
            "mosaics": [
                {
                    "sentera_id": world.mosaic,
                    "image_sentera_ids": [world.image, "bad", world.image2],
                    "area": {"value": -1, "unit": "ACRE"},
                },
                {"sentera_id": world.mosaic, "area": {"value": 1}},
                {"sentera_id": world.mosaic, "area": {"value": 1, "unit": "ACRE", "x": 1}},
            ],
            "users": [
                {"sentera_id": world.user, "organization_sentera_ids": [world.org, world.field]}
            ],
        },
    }
    assert rejected(engine, document) == [
        f"upsert.users[0].organization_sentera_ids[1]: '{world.field}' has type code AS; "
        "expected OR",
        f"upsert.fields[0].latitude: expected a finite number, got {10**400}",
        "upsert.fields[0].longitude: expected a finite number, got inf",
        "upsert.mosaics[0].image_sentera_ids[1]: 'bad' is not a well-formed sentera_id",
        "upsert.mosaics[0].area.value: area value must be a number of at least 0, got -1",
        "upsert.mosaics[1].area: an area needs both value and unit",
        "upsert.mosaics[2].area: unknown key 'x' (an area has value and unit)",
    ]


def test_malformed_and_mistyped_sentera_ids(engine: Engine) -> None:
    org, user = org_and_user(engine)
    survey_id = sid("CO")
    document = {
        "actor_sentera_id": org,
        "upsert": {
            "fields": [
                {"sentera_id": "not-an-id", "organization_sentera_id": org, "name": "F"},
                {"sentera_id": survey_id, "organization_sentera_id": org, "name": "F"},
                {"sentera_id": sid("XX"), "organization_sentera_id": org, "name": "F"},
                {"organization_sentera_id": user, "name": "F", "created_by_sentera_id": org},
            ],
        },
        "delete": ["nope", 7],
    }
    issues = rejected(engine, document)
    assert issues[0] == "upsert.fields[0].sentera_id: 'not-an-id' is not a well-formed sentera_id"
    assert issues[1] == f"upsert.fields[1].sentera_id: '{survey_id}' has type code CO; expected AS"
    assert issues[2].startswith("upsert.fields[2].sentera_id: '")
    assert issues[2].endswith("' is not a well-formed sentera_id")
    assert issues[3:] == [
        f"actor_sentera_id: '{org}' has type code OR; expected US",
        f"upsert.fields[3].organization_sentera_id: '{user}' has type code US; expected OR",
        f"upsert.fields[3].created_by_sentera_id: '{org}' has type code OR; expected US",
        "delete[0]: 'nope' is not a well-formed sentera_id",
        "delete[1]: expected a sentera_id string, got 7",
    ]


def test_unknown_parent_and_unknown_users(engine: Engine) -> None:
    world = build_world(engine)
    ghost_field, ghost_user, ghost_org, ghost_image = sid("AS"), sid("US"), sid("OR"), sid("IM")
    document = {
        "actor_sentera_id": ghost_user,
        "upsert": {
            "organizations": [{"name": "Child", "parent_sentera_id": ghost_org}],
            "surveys": [
                {"field_sentera_id": ghost_field, "created_by_sentera_id": world.user},
                {"sentera_id": world.survey, "field_sentera_id": ghost_field},
            ],
            "mosaics": [
                {
                    "sentera_id": world.mosaic,
                    "image_sentera_ids": [world.image, ghost_image],
                    "updated_by_sentera_id": ghost_user,
                }
            ],
        },
    }
    assert rejected(engine, document) == [
        f"actor_sentera_id: '{ghost_user}' does not exist",
        f"upsert.organizations[0].parent_sentera_id: '{ghost_org}' does not exist",
        f"upsert.surveys[0].field_sentera_id: '{ghost_field}' does not exist",
        f"upsert.surveys[1].field_sentera_id: '{ghost_field}' does not exist",
        f"upsert.mosaics[0].image_sentera_ids[1]: '{ghost_image}' does not exist",
        f"upsert.mosaics[0].updated_by_sentera_id: '{ghost_user}' does not exist",
    ]


def test_file_owner_must_match_owner_type(engine: Engine) -> None:
    world = build_world(engine)
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "files": [
                file_record(sid("FI"), "MOSAIC", world.survey, "x.tif"),
                # Changing only the type checks the current owner against it.
                {"sentera_id": world.survey_file, "owner_type": "FIELD"},
            ],
            "feature_sets": [
                {
                    "owner_type": "FIELD",
                    "owner_sentera_id": world.org,
                    "name": "x",
                    "type": "UNKNOWN",
                }
            ],
        },
    }
    assert rejected(engine, document) == [
        f"upsert.feature_sets[0].owner_sentera_id: '{world.org}' is not a field "
        "(owner_type is FIELD; expected a AS id)",
        f"upsert.files[0].owner_sentera_id: '{world.survey}' is not a mosaic "
        "(owner_type is MOSAIC; expected a MO id)",
        f"upsert.files[1].owner_sentera_id: '{world.survey}' is not a field "
        "(owner_type is FIELD; expected a AS id)",
    ]


def test_every_error_is_reported_at_once_and_nothing_is_written(engine: Engine) -> None:
    world = build_world(engine)
    counts = row_counts(engine)
    good_image = image_record(sid("IM"), world.survey, "new.jpg")
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "organizations": [{"name": "Valid new org"}],
            "fields": [{"sentera_id": world.field, "name": "Renamed", "latitude": 91}],
            "images": [good_image, {"survey_sentera_id": world.survey, "filename": None}],
            "mosaics": [{"sentera_id": world.mosaic, "mosaic_type": "RBG"}],
            "files": [{"sentera_id": world.survey_file, "bogus": 1}],
        },
        "delete": [world.image2, sid("CG")],
    }
    issues = rejected(engine, document)
    assert [issue.split(": ", 1)[0] for issue in issues] == [
        "upsert.fields[0].latitude",
        "upsert.images[1].filename",
        "upsert.mosaics[0].mosaic_type",
        "upsert.files[0].bogus",
        "delete[1]",
    ]
    assert row_counts(engine) == counts
    assert row(engine, world.field)["name"] == "North 40"
    assert not is_deleted(engine, world.image2)


def test_a_failure_found_while_writing_still_writes_nothing(engine: Engine) -> None:
    """An organization holding items is only found after upserts ran: all must roll back."""
    world = build_world(engine)
    before = snapshot(engine)
    with pytest.raises(ChangesetError) as caught:
        apply_changeset(
            engine,
            {
                "actor_sentera_id": world.user,
                "upsert": {
                    "organizations": [{"name": "New"}],
                    "fields": [{"sentera_id": world.field, "name": "Renamed"}],
                },
                "delete": [world.image, world.org],
            },
            now=T1,
        )
    assert [str(i) for i in caught.value.issues] == [
        "delete[1]: cannot delete an organization that still holds 1 field, 1 logo, "
        "1 flight task; delete or move them first"
    ]
    assert snapshot(engine) == before


# -- merge semantics -------------------------------------------------------------------------


def check_absent_keys_keep_values_and_null_clears(engine: Engine) -> None:
    world = build_world(engine)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "fields": [{"sentera_id": world.field, "latitude": None}],
                "mosaics": [{"sentera_id": world.mosaic, "area": None, "name": "Renamed"}],
                "flight_tasks": [{"sentera_id": world.task, "field_sentera_id": None}],
                "users": [{"sentera_id": world.user, "first_name": None}],
            },
        },
        now=T1,
    )
    field = row(engine, world.field)
    assert field["latitude"] is None
    assert field["longitude"] == -93.5 and field["name"] == "North 40"
    mosaic = representation(engine, world.mosaic)
    assert mosaic["area"] is None and mosaic["name"] == "Renamed"
    assert mosaic["mosaic_type"] == "RGB" and mosaic["images"] == {"total_count": 2}
    task = representation(engine, world.task)
    assert task["field"] is None and task["survey"] == {"sentera_id": world.survey}
    user = row(engine, world.user)
    assert user["first_name"] is None and user["last_name"] == "Lovelace"
    assert user["updated_at"] == T1


def check_memberships_and_mosaic_links_are_replaced_as_a_whole(engine: Engine) -> None:
    world = build_world(engine)
    other_org = sid("OR")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "organizations": [{"sentera_id": other_org, "name": "Other"}],
                "users": [
                    {"sentera_id": world.user, "organization_sentera_ids": [other_org, other_org]}
                ],
                "mosaics": [{"sentera_id": world.mosaic, "image_sentera_ids": [world.image2]}],
            },
        },
        now=T1,
    )
    m, mi = t.memberships, t.mosaic_images
    with engine.connect() as conn:
        orgs = (
            conn.execute(
                select(m.c.organization_id).where(m.c.user_id == row(engine, world.user)["id"])
            )
            .scalars()
            .all()
        )
        images = (
            conn.execute(
                select(mi.c.image_id).where(mi.c.mosaic_id == row(engine, world.mosaic)["id"])
            )
            .scalars()
            .all()
        )
    assert orgs == [row(engine, other_org)["id"]]
    assert images == [row(engine, world.image2)["id"]]
    assert representation(engine, world.mosaic)["images"] == {"total_count": 1}
    assert row(engine, world.user)["updated_at"] == T1


def test_absent_keys_keep_values_and_null_clears(engine: Engine) -> None:
    check_absent_keys_keep_values_and_null_clears(engine)
    check_memberships_and_mosaic_links_are_replaced_as_a_whole(engine)


def test_null_on_a_non_nullable_key_is_an_error(engine: Engine) -> None:
    world = build_world(engine)
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "organizations": [{"sentera_id": world.org, "name": None}],
            "users": [{"sentera_id": world.user, "organization_sentera_ids": None}],
            "fields": [{"sentera_id": world.field, "organization_sentera_id": None}],
            "mosaics": [{"sentera_id": world.mosaic, "released": None, "image_sentera_ids": None}],
            "files": [{"sentera_id": world.survey_file, "download_filename": None}],
            "images": [{"sentera_id": world.image, "created_by_sentera_id": None}],
        },
    }
    assert rejected(engine, document) == [
        "upsert.organizations[0].name: may not be null",
        "upsert.users[0].organization_sentera_ids: may not be null",
        "upsert.fields[0].organization_sentera_id: may not be null",
        "upsert.images[0].created_by_sentera_id: expected a sentera_id string, got null",
        "upsert.mosaics[0].released: may not be null",
        "upsert.mosaics[0].image_sentera_ids: may not be null",
        "upsert.files[0].download_filename: may not be null",
    ]


# -- no-op rewrites and real changes ---------------------------------------------------------


def test_rewriting_identical_values_changes_nothing(engine: Engine) -> None:
    world = build_world(engine)
    before = snapshot(engine)
    summary = apply_changeset(engine, world.document(), now=T1)
    assert summary == ChangesetSummary(unchanged=len(world.all_items))
    assert summary.line() == f"created 0, updated 0, unchanged {len(world.all_items)}, deleted 0"
    assert snapshot(engine) == before
    # Equivalent spellings are the same values too.
    same = {
        "actor_sentera_id": world.user,
        "upsert": {
            "images": [
                {
                    "sentera_id": world.image,
                    "captured_at": "2024-06-01T09:03:11-05:00",
                    "altitude": 120.5,
                }
            ],
            "fields": [{"sentera_id": world.field, "latitude": 45.3, "name": "North 40"}],
            "mosaics": [
                {
                    "sentera_id": world.mosaic,
                    "image_sentera_ids": [world.image2, world.image, world.image],
                    "area": {"unit": "ACRE", "value": 40.2},
                }
            ],
        },
    }
    assert apply_changeset(engine, same, now=T2) == ChangesetSummary(unchanged=3)
    assert snapshot(engine) == before


def check_a_real_change_gets_a_new_hash_and_keeps_the_old_one(engine: Engine) -> None:
    world = build_world(engine)
    old_hash = hash_of(engine, world.image)
    old_mosaic_hash = hash_of(engine, world.mosaic)
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"images": [{"sentera_id": world.image, "altitude": 99.0}]},
        },
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1)
    image = row(engine, world.image)
    assert image["content_hash"] != old_hash
    assert image["updated_at"] == T1 and image["created_at"] == T0
    rep = representation(engine, world.image)
    assert rep["altitude"] == 99.0 and rep["updated_at"] == "2024-06-02T12:00:00Z"
    versions = versions_of(engine, world.image)
    assert set(versions) == {old_hash, image["content_hash"]}
    assert all(v["scope_id"] == row(engine, world.survey)["id"] for v in versions.values())
    # The mosaic linking it does not change: it shows only the image count.
    assert hash_of(engine, world.mosaic) == old_mosaic_hash
    # A file's action becomes UPDATE once it changed.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"files": [{"sentera_id": world.survey_file, "size": 2**40}]},
        },
        now=T1,
    )
    file_rep = representation(engine, world.survey_file)
    assert file_rep["action"] == "UPDATE" and file_rep["size"] == str(2**40)
    # Changing back gives the old content, but a new updated_at, hence a new hash.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"images": [{"sentera_id": world.image, "altitude": 120.5}]},
        },
        now=T2,
    )
    assert hash_of(engine, world.image) not in {old_hash, image["content_hash"]}
    assert len(versions_of(engine, world.image)) == 3


def check_non_sync_items_track_updated_at(engine: Engine) -> None:
    world = build_world(engine)
    summary = apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [{"sentera_id": world.org, "name": "Acme 2"}],
                "logos": [{"sentera_id": world.logo, "name": "Logo"}],
            }
        },
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1, unchanged=1)
    assert row(engine, world.org)["updated_at"] == T1
    assert row(engine, world.logo)["updated_at"] == T0


def test_a_real_change_gets_a_new_hash_and_keeps_the_old_one(engine: Engine) -> None:
    check_a_real_change_gets_a_new_hash_and_keeps_the_old_one(engine)
    check_non_sync_items_track_updated_at(engine)


# -- attribution -----------------------------------------------------------------------------


def test_attribution_actor_and_explicit_users(engine: Engine) -> None:
    world = build_world(engine)
    bob, carol = sid("US"), sid("US")
    field2 = sid("AS")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "users": [
                    {
                        "sentera_id": bob,
                        "email": "bob@acme.test",
                        "organization_sentera_ids": [world.org],
                    },
                    {
                        "sentera_id": carol,
                        "email": "carol@acme.test",
                        "organization_sentera_ids": [world.org],
                    },
                ],
                "fields": [
                    {
                        "sentera_id": field2,
                        "organization_sentera_id": world.org,
                        "name": "Migrated",
                        "created_by_sentera_id": bob,
                    }
                ],
            },
        },
        now=T1,
    )
    rep = representation(engine, field2)
    assert rep["created_by"] == {"sentera_id": bob}
    assert rep["updated_by"] == {"sentera_id": bob}
    assert row(engine, field2)["created_by_id"] == row(engine, bob)["id"]

    # An update by the actor.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": carol,
            "upsert": {"fields": [{"sentera_id": field2, "name": "By carol"}]},
        },
        now=T2,
    )
    rep = representation(engine, field2)
    assert rep["created_by"] == {"sentera_id": bob}
    assert rep["updated_by"] == {"sentera_id": carol}
    assert row(engine, field2)["updated_by_id"] == row(engine, carol)["id"]

    # An update naming its own updater wins over the actor.
    later = T2 + timedelta(hours=1)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": carol,
            "upsert": {
                "fields": [{"sentera_id": field2, "name": "By bob", "updated_by_sentera_id": bob}]
            },
        },
        now=later,
    )
    assert representation(engine, field2)["updated_by"] == {"sentera_id": bob}
    assert row(engine, field2)["updated_at"] == later

    # A new item with both.
    survey = sid("CO")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "surveys": [
                    {
                        "sentera_id": survey,
                        "field_sentera_id": field2,
                        "created_by_sentera_id": bob,
                        "updated_by_sentera_id": carol,
                    }
                ]
            },
        },
        now=later,
    )
    rep = representation(engine, survey)
    assert rep["created_by"] == {"sentera_id": bob}
    assert rep["updated_by"] == {"sentera_id": carol}

    # A no-op by someone else attributes nothing to them.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"fields": [{"sentera_id": field2, "name": "By bob"}]},
        },
        now=later + timedelta(hours=1),
    )
    assert representation(engine, field2)["updated_by"] == {"sentera_id": bob}


def check_creating_a_sync_item_needs_a_user(engine: Engine) -> None:
    world = build_world(engine)
    assert rejected(engine, field_doc(None, world.org)) == [
        "upsert.fields[0]: no user to attribute the new item to: set actor_sentera_id or "
        "created_by_sentera_id"
    ]
    # Items that are not synced need no user, and neither do updates.
    summary = apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [{"name": "No user needed"}],
                "logos": [{"organization_sentera_id": world.org}],
                "fields": [{"sentera_id": world.field, "name": "Renamed without actor"}],
            }
        },
        now=T1,
    )
    assert summary == ChangesetSummary(created=2, updated=1)
    rep = representation(engine, world.field)
    assert rep["updated_by"] is None and rep["created_by"] == {"sentera_id": world.user}
    # created_by alone is enough.
    apply_changeset(engine, field_doc(None, world.org, created_by_sentera_id=world.user), now=T1)


def check_an_invalid_user_is_reported_once(engine: Engine) -> None:
    world = build_world(engine)
    document = {
        "actor_sentera_id": "someone",
        "upsert": {
            "fields": [
                {"organization_sentera_id": world.org, "name": "A"},
                {"organization_sentera_id": world.org, "name": "B", "created_by_sentera_id": 3},
            ]
        },
    }
    assert rejected(engine, document) == [
        "actor_sentera_id: 'someone' is not a well-formed sentera_id",
        "upsert.fields[1].created_by_sentera_id: expected a sentera_id string, got 3",
    ]


def test_creating_a_sync_item_needs_a_user(engine: Engine) -> None:
    check_creating_a_sync_item_needs_a_user(engine)
    check_an_invalid_user_is_reported_once(engine)


# -- deletes ---------------------------------------------------------------------------------


def check_delete_items_of_any_type(engine: Engine) -> None:
    world = build_world(engine)
    other_user, empty_org = sid("US"), sid("OR")
    apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [{"sentera_id": empty_org, "name": "Empty"}],
                "users": [
                    {
                        "sentera_id": other_user,
                        "email": "o@acme.test",
                        "organization_sentera_ids": [world.org],
                    }
                ],
            }
        },
        now=T0,
    )
    doomed = [
        world.image2,
        world.cog,
        world.task,
        world.field_feature_set,
        world.logo_file,
        other_user,
        empty_org,
    ]
    before = {item: hash_of(engine, item) for item in doomed if item not in (other_user, empty_org)}
    summary = apply_changeset(engine, {"actor_sentera_id": world.user, "delete": doomed}, now=T1)
    assert summary == ChangesetSummary(deleted=len(doomed))
    assert summary.line() == f"created 0, updated 0, unchanged 0, deleted {len(doomed)}"
    for item in doomed:
        assert row(engine, item)["deleted_at"] == T1, item
    # A tombstone keeps its last version.
    for item, content_hash in before.items():
        assert hash_of(engine, item) == content_hash
        assert content_hash in versions_of(engine, item)
    for item in (world.image, world.mosaic, world.logo, world.org, world.user, world.field):
        assert not is_deleted(engine, item)


def check_deleting_unknown_ids_is_an_error_and_deleting_twice_a_no_op(engine: Engine) -> None:
    world = build_world(engine)
    ghost = sid("IM")
    assert rejected(engine, {"delete": [world.image, ghost]}) == [
        f"delete[1]: '{ghost}' does not exist"
    ]
    assert apply_changeset(engine, {"delete": [world.image, world.image]}, now=T1) == (
        ChangesetSummary(deleted=1)
    )
    before = snapshot(engine)
    assert apply_changeset(engine, {"delete": [world.image]}, now=T2) == ChangesetSummary()
    assert snapshot(engine) == before
    assert row(engine, world.image)["deleted_at"] == T1


def test_delete_items_of_any_type(engine: Engine) -> None:
    check_delete_items_of_any_type(engine)
    check_deleting_unknown_ids_is_an_error_and_deleting_twice_a_no_op(engine)


def check_deleting_a_survey_cascades(engine: Engine) -> None:
    world = build_world(engine)
    other = World.fresh()
    apply_changeset(engine, other.document(), now=T0)
    summary = apply_changeset(
        engine, {"actor_sentera_id": world.user, "delete": [world.survey]}, now=T1
    )
    below = [
        world.survey,
        world.image,
        world.image2,
        world.mosaic,
        world.cog,
        world.survey_file,
        world.mosaic_file,
        world.feature_set,
        world.fs_file,
    ]
    assert summary == ChangesetSummary(deleted=len(below))
    for item in below:
        assert row(engine, item)["deleted_at"] == T1, item
    for item in (
        world.field,
        world.field_file,
        world.field_feature_set,
        world.logo,
        world.logo_file,
        world.task,
        *other.all_items,
    ):
        assert not is_deleted(engine, item), item


def check_deleting_a_field_cascades_to_everything_below(engine: Engine) -> None:
    world = build_world(engine)
    summary = apply_changeset(
        engine, {"actor_sentera_id": world.user, "delete": [world.field]}, now=T1
    )
    below = [
        world.field,
        world.survey,
        world.image,
        world.image2,
        world.mosaic,
        world.cog,
        world.survey_file,
        world.mosaic_file,
        world.feature_set,
        world.fs_file,
        world.field_file,
        world.field_feature_set,
    ]
    assert summary == ChangesetSummary(deleted=len(below))
    for item in below:
        assert row(engine, item)["deleted_at"] == T1, item
    for item in (world.org, world.user, world.logo, world.logo_file, world.task):
        assert not is_deleted(engine, item), item


def check_deleting_a_mosaic_feature_set_or_logo_cascades(engine: Engine) -> None:
    world = build_world(engine)
    summary = apply_changeset(
        engine, {"delete": [world.mosaic, world.feature_set, world.logo]}, now=T1
    )
    below = [
        world.mosaic,
        world.cog,
        world.mosaic_file,
        world.feature_set,
        world.fs_file,
        world.logo,
        world.logo_file,
    ]
    assert summary == ChangesetSummary(deleted=len(below))
    for item in below:
        assert is_deleted(engine, item), item
    for item in (world.survey, world.image, world.image2, world.survey_file, world.org):
        assert not is_deleted(engine, item), item


def test_deletes_cascade(engine: Engine) -> None:
    check_deleting_a_survey_cascades(engine)
    check_deleting_a_field_cascades_to_everything_below(engine)
    check_deleting_a_mosaic_feature_set_or_logo_cascades(engine)


def test_deleting_an_organization_that_holds_something(engine: Engine) -> None:
    world = build_world(engine)
    child = sid("OR")
    org_feature_set = sid("FS")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "organizations": [
                    {"sentera_id": child, "name": "Child", "parent_sentera_id": world.org}
                ],
                "feature_sets": [
                    {
                        "sentera_id": org_feature_set,
                        "owner_type": "ORGANIZATION",
                        "owner_sentera_id": world.org,
                        "name": "x",
                        "type": "UNKNOWN",
                    }
                ],
            },
        },
        now=T0,
    )
    assert rejected(engine, {"delete": [world.field, world.org]}) == [
        "delete[1]: cannot delete an organization that still holds 1 child organization, "
        "1 logo, 1 flight task, 1 feature set; delete or move them first"
    ]
    # Deleting the contents in the same changeset is enough, in any order.
    summary = apply_changeset(
        engine,
        {"delete": [world.org, child, world.field, world.logo, world.task, org_feature_set]},
        now=T1,
    )
    assert summary.deleted == 2 + 12 + 2 + 1 + 1
    assert is_deleted(engine, world.org) and is_deleted(engine, child)
    assert is_deleted(engine, world.logo_file) and is_deleted(engine, world.cog)
    # Its users are not deleted with it.
    assert not is_deleted(engine, world.user)


def test_deleting_a_user_revokes_its_tokens(engine: Engine) -> None:
    world = build_world(engine)
    other = sid("US")
    apply_changeset(
        engine,
        {
            "upsert": {
                "users": [
                    {
                        "sentera_id": other,
                        "email": "o@acme.test",
                        "organization_sentera_ids": [world.org],
                    }
                ]
            }
        },
        now=T0,
    )
    user_id, other_id = row(engine, world.user)["id"], row(engine, other)["id"]
    with engine.begin() as conn:
        conn.execute(
            insert(t.api_tokens),
            [
                {
                    "user_id": owner,
                    "token_hash": secrets.token_hex(32),
                    "created_at": T0,
                    "revoked_at": revoked,
                }
                for owner, revoked in ((user_id, None), (user_id, T0), (other_id, None))
            ],
        )
    summary = apply_changeset(engine, {"actor_sentera_id": other, "delete": [world.user]}, now=T1)
    assert summary == ChangesetSummary(deleted=1)
    with engine.connect() as conn:
        tokens = conn.execute(
            select(t.api_tokens.c.user_id, t.api_tokens.c.revoked_at).order_by(t.api_tokens.c.id)
        ).all()
    assert [tuple(token) for token in tokens] == [(user_id, T1), (user_id, T0), (other_id, None)]
    # What it created stays attributed to it.
    assert representation(engine, world.field)["created_by"] == {"sentera_id": world.user}
    assert row(engine, world.field)["created_by_id"] == user_id
    # A deleted user can act no more.
    assert rejected(engine, field_doc(world.user, world.org)) == [
        f"actor_sentera_id: '{world.user}' was deleted"
    ]


def test_flight_task_references_are_cleared_when_field_or_survey_go(engine: Engine) -> None:
    world = build_world(engine)
    task2 = sid("TA")
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "flight_tasks": [
                    {
                        "sentera_id": task2,
                        "organization_sentera_id": world.org,
                        "status": "OPEN",
                        "survey_sentera_id": world.survey,
                    }
                ]
            },
        },
        now=T0,
    )
    old = hash_of(engine, world.task)
    apply_changeset(engine, {"actor_sentera_id": world.user, "delete": [world.survey]}, now=T1)
    task = row(engine, world.task)
    assert task["survey_id"] is None and task["field_id"] == row(engine, world.field)["id"]
    assert task["content_hash"] != old and task["updated_at"] == T1
    rep = representation(engine, world.task)
    assert rep["survey"] is None and rep["field"] == {"sentera_id": world.field}
    assert rep["updated_by"] == {"sentera_id": world.user}
    assert representation(engine, task2)["survey"] is None
    assert not is_deleted(engine, world.task)

    apply_changeset(engine, {"delete": [world.field]}, now=T2)
    rep = representation(engine, world.task)
    assert rep["field"] is None and rep["survey"] is None
    assert row(engine, world.task)["updated_at"] == T2


def test_deleting_a_linked_image_changes_the_mosaic_hash(engine: Engine) -> None:
    world = build_world(engine)
    old = hash_of(engine, world.mosaic)
    assert representation(engine, world.mosaic)["images"] == {"total_count": 2}
    summary = apply_changeset(
        engine, {"actor_sentera_id": world.user, "delete": [world.image]}, now=T1
    )
    assert summary == ChangesetSummary(deleted=1)
    mosaic = row(engine, world.mosaic)
    assert mosaic["content_hash"] != old and mosaic["updated_at"] == T1
    assert representation(engine, world.mosaic)["images"] == {"total_count": 1}
    assert set(versions_of(engine, world.mosaic)) == {old, mosaic["content_hash"]}
    # The COG below the mosaic shows nothing of the images.
    assert row(engine, world.cog)["updated_at"] == T0


def test_reusing_a_deleted_sentera_id_is_an_error(engine: Engine) -> None:
    world = build_world(engine)
    apply_changeset(engine, {"delete": [world.image, world.logo]}, now=T1)
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "images": [
                image_record(world.image, world.survey, "again.jpg"),
                {"sentera_id": world.image2, "survey_sentera_id": world.survey},
            ],
            "mosaics": [{"sentera_id": world.mosaic, "image_sentera_ids": [world.image]}],
            "files": [file_record(sid("FI"), "LOGO", world.logo, "x.png")],
        },
    }
    assert rejected(engine, document) == [
        f"upsert.images[0].sentera_id: '{world.image}' was deleted; a deleted id cannot be "
        "used again",
        f"upsert.mosaics[0].image_sentera_ids[0]: '{world.image}' was deleted",
        f"upsert.files[0].owner_sentera_id: '{world.logo}' was deleted",
    ]


def test_create_and_delete_in_one_changeset(engine: Engine) -> None:
    world = build_world(engine)
    image = sid("IM")
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"images": [image_record(image, world.survey, "tmp.jpg")]},
            "delete": [image],
        },
        now=T1,
    )
    assert summary == ChangesetSummary(created=1, deleted=1)
    assert is_deleted(engine, image)
    # Its tombstone still holds a real representation and hash, like any other.
    tombstone = row(engine, image)
    assert representation(engine, image)["filename"] == "tmp.jpg"
    assert tombstone["content_hash"] != bytes(12)
    assert set(versions_of(engine, image)) == {tombstone["content_hash"]}
    assert (tombstone["scope_type"], tombstone["scope_id"]) == (
        "SURVEY",
        row(engine, world.survey)["id"],
    )
    # An item changed and deleted in one changeset leaves its last state as the tombstone.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"images": [{"sentera_id": world.image, "filename": "last.jpg"}]},
            "delete": [world.survey],
        },
        now=T2,
    )
    assert representation(engine, world.image)["filename"] == "last.jpg"
    assert row(engine, world.image)["deleted_at"] == T2


# -- moves -----------------------------------------------------------------------------------


def add_survey(engine: Engine, world: World) -> str:
    survey = sid("CO")
    Changeset(world.user).add("surveys", survey_record(survey, world.field)).apply(engine, now=T0)
    return survey


def test_moving_an_image_to_another_survey(engine: Engine) -> None:
    world = build_world(engine)
    survey2 = add_survey(engine, world)
    apply_changeset(
        engine,
        {"upsert": {"mosaics": [{"sentera_id": world.mosaic, "image_sentera_ids": [world.image]}]}},
        now=T0,
    )
    old = hash_of(engine, world.image2)
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {"images": [{"sentera_id": world.image2, "survey_sentera_id": survey2}]},
        },
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1)
    image = row(engine, world.image2)
    old_survey_id, new_survey_id = row(engine, world.survey)["id"], row(engine, survey2)["id"]
    assert image["survey_id"] == new_survey_id
    assert (image["scope_type"], image["scope_id"]) == ("SURVEY", new_survey_id)
    assert image["content_hash"] != old and image["updated_at"] == T1
    assert representation(engine, world.image2)["survey"] == {"sentera_id": survey2}
    versions = versions_of(engine, world.image2)
    assert versions[old]["scope_id"] == old_survey_id
    assert versions[image["content_hash"]]["scope_id"] == new_survey_id

    # Sync sees the move: the old hash is deleted in the old survey, the image new in the other.
    with read_snapshot(engine) as conn:
        page = compute_page(
            conn,
            Scope(k.IMAGE, {"SURVEY": [old_survey_id]}),
            parse_client_hashes([encode(old), encode(hash_of(engine, world.image))]),
        )
        assert [d["sentera_id"] for d in page.deleted] == [world.image2]
        assert page.upserted == []
        page = compute_page(
            conn, Scope(k.IMAGE, {"SURVEY": [new_survey_id]}), parse_client_hashes([])
        )
        assert [u["sentera_id"] for u in page.upserted] == [world.image2]


def encode(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def test_moving_a_file_to_another_owner(engine: Engine) -> None:
    world = build_world(engine)
    old = hash_of(engine, world.survey_file)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "files": [
                    {
                        "sentera_id": world.survey_file,
                        "owner_type": "MOSAIC",
                        "owner_sentera_id": world.mosaic,
                    }
                ]
            },
        },
        now=T1,
    )
    moved = row(engine, world.survey_file)
    assert (moved["scope_type"], moved["scope_id"]) == ("MOSAIC", row(engine, world.mosaic)["id"])
    assert moved["content_hash"] != old and moved["updated_at"] == T1
    assert representation(engine, world.survey_file)["file_owner"] == {
        "owner_type": "MOSAIC",
        "sentera_id": world.mosaic,
    }
    versions = versions_of(engine, world.survey_file)
    assert (versions[old]["scope_type"], versions[old]["scope_id"]) == (
        "SURVEY",
        row(engine, world.survey)["id"],
    )
    # Another owner of the same type needs only the id.
    survey2 = add_survey(engine, world)
    apply_changeset(
        engine,
        {
            "upsert": {
                "files": [
                    {
                        "sentera_id": world.field_file,
                        "owner_type": "SURVEY",
                        "owner_sentera_id": survey2,
                    }
                ]
            }
        },
        now=T2,
    )
    assert row(engine, world.field_file)["scope_id"] == row(engine, survey2)["id"]
    # Deleting the new owner now takes the file along.
    apply_changeset(engine, {"delete": [world.mosaic]}, now=T2)
    assert is_deleted(engine, world.survey_file)


def test_moving_a_mosaic_moves_its_cogs(engine: Engine) -> None:
    world = build_world(engine)
    survey2 = add_survey(engine, world)
    old_cog, old_mosaic = hash_of(engine, world.cog), hash_of(engine, world.mosaic)
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "mosaics": [
                    {
                        "sentera_id": world.mosaic,
                        "survey_sentera_id": survey2,
                        "image_sentera_ids": [],
                    }
                ]
            },
        },
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1)
    new_survey_id = row(engine, survey2)["id"]
    mosaic, cog = row(engine, world.mosaic), row(engine, world.cog)
    assert mosaic["content_hash"] != old_mosaic and mosaic["scope_id"] == new_survey_id
    assert cog["content_hash"] != old_cog and cog["updated_at"] == T1
    assert (cog["scope_type"], cog["scope_id"]) == ("SURVEY", new_survey_id)
    assert representation(engine, world.cog)["survey"] == {"sentera_id": survey2}
    assert representation(engine, world.cog)["updated_by"] == {"sentera_id": world.user}
    assert versions_of(engine, world.cog)[old_cog]["scope_id"] == row(engine, world.survey)["id"]
    # Deleting the old survey leaves the moved mosaic and its COG alone.
    apply_changeset(engine, {"delete": [world.survey]}, now=T2)
    assert not is_deleted(engine, world.mosaic) and not is_deleted(engine, world.cog)
    assert is_deleted(engine, world.image)


def test_organization_parent_cycles_are_rejected(engine: Engine) -> None:
    a, b, c = sid("OR"), sid("OR"), sid("OR")
    apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [
                    {"sentera_id": a, "name": "A"},
                    {"sentera_id": b, "name": "B", "parent_sentera_id": a},
                    {"sentera_id": c, "name": "C", "parent_sentera_id": b},
                ]
            }
        },
        now=T0,
    )
    message = "this parent would make the organization its own ancestor"
    assert rejected(
        engine, {"upsert": {"organizations": [{"sentera_id": a, "parent_sentera_id": c}]}}
    ) == [f"upsert.organizations[0].parent_sentera_id: {message}"]
    assert rejected(
        engine, {"upsert": {"organizations": [{"sentera_id": b, "parent_sentera_id": b}]}}
    ) == [f"upsert.organizations[0].parent_sentera_id: {message}"]
    x, y = sid("OR"), sid("OR")
    issues = rejected(
        engine,
        {
            "upsert": {
                "organizations": [
                    {"sentera_id": x, "name": "X", "parent_sentera_id": y},
                    {"sentera_id": y, "name": "Y", "parent_sentera_id": x},
                ]
            }
        },
    )
    assert issues == [
        f"upsert.organizations[0].parent_sentera_id: {message}",
        f"upsert.organizations[1].parent_sentera_id: {message}",
    ]
    # Moving within the tree without a cycle is fine, as is making a root.
    summary = apply_changeset(
        engine,
        {
            "upsert": {
                "organizations": [
                    {"sentera_id": c, "parent_sentera_id": a},
                    {"sentera_id": b, "parent_sentera_id": None},
                ]
            }
        },
        now=T1,
    )
    assert summary == ChangesetSummary(updated=2)
    assert row(engine, c)["parent_id"] == row(engine, a)["id"]
    assert row(engine, b)["parent_id"] is None


def test_mosaic_images_must_belong_to_its_survey(engine: Engine) -> None:
    world = build_world(engine)
    survey2 = add_survey(engine, world)
    image3 = sid("IM")
    document = {
        "actor_sentera_id": world.user,
        "upsert": {
            "images": [image_record(image3, survey2, "other.jpg")],
            "mosaics": [
                {"sentera_id": world.mosaic, "image_sentera_ids": [world.image, image3]},
                {
                    "survey_sentera_id": survey2,
                    "mosaic_type": "RGB",
                    "quality": "FULL",
                    "image_sentera_ids": [world.image2],
                },
            ],
        },
    }
    assert rejected(engine, document) == [
        f"upsert.mosaics[0].image_sentera_ids[1]: image '{image3}' belongs to survey "
        f"'{survey2}', not to the mosaic's survey '{world.survey}'",
        f"upsert.mosaics[1].image_sentera_ids[0]: image '{world.image2}' belongs to survey "
        f"'{world.survey}', not to the mosaic's survey '{survey2}'",
    ]
    # Moving an image in the same changeset makes it fit.
    summary = apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "images": [{"sentera_id": world.image2, "survey_sentera_id": survey2}],
                "mosaics": [
                    {"sentera_id": world.mosaic, "image_sentera_ids": [world.image]},
                    {
                        "survey_sentera_id": survey2,
                        "mosaic_type": "RGB",
                        "quality": "FULL",
                        "image_sentera_ids": [world.image2],
                    },
                ],
            },
        },
        now=T1,
    )
    assert summary == ChangesetSummary(created=1, updated=2)


def test_moving_a_linked_image_keeps_the_mosaic_link(engine: Engine) -> None:
    """A mosaic counts the live images of its image_sentera_ids; a move does not unlink."""
    world = build_world(engine)
    survey2 = add_survey(engine, world)
    before = representation(engine, world.mosaic)
    summary = apply_changeset(
        engine,
        {"upsert": {"images": [{"sentera_id": world.image, "survey_sentera_id": survey2}]}},
        now=T1,
    )
    assert summary == ChangesetSummary(updated=1)
    assert representation(engine, world.image)["survey"] == {"sentera_id": survey2}
    assert representation(engine, world.mosaic) == before
    assert before["images"] == {"total_count": 2}


def test_a_bulk_load_refreshes_planner_statistics(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a large changeset ends with ANALYZE of the tables it wrote."""
    if engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are a PostgreSQL matter")
    world = build_world(engine)

    def last_analyze() -> object:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'images'")
            ).scalar()

    assert last_analyze() is None
    monkeypatch.setattr(apply_module, "ANALYZE_AFTER_ROWS", 3)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "images": [
                    {"survey_sentera_id": world.survey, "filename": f"bulk_{n}.jpg"}
                    for n in range(3)
                ]
            },
        },
    )
    assert last_analyze() is not None
