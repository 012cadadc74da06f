"""sync_feature_sets and the navigation to feature sets and logos, over real HTTP.

Two tenants, each an organization with a child organization, a field, two surveys, a logo
with a file, and feature sets owned by a survey, the field and the organization. A member of
one tenant never sees anything of the other, through sync or through navigation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import build_schema, print_type
from sqlalchemy import Engine

from fieldsync.api.schema import SCHEMA_PATH
from fieldsync.tokens import create_token
from tests.builder import (
    T0,
    T1,
    T2,
    Changeset,
    feature_set_record,
    field_record,
    file_record,
    logo_record,
    organization_record,
    sid,
    survey_record,
    user_record,
)
from tests.conftest import LiveServer
from tests.test_seed_examples import Client

OWNER_TYPES = ("SURVEY", "FIELD", "ORGANIZATION")
PAGE_SIZE = 2000

SYNC = """
query($owners: [FeatureSetOwnerInput!]!, $hashes: [String!]!) {
  sync_feature_sets(owners: $owners, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id content_hash ... on FeatureSet {
      name type status feature_set_owner { owner_type sentera_id } } }
    deleted { sentera_id content_hash ... on FeatureSet { name } }
    failed { key message code details }
  }
}
"""


def _new(code: str) -> Any:
    return dataclasses.field(default_factory=lambda: sid(code))


@dataclass
class Tenant:
    """One organization's ids; `feature_sets` maps an owner type to the sets it owns."""

    name: str
    org: str = _new("OR")
    child: str = _new("OR")
    user: str = _new("US")
    field: str = _new("AS")
    survey: str = _new("CO")
    survey2: str = _new("CO")
    logo: str = _new("LO")
    logo_file: str = _new("FI")
    feature_sets: dict[str, list[str]] = dataclasses.field(
        default_factory=lambda: {
            "SURVEY": [sid("FS"), sid("FS"), sid("FS")],
            "FIELD": [sid("FS")],
            "ORGANIZATION": [sid("FS")],
        }
    )

    def owner(self, owner_type: str) -> str:
        return {"SURVEY": self.survey, "FIELD": self.field, "ORGANIZATION": self.org}[owner_type]

    def owners(self) -> list[dict[str, str]]:
        return [{"owner_type": o, "sentera_id": self.owner(o)} for o in OWNER_TYPES]

    def changeset(self) -> Changeset:
        changeset = (
            Changeset(self.user)
            .add(
                "organizations",
                organization_record(self.org, f"{self.name} org"),
                organization_record(self.child, f"{self.name} child", parent_sentera_id=self.org),
            )
            .add("users", user_record(self.user, f"{self.name.lower()}@example.test", [self.org]))
            .add("fields", field_record(self.field, self.org, name=f"{self.name} field"))
            .add(
                "surveys",
                survey_record(self.survey, self.field, name=f"{self.name} survey"),
                survey_record(self.survey2, self.field, name=f"{self.name} survey 2"),
            )
            .add("logos", logo_record(self.logo, self.org, name=f"{self.name} logo"))
            .add("files", file_record(self.logo_file, "LOGO", self.logo, f"{self.name}.png"))
        )
        for owner_type, ids in self.feature_sets.items():
            changeset.add(
                "feature_sets",
                *(
                    feature_set_record(
                        fs, owner_type, self.owner(owner_type), name=f"{self.name} set {n}"
                    )
                    | {"type": "PLOT_LAYOUT"}
                    for n, fs in enumerate(ids)
                ),
            )
        return changeset


