"""Data moved across tenants: a caller of A never sees B's values through any reference or list.

The tenants are those of `tests/test_access.py`: A (with a child A1 and a grandchild A2) and
B, each with one of everything. Every test moves something from one tenant to the other with a
changeset and then reads through every path that could still reach it. Ids inside the caller's
own items are allowed to name the other tenant's objects; names and values are not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.storage import tables as t
from fieldsync.tokens import create_token
from tests.test_access import Tenant, Tenants, build_tenants
from tests.worlds import image_record, sid

SECRET = "Bravo secret"
"""A value only tenant B writes: it must never reach a member of A."""


class Reader:
    """One user's token and an in-process executor (a live server adds nothing here)."""

    def __init__(self, engine: Engine, user: str) -> None:
        self.executor = GraphQLExecutor(build_fieldsync_schema(), engine)
        self.token = create_token(engine, user)

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        response = self.executor.run(self.token, GraphQLRequest(document, variables))
        assert response.status == 200, response.body
        assert "errors" not in response.body, response.body
        data: dict[str, Any] = response.body["data"]
        return data


def leaked(data: dict[str, Any], tenant: Tenant, *extra: str) -> list[str]:
    """The names of `tenant` (and `extra` values) that appear anywhere in `data`."""
    text = json.dumps(data, ensure_ascii=False)
    names = [f"{tenant.name} {what}" for what in ("org", "field", "survey", "mosaic")]
    names += [f"{tenant.name}.jpg", f"{tenant.name}-", SECRET, *extra]
    return [name for name in names if name in text]


def write(engine: Engine, actor: str, **upsert: list[dict[str, Any]]) -> None:
    apply_changeset(engine, {"actor_sentera_id": actor, "upsert": upsert})


@pytest.fixture
def tenants(engine: Engine) -> Tenants:
    return build_tenants(engine)


# -- a mosaic's images ---------------------------------------------------------------------

MOSAICS = """
query($survey: ID!, $hashes: [String!]!) {
  sync_mosaics(survey_sentera_id: $survey, content_hashes: $hashes) {
    upserted { sentera_id content_hash ... on Mosaic {
      images(pagination: {page: 1, page_size: 10}) {
        total_count present results { sentera_id filename } } } }
    deleted { sentera_id ... on Mosaic {
      images(pagination: {page: 1, page_size: 10}) { total_count results { filename } } } }
  }
}
"""


def mosaic_of(reader: Reader, survey: str, mosaic: str) -> dict[str, Any]:
    page = reader.query(MOSAICS, survey=survey, hashes=[])["sync_mosaics"]
    found = [item for item in page["upserted"] if item["sentera_id"] == mosaic]
    assert len(found) == 1, page
    item: dict[str, Any] = found[0]
    return item


def links_kept(engine: Engine, mosaic: str) -> int:
    mi, m = t.mosaic_images, t.mosaics
    with engine.connect() as conn:
        count: int = conn.execute(
            select(func.count())
            .select_from(mi)
            .join(m, m.c.id == mi.c.mosaic_id)
            .where(m.c.sentera_id == mosaic)
        ).scalar_one()
    return count


def held_hashes(reader: Reader, query: str, argument: str, scope: str) -> list[str]:
    """Every hash a client of one sync query gets on its first call."""
    document = (
        f"query($id: ID!) {{ {query}({argument}: $id, content_hashes: []) "
        "{ remaining_count upserted { content_hash } } }"
    )
    page = reader.query(document, id=scope)[query]
    assert page["remaining_count"] == 0
    return [item["content_hash"] for item in page["upserted"]]


def _second_survey(engine: Engine, tenants: Tenants) -> tuple[str, str]:
    """A second field and survey of A; A's image moves there (same organization: it counts)."""
    a = tenants.a
    field, survey = sid("AS"), sid("CO")
    write(
        engine,
        tenants.user_a,
        fields=[{"sentera_id": field, "organization_sentera_id": a.org, "name": "Alpha far"}],
        surveys=[{"sentera_id": survey, "field_sentera_id": field, "name": "Alpha far"}],
        images=[{"sentera_id": a.image, "survey_sentera_id": survey}],
    )
    return field, survey


# What moves to B, and whether the mosaic (True) or its image (False) goes with it.
MOVES = {
    "image": False,
    "image's survey": False,
    "image's field": False,
    "mosaic": True,
    "mosaic's survey": True,
    "mosaic's field": True,
}


