"""What the mutation tests share: a client holding one user's token against the live server,
a team of users around a built world, and a snapshot of the data to compare after a rejected
write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from fieldsync.tokens import create_token
from tests.builder import (
    Changeset,
    World,
    build_world,
    field_record,
    organization_record,
    sid,
    snapshot,
    survey_record,
    user_record,
)
from tests.conftest import LiveServer

ITEM = "sentera_id content_hash action updated_at"
RESULT = (
    f"succeeded {{ {ITEM} }} failed {{ index item attributes {{ attribute key message details }} }}"
)


def data(engine: Engine) -> dict[str, Any]:
    """Every data row but the tokens' (a request notes its token's last use)."""
    rows = snapshot(engine)
    rows.pop("api_tokens")
    return rows


class Client:
    """One user's token against the live server."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server, self.token = server, token

    def call(self, document: str, **variables: Any) -> dict[str, Any]:
        response = self.server.post(document, variables, self.token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def data(self, document: str, **variables: Any) -> dict[str, Any]:
        body = self.call(document, **variables)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def sync(self, query: str, scope: dict[str, Any], hashes: list[str]) -> dict[str, Any]:
        arguments = ", ".join(f"{name}: ${name}" for name in scope)
        types = ", ".join(f"${name}: {_type(name)}" for name in scope)
        document = (
            f"query S({types}, $h: [String!]!) {{ {query}({arguments}, content_hashes: $h) "
            f"{{ upserted {{ {ITEM} }} deleted {{ sentera_id content_hash }} remaining_count }} }}"
        )
        result: dict[str, Any] = self.data(document, h=hashes, **scope)[query]
        return result


def _type(name: str) -> str:
    return "[FileOwnerInput!]!" if name == "owners" else "ID!"


def member(engine: Engine, server: LiveServer, actor: str, roles: dict[str, str]) -> Client:
    """A new user with `memberships` (organization sentera_id -> role), and its client."""
    user = sid("US")
    memberships = [{"organization_sentera_id": org, "role": role} for org, role in roles.items()]
    Changeset(actor=actor).add(
        "users", {"sentera_id": user, "email": f"{user[:7]}@acme.test", "memberships": memberships}
    ).apply(engine)
    return Client(server, create_token(engine, user))


class Team:
    """A world with an editor, a viewer and a stranger in another organization."""

    def __init__(self, engine: Engine, server: LiveServer) -> None:
        self.world: World = build_world(engine)
        self.other_org = sid("OR", "Else")
        self.viewer = sid("US")
        self.stranger = sid("US", "Else")
        self.other_field = sid("AS", "Else")
        self.other_survey = sid("CO", "Else")
        Changeset(actor=self.world.user).add(
            "organizations", organization_record(self.other_org, "Else org")
        ).add(
            "users",
            {
                "sentera_id": self.viewer,
                "email": "viewer@acme.test",
                "memberships": [{"organization_sentera_id": self.world.org, "role": "viewer"}],
            },
            user_record(self.stranger, "s@else.test", [self.other_org]),
        ).add("fields", field_record(self.other_field, self.other_org, name="Else field")).add(
            "surveys", survey_record(self.other_survey, self.other_field)
        ).apply(engine)
        self.editor = Client(server, create_token(engine, self.world.user))
        self.reader = Client(server, create_token(engine, self.viewer))
        self.outsider = Client(server, create_token(engine, self.stranger))
