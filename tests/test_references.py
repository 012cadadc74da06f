"""Expanding references on a sync page costs a constant number of queries, not one per item."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.tokens import create_token
from tests.builder import sid

QUERY = """
query Cogs($survey: ID!) {
  sync_cogs(survey_sentera_id: $survey, content_hashes: []) {
    remaining_count
    upserted {
      sentera_id
      created_by { sentera_id last_name }
      ... on Cog { mosaic { sentera_id name } survey { sentera_id name } }
    }
  }
}
"""


def _world(engine: Engine, mosaics: int) -> tuple[str, str]:
    org, user, field, survey = sid("OR"), sid("US"), sid("AS"), sid("CO")
    mosaic_ids = [sid("MO") for _ in range(mosaics)]
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "organizations": [{"sentera_id": org, "name": "Acme"}],
                "users": [
                    {
                        "sentera_id": user,
                        "email": "a@acme.test",
                        "last_name": "Lovelace",
                        "organization_sentera_ids": [org],
                    }
                ],
                "fields": [{"sentera_id": field, "organization_sentera_id": org, "name": "F"}],
                "surveys": [{"sentera_id": survey, "field_sentera_id": field, "name": "S"}],
                "mosaics": [
                    {
                        "sentera_id": mosaic,
                        "survey_sentera_id": survey,
                        "name": f"Mosaic {n}",
                        "mosaic_type": "RGB",
                        "quality": "FULL",
                    }
                    for n, mosaic in enumerate(mosaic_ids)
                ],
                "cogs": [
                    {"mosaic_sentera_id": mosaic, "status": "SUCCESS"} for mosaic in mosaic_ids
                ],
            },
        },
    )
    return user, survey


def _statements_for(engine: Engine, mosaics: int) -> tuple[int, dict[str, Any]]:
    user, survey = _world(engine, mosaics)
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    token = create_token(engine, user)
    statements: list[str] = []

    def count(*_args: Any) -> None:
        statements.append("statement")

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = executor.run(token, GraphQLRequest(QUERY, {"survey": survey}))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status == 200, response.body
    return len(statements), response.body["data"]["sync_cogs"]


def test_expanded_references_are_loaded_in_batches(engine: Engine) -> None:
    few, small = _statements_for(engine, 2)
    many, large = _statements_for(engine, 40)
    assert len(small["upserted"]) == 2 and len(large["upserted"]) == 40
    names = {cog["mosaic"]["name"] for cog in large["upserted"]}
    assert names == {f"Mosaic {n}" for n in range(40)}
    assert {cog["survey"]["name"] for cog in large["upserted"]} == {"S"}
    assert {cog["created_by"]["last_name"] for cog in large["upserted"]} == {"Lovelace"}
    # Twenty times the items, the same number of statements.
    assert many == few