def _move(engine: Engine, tenants: Tenants, what: str, far: tuple[str, str], back: bool) -> None:
    a, b = tenants.a, tenants.b
    far_field, far_survey = far
    actor = tenants.user_a if back else tenants.user_b
    if what == "image":
        target = far_survey if back else b.survey
        write(engine, actor, images=[{"sentera_id": a.image, "survey_sentera_id": target}])
    elif what == "image's survey":
        target = far_field if back else b.field
        write(engine, actor, surveys=[{"sentera_id": far_survey, "field_sentera_id": target}])
    elif what == "image's field":
        target = a.org if back else b.org
        write(engine, actor, fields=[{"sentera_id": far_field, "organization_sentera_id": target}])
    elif what == "mosaic":
        target = a.survey if back else b.survey
        write(engine, actor, mosaics=[{"sentera_id": a.mosaic, "survey_sentera_id": target}])
    elif what == "mosaic's survey":
        target = a.field if back else b.field
        write(engine, actor, surveys=[{"sentera_id": a.survey, "field_sentera_id": target}])
    else:
        target = a.org if back else b.org
        write(engine, actor, fields=[{"sentera_id": a.field, "organization_sentera_id": target}])


@pytest.mark.parametrize("what", list(MOVES))
def test_a_link_across_organizations_is_kept_but_hidden(
    engine: Engine, tenants: Tenants, what: str
) -> None:
    """Moving the image, the mosaic or anything above either to another tenant hides the link
    from the mosaic's owner: not counted, not listed, and the mosaic syncs as an update.
    Moving it back makes it count again."""
    a, b = tenants.a, tenants.b
    far = _second_survey(engine, tenants)
    mosaic_moves = MOVES[what]
    owner = Reader(engine, tenants.user_b if mosaic_moves else tenants.user_a)
    first = mosaic_of(Reader(engine, tenants.user_a), a.survey, a.mosaic)
    # An image in another survey of the same organization still counts.
    assert first["images"]["total_count"] == 1
    assert [i["sentera_id"] for i in first["images"]["results"]] == [a.image]

    _move(engine, tenants, what, far, back=False)
    survey = b.survey if what == "mosaic" else a.survey
    hidden = mosaic_of(owner, survey, a.mosaic)
    assert hidden["images"] == {"total_count": 0, "present": 0, "results": []}
    assert hidden["content_hash"] != first["content_hash"]
    assert links_kept(engine, a.mosaic) == 1
    if mosaic_moves:
        assert leaked(hidden, a) == [], "B reads the image A kept"
    # The image's new owner cannot find the mosaic; the mosaic's owner, the image.
    image_owner = Reader(engine, tenants.user_a if mosaic_moves else tenants.user_b)
    assert image_owner.query(
        "query($s: ID!) { survey(sentera_id: $s) { mosaics { total_count } } }", s=survey
    ) == {"survey": None}

    _move(engine, tenants, what, far, back=True)
    again = mosaic_of(Reader(engine, tenants.user_a), a.survey, a.mosaic)
    assert again["images"]["total_count"] == 1
    assert [i["sentera_id"] for i in again["images"]["results"]] == [a.image]
    assert again["content_hash"] != hidden["content_hash"]


def test_moves_inside_one_organization_keep_the_mosaic_hash(
    engine: Engine, tenants: Tenants
) -> None:
    """Only a change of the counted links re-hashes a mosaic: moving its image to another
    survey or field of the same organization changes nothing about the mosaic."""
    a = tenants.a
    reader = Reader(engine, tenants.user_a)
    before = mosaic_of(reader, a.survey, a.mosaic)
    _second_survey(engine, tenants)
    after = mosaic_of(reader, a.survey, a.mosaic)
    assert after["content_hash"] == before["content_hash"]
    assert after["images"]["total_count"] == 1


def test_the_same_survey_rule_still_holds_for_hidden_links(
    engine: Engine, tenants: Tenants
) -> None:
    """A changeset may still link only images of the mosaic's own survey; naming no image
    drops the hidden link without changing what anyone reads."""
    a, b = tenants.a, tenants.b
    write(engine, tenants.user_b, images=[{"sentera_id": a.image, "survey_sentera_id": b.survey}])
    with pytest.raises(ChangesetError) as rejected:
        write(
            engine,
            tenants.user_a,
            mosaics=[{"sentera_id": a.mosaic, "image_sentera_ids": [a.image]}],
        )
    assert [issue.path for issue in rejected.value.issues] == [
        "upsert.mosaics[0].image_sentera_ids[0]"
    ]
    reader = Reader(engine, tenants.user_a)
    hidden = mosaic_of(reader, a.survey, a.mosaic)
    write(engine, tenants.user_a, mosaics=[{"sentera_id": a.mosaic, "image_sentera_ids": []}])
    assert links_kept(engine, a.mosaic) == 0
    assert mosaic_of(reader, a.survey, a.mosaic)["content_hash"] == hidden["content_hash"]
    # Back in A's survey, the dropped link does not come back.
    write(engine, tenants.user_a, images=[{"sentera_id": a.image, "survey_sentera_id": a.survey}])
    assert mosaic_of(reader, a.survey, a.mosaic)["images"]["total_count"] == 0