@dataclass
class Setup:
    server: LiveServer
    a: Tenant
    b: Tenant
    token_a: str
    token_b: str

    def sync(
        self,
        owners: list[dict[str, str]],
        hashes: list[str] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        response = self.server.post(
            SYNC, {"owners": owners, "hashes": hashes or []}, token or self.token_a
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]["sync_feature_sets"]
        return result

    def query(self, document: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        response = self.server.post(document, variables, token or self.token_a)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
def setup(engine: Engine, live_server: LiveServer) -> Setup:
    a, b = Tenant("Alpha"), Tenant("Bravo")
    a.changeset().apply(engine, now=T0)
    b.changeset().apply(engine, now=T0)
    return Setup(live_server, a, b, create_token(engine, a.user), create_token(engine, b.user))


def owner_of(owner_type: str, sentera_id: str) -> dict[str, str]:
    return {"owner_type": owner_type, "sentera_id": sentera_id}


def run_loop(setup: Setup, owners: list[dict[str, str]], client: Client) -> int:
    """The client loop of docs/sync.md until remaining_count is 0; the number of calls."""
    calls = 0
    while True:
        page = setup.sync(owners, client.hashes())
        calls += 1
        assert len(page["deleted"]) + len(page["upserted"]) <= PAGE_SIZE
        client.apply(page)
        if page["remaining_count"] == 0:
            return calls


# -- the schema ----------------------------------------------------------------------------


def test_schema_declares_the_query_and_its_types() -> None:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    query = schema.query_type
    assert query is not None
    sync = query.fields["sync_feature_sets"]
    assert {name: str(arg.type) for name, arg in sync.args.items()} == {
        "content_hashes": "[String!]!",
        "owners": "[FeatureSetOwnerInput!]!",
    }
    assert str(sync.type) == "SyncResult"
    assert str(query.fields["feature_set"].type) == "FeatureSet"
    assert print_type(schema.get_type("FeatureSetOwnerInput")) == (  # type: ignore[arg-type]
        "input FeatureSetOwnerInput {\n  owner_type: FeatureSetOwnerType!\n  sentera_id: ID!\n}"
    )
    logo = schema.get_type("Logo")
    assert {n: str(f.type) for n, f in logo.fields.items()} == {  # type: ignore[union-attr]
        "sentera_id": "ID!",
        "name": "String",
        "organization": "Organization!",
        "files": "[File!]!",
        "created_at": "ISO8601DateTime!",
        "updated_at": "ISO8601DateTime!",
    }
    for owner in ("Survey", "Field", "Organization"):
        owner_type = schema.get_type(owner)
        assert str(owner_type.fields["feature_sets"].type) == "[FeatureSet!]!"  # type: ignore[union-attr]
    assert str(schema.get_type("Organization").fields["logos"].type) == "[Logo!]!"  # type: ignore[union-attr]


# -- the sync loop -------------------------------------------------------------------------


def test_sync_loop_for_each_owner_type(setup: Setup) -> None:
    a = setup.a
    for owner_type in OWNER_TYPES:
        page = setup.sync([owner_of(owner_type, a.owner(owner_type))])
        assert page["failed"] is None and page["deleted"] == [] and page["remaining_count"] == 0
        assert [item["sentera_id"] for item in page["upserted"]] == a.feature_sets[owner_type]
        for item in page["upserted"]:
            assert item["feature_set_owner"] == owner_of(owner_type, a.owner(owner_type))
            assert item["type"] == "PLOT_LAYOUT" and item["status"] == "SUCCESS"
        # Holding every current hash: nothing to do.
        hashes = [item["content_hash"] for item in page["upserted"]]
        again = setup.sync([owner_of(owner_type, a.owner(owner_type))], hashes)
        assert again == {"remaining_count": 0, "upserted": [], "deleted": [], "failed": None}

    # All owners at once, oldest first (creation order, then id order within one changeset).
    page = setup.sync(a.owners())
    assert {item["sentera_id"] for item in page["upserted"]} == {
        fs for ids in a.feature_sets.values() for fs in ids
    }


def test_pages_of_2000_converge(engine: Engine, setup: Setup) -> None:
    a = setup.a
    extra = [sid("FS") for _ in range(PAGE_SIZE + 150)]
    records = [
        feature_set_record(fs, "FIELD", a.field, name=f"bulk {n}", type="UNKNOWN")
        for n, fs in enumerate(extra)
    ]
    Changeset(a.user).add("feature_sets", *records).apply(engine, now=T1)
    owners = a.owners()
    first = setup.sync(owners)
    own = {fs for ids in a.feature_sets.values() for fs in ids}
    total = len(extra) + len(own)
    assert len(first["upserted"]) == PAGE_SIZE
    assert first["remaining_count"] == total - PAGE_SIZE
    # Oldest first: the tenant's own sets (created before the bulk) lead the first page.
    assert {item["sentera_id"] for item in first["upserted"][: len(own)]} == own
    client = Client()
    assert run_loop(setup, owners, client) == 2
    assert len(client.items) == total


def test_deletes_updates_and_moves(engine: Engine, setup: Setup) -> None:
    a, b = setup.a, setup.b
    client = Client()
    run_loop(setup, a.owners(), client)
    before = dict(client.items)
    deleted, moved, to_other_tenant = a.feature_sets["SURVEY"]
    renamed = a.feature_sets["FIELD"][0]
    kept = a.feature_sets["ORGANIZATION"][0]
    Changeset(a.user, delete=[deleted]).apply(engine, now=T1)
    (
        Changeset(a.user)
        .add(
            "feature_sets",
            # Moves: one to another owner of this tenant, one to the other tenant.
            {"sentera_id": moved, "owner_type": "ORGANIZATION", "owner_sentera_id": a.org},
            {"sentera_id": to_other_tenant, "owner_type": "SURVEY", "owner_sentera_id": b.survey},
            {"sentera_id": renamed, "name": "Renamed"},
            {"sentera_id": kept, "name": "Alpha set 0"},  # the same value: a no-op
        )
        .apply(engine, now=T2)
    )

    # Only the survey: the deleted and both moved sets come back as deleted, with the hashes
    # the client sent and the values it held.
    survey_page = setup.sync([owner_of("SURVEY", a.survey)], client.hashes())
    assert survey_page["upserted"] == [] and survey_page["remaining_count"] == 0
    assert {(e["sentera_id"], e["content_hash"], e["name"]) for e in survey_page["deleted"]} == {
        (deleted, before[deleted], "Alpha set 0"),
        (moved, before[moved], "Alpha set 1"),
        (to_other_tenant, before[to_other_tenant], "Alpha set 2"),
    }
    assert "Bravo" not in str(survey_page)

    # Every owner: the moved-in set and the renamed one are upserts; only what left is deleted.
    page = setup.sync(a.owners(), client.hashes())
    assert {e["sentera_id"] for e in page["deleted"]} == {deleted, to_other_tenant}
    upserted = {item["sentera_id"]: item for item in page["upserted"]}
    assert set(upserted) == {moved, renamed}
    assert upserted[moved]["feature_set_owner"] == owner_of("ORGANIZATION", a.org)
    assert upserted[renamed]["name"] == "Renamed"
    assert page["remaining_count"] == 0
    run_loop(setup, a.owners(), client)
    assert client.items[kept] == before[kept]
    assert set(client.items) == {moved, renamed, kept}

    # The other tenant sees the set it received; the first tenant's old hash means nothing there.
    theirs = setup.sync([owner_of("SURVEY", b.survey)], [before[to_other_tenant]], setup.token_b)
    assert theirs["deleted"] == []
    assert to_other_tenant in {item["sentera_id"] for item in theirs["upserted"]}


def test_invalid_and_unreadable_owners_fail_like_sync_files(engine: Engine, setup: Setup) -> None:
    a, b = setup.a, setup.b
    gone = sid("CO")
    Changeset(a.user).add("surveys", survey_record(gone, a.field)).apply(engine)
    Changeset(a.user, delete=[gone]).apply(engine)
    invalid = [
        *b.owners(),  # another tenant's
        owner_of("SURVEY", sid("CO")),  # nothing
        owner_of("SURVEY", gone),  # deleted
        owner_of("SURVEY", a.field),  # our own object, but not of the owner type given
        owner_of("ORGANIZATION", a.logo),
        owner_of("FIELD", "not-an-id"),
    ]
    mine = a.owners()
    page = setup.sync([*invalid, *mine, mine[0]], ["not-a-hash"])
    assert {item["sentera_id"] for item in page["upserted"]} == {
        fs for ids in a.feature_sets.values() for fs in ids
    }
    assert page["remaining_count"] == 0
    assert page["failed"] == [
        {
            "key": "invalid_object",
            "message": "Invalid owner",
            "code": "INVALID_OBJECT",
            "details": o,
        }
        for o in invalid
    ] + [
        {
            "key": "invalid_content_hash",
            "message": "Invalid content hash: expected 16 characters of standard base64",
            "code": "INVALID_CONTENT_HASH",
            "details": {"content_hash": "not-a-hash"},
        }
    ]

    # Another tenant's owner is answered exactly like one that does not exist.
    theirs = setup.sync([owner_of("SURVEY", b.survey)])
    missing = sid("CO")
    nothing = setup.sync([owner_of("SURVEY", missing)])
    assert str(theirs).replace(b.survey, "<id>") == str(nothing).replace(missing, "<id>")

    # A member of the child organization may not read its parent's sets.
    child_user = sid("US")
    Changeset(a.user).add("users", user_record(child_user, "c@example.test", [a.child])).apply(
        engine
    )
    page = setup.sync(mine, token=create_token(engine, child_user))
    assert page["upserted"] == [] and [f["details"] for f in page["failed"]] == mine


def error_code(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text[:500]
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


def test_owner_limit_and_bad_owner_types(setup: Setup) -> None:
    a = setup.a
    many = [owner_of("SURVEY", sid("CO")) for _ in range(PAGE_SIZE)]
    # At the limit: every owner answered (here as failures), the valid one synced.
    page = setup.sync([*many[:-1], owner_of("FIELD", a.field)])
    assert len(page["failed"]) == PAGE_SIZE - 1 and len(page["upserted"]) == 1
    # One over: refused before anything runs, also when the owners are split between
    # sync_files and sync_feature_sets.
    response = setup.server.post(SYNC, {"owners": [*many, many[0]], "hashes": []}, setup.token_a)
    assert error_code(response) == "TOO_MANY_OWNERS"
    assert "FIELDSYNC_MAX_OWNERS" in response.json()["errors"][0]["message"]
    both = """
    query($f: [FileOwnerInput!]!, $s: [FeatureSetOwnerInput!]!) {
      sync_files(owners: $f, content_hashes: []) { remaining_count }
      sync_feature_sets(owners: $s, content_hashes: []) { remaining_count }
    }
    """
    response = setup.server.post(both, {"f": many[:1000], "s": many[:1001]}, setup.token_a)
    assert error_code(response) == "TOO_MANY_OWNERS"

    # Owner types outside FeatureSetOwnerType are refused by the schema, with the choices.
    for owner_type in ("MOSAIC", "LOGO", "FEATURE_SET", "survey"):
        response = setup.server.post(
            SYNC, {"owners": [owner_of(owner_type, a.survey)], "hashes": []}, setup.token_a
        )
        assert error_code(response) == "BAD_USER_INPUT"
        message = response.json()["errors"][0]["message"]
        assert "FeatureSetOwnerType" in message, message


def test_cost_counts_a_page_of_2000(setup: Setup) -> None:
    """`upserted` counts 2,000 items, each `files` list 10: 1 + 2,000 * (1 + 10 * (1 + n))."""

    def query(filenames: int) -> str:
        selection = " ".join(["filename"] * filenames)
        return (
            "query($o: [FeatureSetOwnerInput!]!) { sync_feature_sets(owners: $o, "
            "content_hashes: []) { upserted { ... on FeatureSet { "
            f"files {{ {selection} }} }} }} }} }}"
        )

    under = setup.server.post(query(48), {"o": setup.a.owners()}, setup.token_a)  # 982,001
    assert under.status_code == 200 and "errors" not in under.json(), under.text
    over = setup.server.post(query(49), {"o": setup.a.owners()}, setup.token_a)  # 1,002,001
    assert error_code(over) == "QUERY_TOO_COSTLY"


# -- navigation ----------------------------------------------------------------------------

NAVIGATION = """
query($org: ID!) {
  organization(sentera_id: $org) {
    feature_sets { sentera_id feature_set_owner { owner_type sentera_id } }
    logos { sentera_id name organization { sentera_id name } files { sentera_id filename }
            created_at updated_at }
    fields(pagination: {page: 1, page_size: 10}) { results {
      sentera_id
      feature_sets { sentera_id }
      files { sentera_id }
      surveys(pagination: {page: 1, page_size: 10}) { results {
        sentera_id feature_sets { sentera_id name files { sentera_id } }
        mosaics(pagination: {page: 1, page_size: 10}) { results { sentera_id } } } } } }
  }
}
"""


MOSAIC = {"mosaic_type": "RGB", "quality": "FULL"}
NAVIGATION_BODY = """
  logos { sentera_id }
  feature_sets { sentera_id }
  fields(pagination: {page: 1, page_size: 10}) { results {
    sentera_id feature_sets { sentera_id }
    surveys(pagination: {page: 1, page_size: 10}) { results {
      sentera_id feature_sets { sentera_id }
      mosaics(pagination: {page: 1, page_size: 10}) { results { sentera_id } } } } } }
"""


def test_navigation_lists_feature_sets_and_logos(engine: Engine, setup: Setup) -> None:
    a = setup.a
    org = setup.query(NAVIGATION, org=a.org)["organization"]
    assert [fs["sentera_id"] for fs in org["feature_sets"]] == a.feature_sets["ORGANIZATION"]
    assert org["feature_sets"][0]["feature_set_owner"] == owner_of("ORGANIZATION", a.org)
    assert org["logos"] == [
        {
            "sentera_id": a.logo,
            "name": "Alpha logo",
            "organization": {"sentera_id": a.org, "name": "Alpha org"},
            "files": [{"sentera_id": a.logo_file, "filename": "Alpha.png"}],
            "created_at": org["logos"][0]["created_at"],
            "updated_at": org["logos"][0]["updated_at"],
        }
    ]
    (field_,) = org["fields"]["results"]
    assert [fs["sentera_id"] for fs in field_["feature_sets"]] == a.feature_sets["FIELD"]
    surveys = {s["sentera_id"]: s for s in field_["surveys"]["results"]}
    assert [fs["sentera_id"] for fs in surveys[a.survey]["feature_sets"]] == a.feature_sets[
        "SURVEY"
    ]
    assert surveys[a.survey2]["feature_sets"] == []

    # A deleted set is no longer listed, a moved one is listed under its new owner only.
    first, second, third = a.feature_sets["SURVEY"]
    Changeset(a.user, delete=[first]).apply(engine, now=T1)
    Changeset(a.user).add(
        "feature_sets",
        {"sentera_id": second, "owner_sentera_id": a.survey2},
    ).apply(engine, now=T1)
    org = setup.query(NAVIGATION, org=a.org)["organization"]
    surveys = {s["sentera_id"]: s for s in org["fields"]["results"][0]["surveys"]["results"]}
    assert [fs["sentera_id"] for fs in surveys[a.survey]["feature_sets"]] == [third]
    assert [fs["sentera_id"] for fs in surveys[a.survey2]["feature_sets"]] == [second]

    lookup = "query($id: ID!) { feature_set(sentera_id: $id) { sentera_id name } }"
    assert setup.query(lookup, id=second)["feature_set"] == {
        "sentera_id": second,
        "name": "Alpha set 1",
    }
    assert setup.query(lookup, id=first)["feature_set"] is None
    assert setup.query(lookup, id=a.survey)["feature_set"] is None


def test_every_sync_files_owner_is_discoverable(engine: Engine, setup: Setup) -> None:
    """Walking from `organizations` finds every owner sync_files accepts, and so every file."""
    a = setup.a
    mosaic, mosaic_file = sid("MO"), sid("FI")
    owned = {owner: sid("FI") for owner in (a.survey, a.field, *a.feature_sets["SURVEY"])}
    (
        Changeset(a.user)
        .add("mosaics", {"sentera_id": mosaic, "survey_sentera_id": a.survey} | MOSAIC)
        .add(
            "files",
            file_record(mosaic_file, "MOSAIC", mosaic, "ortho.tif"),
            file_record(owned[a.survey], "SURVEY", a.survey, "log.txt"),
            file_record(owned[a.field], "FIELD", a.field, "boundary.shp"),
            *(
                file_record(owned[fs], "FEATURE_SET", fs, "set.geojson")
                for fs in a.feature_sets["SURVEY"]
            ),
        )
        .apply(engine)
    )
    walk = "{ organizations { results { sentera_id " + NAVIGATION_BODY + " } } }"
    owners: list[dict[str, str]] = []
    for org in setup.query(walk)["organizations"]["results"]:
        owners += [owner_of("LOGO", logo["sentera_id"]) for logo in org["logos"]]
        owners += [owner_of("FEATURE_SET", fs["sentera_id"]) for fs in org["feature_sets"]]
        for field_ in org["fields"]["results"]:
            owners.append(owner_of("FIELD", field_["sentera_id"]))
            owners += [owner_of("FEATURE_SET", fs["sentera_id"]) for fs in field_["feature_sets"]]
            for survey in field_["surveys"]["results"]:
                owners.append(owner_of("SURVEY", survey["sentera_id"]))
                owners += [
                    owner_of("FEATURE_SET", fs["sentera_id"]) for fs in survey["feature_sets"]
                ]
                mosaics = survey["mosaics"]["results"]
                owners += [owner_of("MOSAIC", m["sentera_id"]) for m in mosaics]
    files = """
    query($owners: [FileOwnerInput!]!) {
      sync_files(owners: $owners, content_hashes: []) {
        remaining_count upserted { sentera_id } failed { key } } }
    """
    page = setup.query(files, owners=owners)["sync_files"]
    assert page["failed"] is None and page["remaining_count"] == 0
    assert {f["sentera_id"] for f in page["upserted"]} == {
        a.logo_file,
        mosaic_file,
        *owned.values(),
    }
    assert setup.b.logo_file not in str(page)


def test_other_tenants_sets_and_logos_are_invisible(engine: Engine, setup: Setup) -> None:
    a, b = setup.a, setup.b
    # Nothing of B is reachable by a member of A.
    assert setup.query(NAVIGATION, org=b.org)["organization"] is None
    lookup = "query($id: ID!) { feature_set(sentera_id: $id) { sentera_id name } }"
    for fs in (fs for ids in b.feature_sets.values() for fs in ids):
        assert setup.query(lookup, id=fs)["feature_set"] is None

    # A logo and a set moved from A to B disappear from A's lists, and their values are
    # nowhere in A's answers.
    moved_set = a.feature_sets["ORGANIZATION"][0]
    (
        Changeset(a.user)
        .add("logos", {"sentera_id": a.logo, "organization_sentera_id": b.org})
        .add("feature_sets", {"sentera_id": moved_set, "owner_sentera_id": b.org})
        .apply(engine, now=T1)
    )
    Changeset(b.user).add("feature_sets", {"sentera_id": moved_set, "name": "Bravo secret"}).apply(
        engine, now=T2
    )
    org = setup.query(NAVIGATION, org=a.org)["organization"]
    assert org["logos"] == [] and org["feature_sets"] == []
    assert setup.query(lookup, id=moved_set)["feature_set"] is None
    everything = setup.query("{ organizations { results { sentera_id " + NAVIGATION_BODY + " } } }")
    assert "Bravo" not in str(everything) and moved_set not in str(everything)
    page = setup.sync([owner_of("ORGANIZATION", a.org), owner_of("ORGANIZATION", b.org)])
    assert page["upserted"] == [] and "Bravo" not in str(page)

    # B sees both under its organization.
    org = setup.query(NAVIGATION, token=setup.token_b, org=b.org)["organization"]
    assert {logo["sentera_id"] for logo in org["logos"]} == {b.logo, a.logo}
    assert moved_set in [fs["sentera_id"] for fs in org["feature_sets"]]
