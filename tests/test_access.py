"""Who reads what (sync-semantics.md §5), through the HTTP app.

Two tenants: A (an organization A with a child A1 and a grandchild A2) and B. A scope the caller
may not read is answered byte for byte like one that does not exist (apart from the id in the
message); members of an organization read its descendants, never its ancestors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.tokens import create_token
from tests.builder import (
    Changeset,
    cog_record,
    feature_set_record,
    field_record,
    file_record,
    flight_task_record,
    image_record,
    logo_record,
    mosaic_record,
    organization_record,
    sid,
    survey_record,
    user_record,
)
from tests.conftest import ServerClient

SELECTION = (
    "remaining_count upserted { sentera_id content_hash } deleted { sentera_id content_hash } "
    "failed { key message code reason details }"
)

# query -> the scope argument
SINGLE_SCOPE = {
    "sync_cogs": "survey_sentera_id",
    "sync_mosaics": "survey_sentera_id",
    "sync_images": "survey_sentera_id",
    "sync_surveys": "field_sentera_id",
    "sync_flight_tasks": "organization_sentera_id",
    "sync_fields": "organization_sentera_id",
}
BY_ORGANIZATION = ("sync_flight_tasks", "sync_fields")
OWNER_TYPES = ("SURVEY", "MOSAIC", "FIELD", "FEATURE_SET", "LOGO")


def single_query(name: str, descendants: bool | None = None) -> str:
    argument = SINGLE_SCOPE[name]
    if name in BY_ORGANIZATION:
        return (
            f"query Q($id: ID!, $hashes: [String!]!, $desc: Boolean) {{ {name}({argument}: $id, "
            "content_hashes: $hashes, include_descendant_organizations: $desc) "
            f"{{ {SELECTION} }} }}"
        )
    return (
        f"query Q($id: ID!, $hashes: [String!]!) {{ {name}({argument}: $id, "
        f"content_hashes: $hashes) {{ {SELECTION} }} }}"
    )


FILES_QUERY = (
    "query Q($owners: [FileOwnerInput!]!, $hashes: [String!]!) { "
    f"sync_files(owners: $owners, content_hashes: $hashes) {{ {SELECTION} }} }}"
)


@dataclass
class Tenant:
    """One organization and one of everything below it."""

    name: str
    org: str
    parent: str | None
    field: str
    survey: str
    image: str
    mosaic: str
    cog: str
    feature_set: str
    logo: str
    task: str
    files: dict[str, str]
    """owner type -> the file it owns"""

    @classmethod
    def fresh(cls, name: str, parent: str | None = None) -> Tenant:
        return cls(
            name=name,
            org=sid("OR"),
            parent=parent,
            field=sid("AS"),
            survey=sid("CO"),
            image=sid("IM"),
            mosaic=sid("MO"),
            cog=sid("CG"),
            feature_set=sid("FS"),
            logo=sid("LO"),
            task=sid("TA"),
            files={owner_type: sid("FI") for owner_type in OWNER_TYPES},
        )

    def scope(self, query: str) -> str:
        argument = SINGLE_SCOPE[query]
        if argument == "survey_sentera_id":
            return self.survey
        if argument == "field_sentera_id":
            return self.field
        return self.org

    def items(self, query: str) -> set[str]:
        """What the query returns for this tenant's scope (without descendants)."""
        return {
            "sync_cogs": {self.cog},
            "sync_mosaics": {self.mosaic},
            "sync_images": {self.image},
            "sync_surveys": {self.survey},
            "sync_flight_tasks": {self.task},
            "sync_fields": {self.field},
        }[query]

    def owners(self) -> list[dict[str, str]]:
        ids = {
            "SURVEY": self.survey,
            "MOSAIC": self.mosaic,
            "FIELD": self.field,
            "FEATURE_SET": self.feature_set,
            "LOGO": self.logo,
        }
        return [{"owner_type": t, "sentera_id": ids[t]} for t in OWNER_TYPES]

    def upsert(self) -> dict[str, list[dict[str, Any]]]:
        owners = {o["owner_type"]: o["sentera_id"] for o in self.owners()}
        name = self.name
        files = [
            file_record(file_id, owner_type, owners[owner_type], f"{name}-{owner_type}.txt")
            for owner_type, file_id in self.files.items()
        ]
        return (
            Changeset()
            .add(
                "organizations",
                organization_record(self.org, f"{name} org", parent_sentera_id=self.parent),
            )
            .add("fields", field_record(self.field, self.org, name=f"{name} field"))
            .add("surveys", survey_record(self.survey, self.field, name=f"{name} survey"))
            .add("images", image_record(self.image, self.survey, f"{name}.jpg"))
            .add(
                "mosaics",
                mosaic_record(
                    self.mosaic,
                    self.survey,
                    [self.image],
                    name=f"{name} mosaic",
                    mosaic_type="RGB",
                    quality="FULL",
                ),
            )
            .add("cogs", cog_record(self.cog, self.mosaic, "SUCCESS"))
            .add(
                "feature_sets",
                feature_set_record(
                    self.feature_set,
                    "SURVEY",
                    self.survey,
                    name=f"{name} stand count",
                    type="SV_PLANT_COUNT",
                ),
            )
            .add("logos", logo_record(self.logo, self.org))
            .add("files", *files)
            .add("flight_tasks", flight_task_record(self.task, self.org, name=f"{name} task"))
            .upsert
        )