def test_mosaic_image_links_in_many_mosaics_are_rehashed_in_one_write(
    engine: Engine, tenants: Tenants
) -> None:
    """A survey of many images linked by many mosaics of another survey moves to B: every
    mosaic is re-hashed by the same changeset, in statements that do not grow per mosaic."""
    a, b = tenants.a, tenants.b
    mosaics = [sid("MO") for _ in range(MANY)]
    images = [sid("IM") for _ in range(2 * MANY)]
    far_survey = sid("CO")
    write(
        engine,
        tenants.user_a,
        surveys=[{"sentera_id": far_survey, "field_sentera_id": a.field}],
        images=[image_record(image, far_survey, f"{n}.jpg") for n, image in enumerate(images)],
        mosaics=[
            {
                "sentera_id": mosaic,
                "survey_sentera_id": far_survey,
                "mosaic_type": "RGB",
                "quality": "FULL",
                "image_sentera_ids": images,
            }
            for mosaic in mosaics
        ],
    )
    # The mosaics stay in A; their images' survey moves to a field of B.
    write(
        engine,
        tenants.user_a,
        mosaics=[{"sentera_id": m, "survey_sentera_id": a.survey} for m in mosaics],
    )
    reader = Reader(engine, tenants.user_a)
    page = reader.query(MOSAICS, survey=a.survey, hashes=[])["sync_mosaics"]["upserted"]
    counts = {m["sentera_id"]: m["images"]["total_count"] for m in page}
    assert counts == {**dict.fromkeys(mosaics, 2 * MANY), a.mosaic: 1}
    held = [m["content_hash"] for m in page]

    statements: list[str] = []

    def count(*_args: Any) -> None:
        statements.append("statement")

    event.listen(engine, "before_cursor_execute", count)
    try:
        write(
            engine,
            tenants.user_b,
            surveys=[{"sentera_id": far_survey, "field_sentera_id": b.field}],
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) < MANY, f"{len(statements)} statements for {MANY} mosaics"
    page = reader.query(MOSAICS, survey=a.survey, hashes=held)["sync_mosaics"]["upserted"]
    assert {m["sentera_id"]: m["images"]["total_count"] for m in page} == dict.fromkeys(mosaics, 0)


MANY = 40


# -- every other reference and list --------------------------------------------------------


def test_deleted_cog_entry_shows_nothing_of_the_mosaic_in_b(
    engine: Engine, tenants: Tenants
) -> None:
    """Cog.mosaic and Cog.survey, Mosaic.cogs/files/images of a mosaic that moved to B."""
    a, b = tenants.a, tenants.b
    reader = Reader(engine, tenants.user_a)
    document = """
    query($survey: ID!, $hashes: [String!]!) {
      sync_cogs(survey_sentera_id: $survey, content_hashes: $hashes) {
        deleted { sentera_id ... on Cog { mosaic { sentera_id name
            images { total_count results { filename } } cogs { status } files { filename } }
          survey { name } } }
      }
    }
    """
    held = held_hashes(reader, "sync_cogs", "survey_sentera_id", a.survey)
    held_mosaics = held_hashes(reader, "sync_mosaics", "survey_sentera_id", a.survey)
    write(
        engine,
        tenants.user_b,
        mosaics=[{"sentera_id": a.mosaic, "survey_sentera_id": b.survey, "name": SECRET}],
    )
    data = reader.query(document, survey=a.survey, hashes=held)
    [entry] = data["sync_cogs"]["deleted"]
    assert entry["sentera_id"] == a.cog
    assert entry["mosaic"] is None, "the mosaic is B's now"
    assert entry["survey"] == {"name": "Alpha survey"}
    assert leaked(data, b) == []
    mosaics = reader.query(
        """
        query($survey: ID!, $hashes: [String!]!) {
          sync_mosaics(survey_sentera_id: $survey, content_hashes: $hashes) {
            deleted { sentera_id ... on Mosaic { name survey { name }
              images { results { filename } } cogs { status } files { filename } } }
          }
        }
        """,
        survey=a.survey,
        hashes=held_mosaics,
    )
    assert mosaics["sync_mosaics"]["deleted"] == [
        {
            "sentera_id": a.mosaic,
            "name": "Alpha mosaic",
            "survey": {"name": "Alpha survey"},
            "images": {"results": []},
            "cogs": [],
            "files": [],
        }
    ]


