"""A mutation waits only briefly for another writer: then HTTP 503 WRITER_BUSY with
Retry-After, nothing written; once the other writer is done the same request succeeds. Real
write transaction held open by the test, real HTTP server, each backend."""

from __future__ import annotations

from sqlalchemy import Engine, update

from fieldsync.storage import tables as t
from fieldsync.storage.database import write_transaction
from tests.conftest import LiveServer
from tests.mutation_support import Team, data

UPSERT_FIELDS = """
mutation($org: ID!, $fields: [FieldImport!]!) {
  upsert_fields(organization_sentera_id: $org, fields: $fields) { succeeded { sentera_id } }
}"""


def test_a_mutation_behind_another_writer_is_told_to_retry(
    engine: Engine, live_server: LiveServer
) -> None:
    team = Team(engine, live_server)
    variables: dict[str, object] = {"org": team.world.org, "fields": [{"name": "Waiting field"}]}
    before = data(engine)
    with write_transaction(engine) as conn:
        conn.execute(update(t.organizations).values(name="Being rewritten"))
        busy = live_server.post(UPSERT_FIELDS, variables, team.editor.token)
        conn.rollback()
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    error = busy.json()["errors"][0]
    assert error["extensions"]["code"] == "WRITER_BUSY"
    assert "nothing was written" in error["message"]
    assert data(engine) == before
    again = team.editor.data(UPSERT_FIELDS, **variables)
    assert len(again["upsert_fields"]["succeeded"]) == 1
