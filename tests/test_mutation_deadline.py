"""A mutation stopped by the request time limit keeps nothing it wrote: the fields that had
finished before the deadline are rolled back with the rest. Real HTTP, each backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.mutation_support import Team, data


def many_upserts(fields: int) -> str:
    """`fields` aliased upserts of the same images variable: seconds of writing in all."""
    selections = " ".join(
        f"u{n}: upsert_images(survey_sentera_id: $survey, images: $images) {{ failed {{ index }} }}"
        for n in range(fields)
    )
    return f"mutation($survey: ID!, $images: [ImageImport!]!) {{ {selections} }}"


def test_a_mutation_past_the_deadline_writes_nothing(engine: Engine, database_url: str) -> None:
    server = LiveServer(engine, database_url, 32 * 1024 * 1024, request_timeout=0.3, rate_limit=0)
    try:
        team = Team(engine, server)
        before = data(engine)
        variables: dict[str, Any] = {
            "survey": team.world.survey,
            "images": [{"filename": f"IMG_{n:04d}.jpg"} for n in range(500)],
        }
        response = server.post(many_upserts(20), variables, team.editor.token)
        assert response.status_code == 503, response.text[:500]
        assert response.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
        assert data(engine) == before
    finally:
        server.stop()