def test_survey_moved_to_b_lists_nothing_below_its_deleted_entry(
    engine: Engine, tenants: Tenants
) -> None:
    """Survey.field/images/mosaics/files of a deleted entry whose survey is now B's."""
    a, b = tenants.a, tenants.b
    reader = Reader(engine, tenants.user_a)
    document = """
    query($field: ID!, $hashes: [String!]!) {
      sync_surveys(field_sentera_id: $field, content_hashes: $hashes) {
        upserted { content_hash }
        deleted { sentera_id ... on Survey { name field { name }
          images { total_count results { filename } }
          mosaics { total_count results { name } } files { filename } } }
      }
    }
    """
    held = held_hashes(reader, "sync_surveys", "field_sentera_id", a.field)
    new_image = sid("IM")
    write(
        engine,
        tenants.user_b,
        surveys=[{"sentera_id": a.survey, "field_sentera_id": b.field, "name": SECRET}],
        images=[image_record(new_image, a.survey, f"{SECRET}.jpg")],
    )
    data = reader.query(document, field=a.field, hashes=held)
    [entry] = data["sync_surveys"]["deleted"]
    assert entry["name"] == "Alpha survey" and entry["field"] == {"name": "Alpha field"}
    assert entry["images"] == {"total_count": 0, "results": []}
    assert entry["mosaics"] == {"total_count": 0, "results": []}
    assert entry["files"] == []
    assert leaked(data, b) == []


def test_field_moved_to_b_is_out_of_reach(engine: Engine, tenants: Tenants) -> None:
    """Field.organization/surveys/files of a deleted entry, and the lookups, once A's field
    belongs to B."""
    a, b = tenants.a, tenants.b
    reader = Reader(engine, tenants.user_a)
    document = """
    query($org: ID!, $hashes: [String!]!, $field: ID!, $survey: ID!) {
      sync_fields(organization_sentera_id: $org, content_hashes: $hashes) {
        upserted { content_hash }
        deleted { sentera_id ... on Field { name organization { name }
          surveys { total_count results { name } } files { filename } } }
      }
      field(sentera_id: $field) { name }
      survey(sentera_id: $survey) { name }
    }
    """
    ids = {"org": a.org, "field": a.field, "survey": a.survey}
    held = held_hashes(reader, "sync_fields", "organization_sentera_id", a.org)
    write(
        engine,
        tenants.user_b,
        fields=[{"sentera_id": a.field, "organization_sentera_id": b.org, "name": SECRET}],
    )
    data = reader.query(document, hashes=held, **ids)
    [entry] = data["sync_fields"]["deleted"]
    assert entry["organization"] == {"name": "Alpha org"}
    assert entry["surveys"] == {"total_count": 0, "results": []} and entry["files"] == []
    assert data["field"] is None and data["survey"] is None
    assert leaked(data, b) == []


def test_flight_task_references_to_a_field_now_in_b(engine: Engine, tenants: Tenants) -> None:
    """FlightTask.field/survey keep their ids, but not B's values."""
    a, b = tenants.a, tenants.b
    write(
        engine,
        tenants.user_a,
        flight_tasks=[
            {"sentera_id": a.task, "field_sentera_id": a.field, "survey_sentera_id": a.survey}
        ],
    )
    write(
        engine,
        tenants.user_b,
        fields=[{"sentera_id": a.field, "organization_sentera_id": b.org, "name": SECRET}],
    )
    data = Reader(engine, tenants.user_a).query(
        """
        query($org: ID!) {
          sync_flight_tasks(organization_sentera_id: $org, content_hashes: []) {
            upserted { sentera_id ... on FlightTask {
              organization { name }
              field { sentera_id name surveys { total_count } }
              survey { sentera_id name images { total_count } }
              ids: field { sentera_id } survey_id: survey { sentera_id } } }
          }
        }
        """,
        org=a.org,
    )
    [task] = data["sync_flight_tasks"]["upserted"]
    assert task["organization"] == {"name": "Alpha org"}
    assert task["field"] is None and task["survey"] is None
    assert task["ids"] == {"sentera_id": a.field}
    assert task["survey_id"] == {"sentera_id": a.survey}
    assert leaked(data, b) == []


