"""An admin manages the members of its organization through the API: adding a user with a role,
changing the role, removing it; what the user may read and write follows at once. Anyone but an
admin is refused and nothing changes. Real HTTP, each backend."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.builder import Changeset, organization_record, sid
from tests.conftest import LiveServer
from tests.mutation_support import Client, Team, data, member

RESULT = (
    "succeeded { user { sentera_id } organization { sentera_id } role } "
    "failed { index item attributes { attribute key message details } }"
)
UPSERT = f"""
mutation($org: ID!, $memberships: [MembershipInput!]!) {{
  upsert_memberships(organization_sentera_id: $org, memberships: $memberships) {{ {RESULT} }}
}}"""
DELETE = f"""
mutation($org: ID!, $users: [ID!]!) {{
  delete_memberships(organization_sentera_id: $org, user_sentera_ids: $users) {{ {RESULT} }}
}}"""
MEMBERS = """
query($org: ID!) { organization(sentera_id: $org) { memberships { user { sentera_id } role } } }
"""
WRITE = """
mutation($org: ID!) { upsert_fields(organization_sentera_id: $org, fields: [{name: "New"}]) {
  succeeded { sentera_id } } }"""


@pytest.fixture
def team(engine: Engine, live_server: LiveServer) -> Team:
    return Team(engine, live_server)


def admin_of(team: Team, engine: Engine, server: LiveServer) -> Client:
    return member(engine, server, team.world.user, {team.world.org: "admin"})


def roles(client: Client, org: str) -> dict[str, Any]:
    found = client.data(MEMBERS, org=org)["organization"]["memberships"]
    return {entry["user"]["sentera_id"]: entry["role"] for entry in found}


def code(body: dict[str, Any]) -> str:
    value: str = body["errors"][0]["extensions"]["code"]
    return value


def test_an_admin_adds_changes_and_removes_a_member(
    team: Team, engine: Engine, live_server: LiveServer
) -> None:
    admin = admin_of(team, engine, live_server)
    org, stranger = team.world.org, team.stranger
    scope = {"survey_sentera_id": team.world.survey}
    assert code(team.outsider.call(WRITE, org=org)) == "NOT_FOUND"

    added = admin.data(
        UPSERT, org=org, memberships=[{"user_sentera_id": stranger, "role": "viewer"}]
    )["upsert_memberships"]
    assert added["succeeded"] == [
        {"user": {"sentera_id": stranger}, "organization": {"sentera_id": org}, "role": "viewer"}
    ]
    assert roles(admin, org)[stranger] == "viewer"
    assert team.outsider.sync("sync_images", scope, [])["upserted"]
    assert code(team.outsider.call(WRITE, org=org)) == "FORBIDDEN"

    admin.data(UPSERT, org=org, memberships=[{"user_sentera_id": stranger, "role": "editor"}])
    assert team.outsider.data(WRITE, org=org)["upsert_fields"]["succeeded"]

    removed = admin.data(DELETE, org=org, users=[stranger])["delete_memberships"]
    assert removed["succeeded"][0]["role"] is None
    assert stranger not in roles(admin, org)
    assert code(team.outsider.call(WRITE, org=org)) == "NOT_FOUND"
    # The stranger keeps its own organization.
    assert team.outsider.data(WRITE, org=team.other_org)["upsert_fields"]["succeeded"]


def test_only_an_admin_manages_members_and_a_refusal_changes_nothing(
    team: Team, engine: Engine
) -> None:
    org = team.world.org
    entry = [{"user_sentera_id": team.stranger, "role": "admin"}]
    before = data(engine)
    assert code(team.editor.call(UPSERT, org=org, memberships=entry)) == "FORBIDDEN"
    assert code(team.reader.call(DELETE, org=org, users=[team.viewer])) == "FORBIDDEN"
    hidden = team.outsider.call(UPSERT, org=org, memberships=entry)
    missing = team.outsider.call(UPSERT, org=sid("OR"), memberships=entry)
    assert code(hidden) == code(missing) == "NOT_FOUND"
    assert data(engine) == before


def test_unknown_users_fail_one_by_one_and_a_parent_admin_manages_a_child(
    team: Team, engine: Engine, live_server: LiveServer
) -> None:
    admin = admin_of(team, engine, live_server)
    child = sid("OR")
    Changeset(actor=team.world.user).add(
        "organizations", organization_record(child, "Child", parent_sentera_id=team.world.org)
    ).apply(engine)
    ghost = sid("US")
    result = admin.data(
        UPSERT,
        org=child,
        memberships=[
            {"user_sentera_id": ghost, "role": "editor"},
            {"user_sentera_id": team.viewer, "role": "editor"},
        ],
    )["upsert_memberships"]
    assert [m["user"]["sentera_id"] for m in result["succeeded"]] == [team.viewer]
    assert result["failed"][0]["index"] == 0
    assert result["failed"][0]["attributes"][0]["key"] == "not_found"
    # The viewer of the parent now writes in the child only.
    assert team.reader.data(WRITE, org=child)["upsert_fields"]["succeeded"]
    assert code(team.reader.call(WRITE, org=team.world.org)) == "FORBIDDEN"
    gone = admin.data(DELETE, org=child, users=[team.stranger])["delete_memberships"]
    assert gone["succeeded"] == [] and gone["failed"][0]["attributes"][0]["key"] == "not_found"