@dataclass
class Tenants:
    a: Tenant
    a1: Tenant
    a2: Tenant
    b: Tenant
    user_a: str
    user_a1: str
    user_b: str
    gone: dict[str, str]
    """A deleted scope of A per query (a tombstone)."""


def _user(sentera_id: str, last_name: str, org: str) -> dict[str, Any]:
    return user_record(sentera_id, f"{last_name.lower()}@example.test", [org], last_name=last_name)


def build_tenants(engine) -> Tenants:
    a = Tenant.fresh("Alpha")
    a1 = Tenant.fresh("AlphaChild", parent=a.org)
    a2 = Tenant.fresh("AlphaGrandchild", parent=a1.org)
    b = Tenant.fresh("Bravo")
    user_a, user_a1, user_b = sid("US"), sid("US"), sid("US")
    changeset = Changeset(user_a)
    for tenant in (a, a1, a2, b):
        changeset.merge(tenant.upsert())
    changeset.add(
        "users",
        _user(user_a, "Anders", a.org),
        _user(user_a1, "Achebe", a1.org),
        _user(user_b, "Brontë", b.org),
    )
    gone = {"org": sid("OR"), "field": sid("AS"), "survey": sid("CO")}
    changeset.add(
        "organizations", organization_record(gone["org"], "Gone", parent_sentera_id=a.org)
    )
    changeset.add("fields", field_record(gone["field"], a.org, name="Gone"))
    changeset.add("surveys", survey_record(gone["survey"], a.field))
    changeset.apply(engine)
    Changeset(user_a, delete=list(gone.values())).apply(engine)
    return Tenants(
        a=a,
        a1=a1,
        a2=a2,
        b=b,
        user_a=user_a,
        user_a1=user_a1,
        user_b=user_b,
        gone={
            "survey_sentera_id": gone["survey"],
            "field_sentera_id": gone["field"],
            "organization_sentera_id": gone["org"],
        },
    )


@pytest.fixture
def tenants(engine) -> Tenants:
    return build_tenants(engine)


def fresh_like(sentera_id: str) -> str:
    """A well-formed id of the same type that names nothing."""
    return sid(sentera_id.split("_")[1])


def masked(response: httpx.Response, ids: list[str]) -> bytes:
    """The body with the ids replaced by placeholders, and without the request's own id (which
    differs for every request by design)."""
    request_id = response.headers["x-request-id"].encode()
    content = response.content.replace(request_id, b"<request>")
    for index, sentera_id in enumerate(ids):
        content = content.replace(sentera_id.encode(), f"<id{index}>".encode())
    return content