def test_organization_moved_under_b(engine: Engine, tenants: Tenants) -> None:
    """Organization.parent/children/fields and `organizations` after A's child organization
    is re-parented below B: A no longer lists it, and its members do not read B's root."""
    a, a1, b = tenants.a, tenants.a1, tenants.b
    write(
        engine,
        tenants.user_b,
        organizations=[{"sentera_id": a1.org, "name": "Alpha child", "parent_sentera_id": b.org}],
    )
    tree = """
    query($id: ID!) {
      organization(sentera_id: $id) { name parent_organization_id parent { name }
        children { name fields { total_count results { name } } } fields { total_count } }
      organizations { results { name parent { name } children { name } } }
    }
    """
    a_reader = Reader(engine, tenants.user_a)
    assert a_reader.query(tree, id=a1.org)["organization"] is None
    root = a_reader.query(tree, id=a.org)
    assert root["organization"]["children"] == []
    assert [o["name"] for o in root["organizations"]["results"]] == ["Alpha org"]
    assert leaked(root, b, "Alpha child", "AlphaChild", "AlphaGrandchild") == []
    child = Reader(engine, tenants.user_a1).query(tree, id=a1.org)
    assert child["organization"]["parent_organization_id"] == b.org
    assert child["organization"]["parent"] is None
    assert leaked(child, b) == []


def test_item_created_by_a_user_of_b_shows_only_the_users_id(
    engine: Engine, tenants: Tenants
) -> None:
    """created_by/updated_by: a user of B is an id to A; colleagues keep their names."""
    a, b = tenants.a, tenants.b
    image = sid("IM")
    write(engine, tenants.user_b, images=[image_record(image, b.survey, "b.jpg")])
    write(engine, tenants.user_b, images=[{"sentera_id": image, "survey_sentera_id": a.survey}])
    document = """
    query($survey: ID!) {
      sync_images(survey_sentera_id: $survey, content_hashes: []) {
        upserted { sentera_id
          created_by { sentera_id first_name last_name email }
          updated_by { sentera_id last_name } }
      }
      me { sentera_id last_name email }
    }
    """
    data = Reader(engine, tenants.user_a).query(document, survey=a.survey)
    by_id = {i["sentera_id"]: i for i in data["sync_images"]["upserted"]}
    assert by_id[image]["created_by"] == {
        "sentera_id": tenants.user_b,
        "first_name": None,
        "last_name": None,
        "email": None,
    }
    assert by_id[image]["updated_by"] == {"sentera_id": tenants.user_b, "last_name": None}
    assert data["me"] == {
        "sentera_id": tenants.user_a,
        "last_name": "Anders",
        "email": "anders@example.test",
    }
    assert "Brontë" not in json.dumps(data, ensure_ascii=False)
    # Users who share data see each other's names (a member of A1 reads what A's member
    # created in A1, and the other way round), but never each other's email.
    write(engine, tenants.user_a1, images=[image_record(sid("IM"), tenants.a1.survey, "c.jpg")])
    seen = Reader(engine, tenants.user_a).query(document, survey=tenants.a1.survey)
    creators = {i["created_by"]["last_name"] for i in seen["sync_images"]["upserted"]}
    assert creators == {"Anders", "Achebe"}
    emails = {i["created_by"]["email"] for i in seen["sync_images"]["upserted"]}
    assert emails <= {None, "anders@example.test"}
    below = Reader(engine, tenants.user_a1).query(document, survey=tenants.a1.survey)
    assert {i["created_by"]["last_name"] for i in below["sync_images"]["upserted"]} == creators


def test_deleted_entry_of_an_image_moved_to_b_shows_the_held_version(
    engine: Engine, tenants: Tenants
) -> None:
    """A deleted entry carries what A held, not what B wrote when it took the image."""
    a, b = tenants.a, tenants.b
    reader = Reader(engine, tenants.user_a)
    document = """
    query($survey: ID!, $hashes: [String!]!) {
      sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
        upserted { content_hash }
        deleted { sentera_id content_hash ... on Image { filename survey { name }
          updated_by { sentera_id last_name } } }
      }
    }
    """
    held = held_hashes(reader, "sync_images", "survey_sentera_id", a.survey)
    write(
        engine,
        tenants.user_b,
        images=[{"sentera_id": a.image, "survey_sentera_id": b.survey, "filename": SECRET}],
    )
    data = reader.query(document, survey=a.survey, hashes=held)
    [entry] = data["sync_images"]["deleted"]
    assert (entry["sentera_id"], entry["content_hash"]) == (a.image, held[0])
    assert entry["filename"] == "Alpha.jpg" and entry["survey"] == {"name": "Alpha survey"}
    assert leaked(data, b) == []