def sync(
    server: ServerClient, token: str, name: str, scope: str, descendants: bool | None = None
) -> dict[str, Any]:
    variables: dict[str, Any] = {"id": scope, "hashes": []}
    if name in BY_ORGANIZATION:
        variables["desc"] = descendants
    response = server.post(single_query(name), variables, token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def synced_ids(body: dict[str, Any], name: str) -> set[str]:
    assert "errors" not in body, body["errors"]
    result = body["data"][name]
    assert result["remaining_count"] == 0
    return {item["sentera_id"] for item in result["upserted"]}


def assert_not_found(body: dict[str, Any], name: str) -> None:
    assert body["data"] == {name: None}, body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["NOT_FOUND"]


# -- another tenant looks like nothing -----------------------------------------------------


def test_other_tenants_scope_is_answered_as_not_found(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    token = create_token(engine, tenants.user_a)
    a, b = tenants.a, tenants.b
    for name in SINGLE_SCOPE:
        # Our own scope works.
        assert synced_ids(sync(app_server, token, name, a.scope(name)), name) == a.items(name)
        for descendants in (None, False, True) if name in BY_ORGANIZATION else (None,):
            variables: dict[str, Any] = {"hashes": [], "desc": descendants}
            if name not in BY_ORGANIZATION:
                del variables["desc"]
            answers = []
            ids = [
                b.scope(name),  # another tenant's
                fresh_like(b.scope(name)),  # nothing
                tenants.gone[SINGLE_SCOPE[name]],  # deleted
                b.image,  # another tenant's object of the wrong type
                a.image,  # our own object of the wrong type
                "not-an-id",
            ]
            for scope in ids:
                response = app_server.post(single_query(name), {**variables, "id": scope}, token)
                assert response.status_code == 200
                assert_not_found(response.json(), name)
                assert scope in response.json()["errors"][0]["message"]
                answers.append(masked(response, [scope]))
            assert len(set(answers)) == 1, (name, answers)


def test_other_tenants_file_owners_are_invalid_owners(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    token = create_token(engine, tenants.user_a)
    a, b = tenants.a, tenants.b

    def files(owners: list[dict[str, str]], hashes: list[str] | None = None) -> httpx.Response:
        response = app_server.post(FILES_QUERY, {"owners": owners, "hashes": hashes or []}, token)
        assert response.status_code == 200
        assert "errors" not in response.json()
        return response

    theirs = b.owners()
    nothing = [{**o, "sentera_id": fresh_like(o["sentera_id"])} for o in theirs]
    their_ids = [o["sentera_id"] for o in theirs]
    nothing_ids = [o["sentera_id"] for o in nothing]
    answer = files(theirs)
    assert masked(answer, their_ids) == masked(files(nothing), nothing_ids)
    result = answer.json()["data"]["sync_files"]
    assert result["upserted"] == [] and result["deleted"] == [] and result["remaining_count"] == 0
    assert [(f["key"], f["message"], f["details"]) for f in result["failed"]] == [
        ("invalid_object", "Invalid owner", owner) for owner in theirs
    ]

    # Mixed with our own owners: ours are synced, theirs fail, in the same way as nothing.
    mine = a.owners()
    mixed = [x for pair in zip(mine, theirs, strict=True) for x in pair]
    mixed_nothing = [x for pair in zip(mine, nothing, strict=True) for x in pair]
    answer = files(mixed)
    assert masked(answer, their_ids) == masked(files(mixed_nothing), nothing_ids)
    result = answer.json()["data"]["sync_files"]
    assert {f["sentera_id"] for f in result["upserted"]} == set(a.files.values())
    assert [f["details"] for f in result["failed"]] == theirs

    # An owner given with the wrong owner_type is invalid too, even when we can read it.
    wrong = [
        {"owner_type": "SURVEY", "sentera_id": a.mosaic},
        {"owner_type": "LOGO", "sentera_id": a.org},
    ]
    result = files(wrong).json()["data"]["sync_files"]
    assert result["upserted"] == []
    assert [f["details"] for f in result["failed"]] == wrong


def test_hashes_of_another_tenant_are_ignored(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    a, b = tenants.a, tenants.b
    token_a = create_token(engine, tenants.user_a)
    token_b = create_token(engine, tenants.user_b)
    their_images = sync(app_server, token_b, "sync_images", b.survey)["data"]["sync_images"]
    their_files = app_server.post(
        FILES_QUERY, {"owners": b.owners(), "hashes": []}, token_b
    ).json()["data"]["sync_files"]
    their_hashes = [i["content_hash"] for i in their_images["upserted"] + their_files["upserted"]]
    apply_changeset(engine, {"actor_sentera_id": tenants.user_b, "delete": [b.image, b.survey]})

    response = app_server.post(
        single_query("sync_images"), {"id": a.survey, "hashes": their_hashes}, token_a
    )
    result = response.json()["data"]["sync_images"]
    assert result["deleted"] == [] and result["failed"] is None
    assert {i["sentera_id"] for i in result["upserted"]} == {a.image}
    response = app_server.post(FILES_QUERY, {"owners": a.owners(), "hashes": their_hashes}, token_a)
    result = response.json()["data"]["sync_files"]
    assert result["deleted"] == [] and result["failed"] is None
    assert {f["sentera_id"] for f in result["upserted"]} == set(a.files.values())
    assert b.image not in response.text and b.survey not in response.text


# -- descendants ---------------------------------------------------------------------------


def test_members_read_descendants_but_not_ancestors(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    a, a1, a2 = tenants.a, tenants.a1, tenants.a2
    token_a = create_token(engine, tenants.user_a)
    token_a1 = create_token(engine, tenants.user_a1)
    for name in SINGLE_SCOPE:
        # A member of A reads A, its child A1 and its grandchild A2.
        for tenant in (a, a1, a2):
            body = sync(app_server, token_a, name, tenant.scope(name))
            assert synced_ids(body, name) == tenant.items(name)
        # A member of A1 reads A1 and A2 ...
        for tenant in (a1, a2):
            body = sync(app_server, token_a1, name, tenant.scope(name))
            assert synced_ids(body, name) == tenant.items(name)
        # ... but not its parent A: exactly as if A did not exist.
        for descendants in (False, True) if name in BY_ORGANIZATION else (None,):
            parent = a.scope(name)
            missing = fresh_like(parent)
            variables: dict[str, Any] = {"hashes": [], "desc": descendants}
            theirs = app_server.post(single_query(name), {**variables, "id": parent}, token_a1)
            nothing = app_server.post(single_query(name), {**variables, "id": missing}, token_a1)
            assert_not_found(theirs.json(), name)
            assert masked(theirs, [parent]) == masked(nothing, [missing])

    # sync_files: A's owners are invalid for a member of A1; A1's and A2's are fine.
    response = app_server.post(
        FILES_QUERY, {"owners": a.owners() + a1.owners() + a2.owners(), "hashes": []}, token_a1
    )
    result = response.json()["data"]["sync_files"]
    assert {f["sentera_id"] for f in result["upserted"]} == set(a1.files.values()) | set(
        a2.files.values()
    )
    assert [f["details"] for f in result["failed"]] == a.owners()
    assert {f["key"] for f in result["failed"]} == {"invalid_object"}

    # A member of A reads every owner of A, A1 and A2.
    response = app_server.post(
        FILES_QUERY, {"owners": a.owners() + a1.owners() + a2.owners(), "hashes": []}, token_a
    )
    result = response.json()["data"]["sync_files"]
    assert result["failed"] is None
    assert len(result["upserted"]) == 15


def test_include_descendant_organizations(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    token_a = create_token(engine, tenants.user_a)
    token_a1 = create_token(engine, tenants.user_a1)
    token_b = create_token(engine, tenants.user_b)
    for name in BY_ORGANIZATION:
        check_descendants(app_server, tenants, name, token_a, token_a1, token_b)


def check_descendants(
    app_server: ServerClient, tenants: Tenants, name: str, token_a: str, token_a1: str, token_b: str
) -> None:
    a, a1, a2, b = tenants.a, tenants.a1, tenants.a2, tenants.b

    def ids(token: str, org: str, descendants: bool | None) -> set[str]:
        return synced_ids(sync(app_server, token, name, org, descendants), name)

    everything_a = a.items(name) | a1.items(name) | a2.items(name)
    assert ids(token_a, a.org, False) == a.items(name)
    assert ids(token_a, a.org, None) == a.items(name)
    assert ids(token_a, a.org, True) == everything_a
    assert ids(token_a, a1.org, False) == a1.items(name)
    assert ids(token_a, a1.org, True) == a1.items(name) | a2.items(name)
    assert ids(token_a, a2.org, True) == a2.items(name)
    assert ids(token_a1, a1.org, True) == a1.items(name) | a2.items(name)
    assert ids(token_a1, a1.org, False) == a1.items(name)
    assert_not_found(sync(app_server, token_a1, name, a.org, True), name)
    assert ids(token_b, b.org, True) == b.items(name)
    assert_not_found(sync(app_server, token_b, name, a.org, True), name)

    # The argument may be left out of the query altogether (default false).
    argument = SINGLE_SCOPE[name]
    query = f'{{ {name}({argument}: "{a.org}", content_hashes: []) {{ {SELECTION} }} }}'
    response = app_server.post(query, token=token_a)
    assert synced_ids(response.json(), name) == a.items(name)

    # Holding the hashes of everything below A, a client syncing without descendants is told
    # nothing about them (they are in another scope), and with descendants has nothing to do.
    response = app_server.post(
        single_query(name), {"id": a.org, "hashes": [], "desc": True}, token_a
    )
    held = [item["content_hash"] for item in response.json()["data"][name]["upserted"]]
    for descendants in (True, False):
        response = app_server.post(
            single_query(name), {"id": a.org, "hashes": held, "desc": descendants}, token_a
        )
        result = response.json()["data"][name]
        assert result["upserted"] == []
        assert result["deleted"] == [] and result["remaining_count"] == 0


# -- users and tokens ----------------------------------------------------------------------


def test_deleted_users_token_stops_working(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    token = create_token(engine, tenants.user_a)
    other = create_token(engine, tenants.user_a1)
    query = (
        f'{{ me {{ sentera_id }} sync_images(survey_sentera_id: "{tenants.a1.survey}", '
        "content_hashes: []) { upserted { sentera_id created_by { sentera_id } } } }"
    )
    response = app_server.post(query, token=token)
    assert response.status_code == 200
    assert response.json()["data"]["me"] == {"sentera_id": tenants.user_a}

    apply_changeset(engine, {"actor_sentera_id": tenants.user_a1, "delete": [tenants.user_a]})

    response = app_server.post(query, token=token)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Traceback" not in response.text
    # Other users are unaffected, and what the deleted user created stays attributed to it.
    response = app_server.post(query, token=other)
    assert response.status_code == 200, response.text
    [image] = response.json()["data"]["sync_images"]["upserted"]
    assert image["created_by"] == {"sentera_id": tenants.user_a}
    # A new token cannot be made for a deleted user.
    with pytest.raises(Exception, match="no user"):
        create_token(engine, tenants.user_a)


# -- nothing of another tenant leaks through a sync page -----------------------------------

LEAKY_SELECTION = """
  remaining_count
  deleted {
    sentera_id content_hash
    ... on FlightTask { name organization { sentera_id name } field { sentera_id name } }
    ... on File { filename download_filename file_owner { owner_type sentera_id } }
    ... on Cog { mosaic { sentera_id name } survey { sentera_id name } }
    ... on Mosaic { name cogs { sentera_id } files { filename } }
  }
  upserted {
    sentera_id content_hash
    ... on FlightTask { name organization { sentera_id name } field { sentera_id name } }
    ... on File { filename download_filename file_owner { owner_type sentera_id } }
    ... on Cog { mosaic { sentera_id name } survey { sentera_id name } }
  }
"""


def test_item_moved_to_another_tenant_does_not_leak_it(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    """A client of A holding an item that moves into tenant B is told it is gone (its
    sentera_id and the hash it held, §2), but learns nothing of B from the entry."""
    a, b = tenants.a, tenants.b
    token = create_token(engine, tenants.user_a)
    queries: dict[str, tuple[str, dict[str, Any], str]] = {
        "sync_flight_tasks": (
            "query Q($id: ID!, $h: [String!]!) { sync_flight_tasks(organization_sentera_id: $id, "
            f"content_hashes: $h) {{ {LEAKY_SELECTION} }} }}",
            {"id": a.org},
            a.task,
        ),
        "sync_files": (
            "query Q($owners: [FileOwnerInput!]!, $h: [String!]!) { sync_files(owners: $owners, "
            f"content_hashes: $h) {{ {LEAKY_SELECTION} }} }}",
            {"owners": a.owners()},
            a.files["SURVEY"],
        ),
        "sync_cogs": (
            "query Q($id: ID!, $h: [String!]!) { sync_cogs(survey_sentera_id: $id, "
            f"content_hashes: $h) {{ {LEAKY_SELECTION} }} }}",
            {"id": a.survey},
            a.cog,
        ),
        "sync_mosaics": (
            "query Q($id: ID!, $h: [String!]!) { sync_mosaics(survey_sentera_id: $id, "
            f"content_hashes: $h) {{ {LEAKY_SELECTION} }} }}",
            {"id": a.survey},
            a.mosaic,
        ),
    }
    held: dict[str, dict[str, str]] = {}
    for name, (query, variables, _moved) in queries.items():
        response = app_server.post(query, {**variables, "h": []}, token)
        assert "errors" not in response.json(), response.text
        held[name] = {
            i["sentera_id"]: i["content_hash"] for i in response.json()["data"][name]["upserted"]
        }

    secret = "Bravo-only secret"
    apply_changeset(
        engine,
        {
            "actor_sentera_id": tenants.user_b,
            "upsert": {
                "flight_tasks": [
                    {
                        "sentera_id": a.task,
                        "organization_sentera_id": b.org,
                        "field_sentera_id": b.field,
                        "name": secret,
                    }
                ],
                "files": [
                    {
                        "sentera_id": a.files["SURVEY"],
                        "owner_sentera_id": b.survey,
                        "filename": f"{secret}.txt",
                        "download_filename": f"{secret}.txt",
                    }
                ],
                "mosaics": [
                    {
                        "sentera_id": a.mosaic,
                        "survey_sentera_id": b.survey,
                        "image_sentera_ids": [],
                        "name": secret,
                    }
                ],
            },
        },
    )
    b_ids = [b.org, b.field, b.survey]
    b_names = [secret, "Bravo org", "Bravo field", "Bravo survey"]
    leaks: dict[str, list[str]] = {}
    for name, (query, variables, moved) in queries.items():
        response = app_server.post(query, {**variables, "h": list(held[name].values())}, token)
        assert response.status_code == 200
        result = response.json()["data"][name]
        assert [(d["sentera_id"], d["content_hash"]) for d in result["deleted"]] == [
            (moved, held[name][moved])
        ], name
        leaked = [value for value in b_ids + b_names if value in response.text]
        if leaked:
            leaks[name] = leaked
        if name == "sync_mosaics":
            # The moved mosaic's COGs and files now hang below tenant B: not listed.
            assert (result["deleted"][0]["cogs"], result["deleted"][0]["files"]) == ([], [])
    assert leaks == {}, f"deleted entries show tenant B's data to a member of A: {leaks}"


def test_references_do_not_reach_into_another_tenant(
    engine, app_server: ServerClient, tenants: Tenants
) -> None:
    """A flight task of A that names B's field and survey does not let A read them."""
    a, b = tenants.a, tenants.b
    task = sid("TA")
    try:
        apply_changeset(
            engine,
            {
                "actor_sentera_id": tenants.user_a,
                "upsert": {
                    "flight_tasks": [
                        {
                            "sentera_id": task,
                            "organization_sentera_id": a.org,
                            "status": "OPEN",
                            "field_sentera_id": b.field,
                            "survey_sentera_id": b.survey,
                        }
                    ]
                },
            },
        )
    except ChangesetError:
        return  # refusing a reference across tenants is one way to keep B private
    token = create_token(engine, tenants.user_a)
    query = (
        f'{{ sync_flight_tasks(organization_sentera_id: "{a.org}", content_hashes: []) {{ '
        "upserted { sentera_id ... on FlightTask { field { name organization { name } } "
        "survey { name field { name } } } } } }"
    )
    response = app_server.post(query, token=token)
    assert response.status_code == 200
    leaked = [n for n in ("Bravo org", "Bravo field", "Bravo survey") if n in response.text]
    assert leaked == [], f"a member of A reads tenant B's {leaked}: {json.loads(response.text)}"
