"""What a query's snapshot reads before it runs: the caller's organizations, with the BEGIN on
PostgreSQL (`storage.database.statement_deadline`), and the scope it looks up, taken from
`sync.scopes.LOCATED` while the revisions of the tables the lookup reads are unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select, text
from sqlalchemy.exc import DBAPIError

from fieldsync.access import (
    organization_access,
    organization_access_of,
    organization_access_read,
)
from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.ids import TypeCode
from fieldsync.storage import tables as t
from fieldsync.storage.api_tokens import user_id_of
from fieldsync.storage.database import read_snapshot, statement_deadline, write_transaction
from fieldsync.storage.sql import DriverRead, driver_rows
from fieldsync.sync.scopes import LOCATED, Located, LocatedCache, locate_many
from fieldsync.tokens import create_token
from tests.builder import Changeset, World, build_world

SYNC_IMAGES = """
query($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id }
  }
}
"""


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def located() -> Iterator[LocatedCache]:
    LOCATED.clear()
    yield LOCATED
    LOCATED.clear()


def _user_id(engine: Engine, sentera_id: str) -> int:
    with engine.connect() as conn:
        user_id = user_id_of(conn, sentera_id, live_only=True)
    assert user_id is not None
    return user_id


def test_the_first_reads_are_answered_in_the_snapshot_as_driver_rows_answers_them(
    engine: Engine, world: World
) -> None:
    user_id = _user_id(engine, world.user)
    users = DriverRead(select(t.users.c.sentera_id, t.users.c.created_at), {})
    with read_snapshot(engine) as conn:
        expected = [
            driver_rows(conn, read.statement, read.parameters)
            for read in (organization_access_read(user_id), users)
        ]
    with (
        read_snapshot(engine) as conn,
        statement_deadline(
            conn, 12.5, lambda: False, [organization_access_read(user_id), users]
        ) as rows,
    ):
        assert rows == expected
        assert organization_access_of(rows[0]) == organization_access(conn, user_id)
        assert organization_access_of(rows[0]).readable  # the world's user is a member
        assert all(isinstance(created_at, datetime) for _, created_at in rows[1])
        if engine.dialect.name == "postgresql":  # the SET LOCAL went in the same pipeline
            timeout = conn.execute(text("SHOW statement_timeout")).scalar_one()
            assert timeout == "12500ms"


def test_a_first_read_that_fails_raises_sqlalchemys_error_and_leaves_the_pool_usable(
    engine: Engine, world: World
) -> None:
    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    with (
        pytest.raises(DBAPIError, match="no_such_table"),
        read_snapshot(engine) as conn,
        statement_deadline(conn, 5, lambda: False, [DriverRead(select(missing.c.id), {})]),
    ):
        pytest.fail("the failed read must not let the block run")
    with read_snapshot(engine) as conn, statement_deadline(conn, 5, lambda: False) as rows:
        assert rows == []
        assert conn.execute(select(t.users.c.sentera_id)).scalars().all()


def test_a_located_scope_is_kept_only_where_the_revisions_were_read_at_begin(
    engine: Engine, world: World, located: LocatedCache
) -> None:
    def locate() -> dict[str, Located]:
        with read_snapshot(engine) as conn, statement_deadline(conn, 5, lambda: False):
            return locate_many(conn, TypeCode.SURVEY, [world.survey])

    first = locate()
    assert locate() == first and set(first) == {world.survey}
    if engine.dialect.name == "sqlite":  # the revisions are not read at BEGIN: nothing kept
        assert len(located) == 0 and located.hits == 0
        return
    assert (located.misses, located.hits) == (1, 1)
    with write_transaction(engine) as conn:  # outside FieldSync: only the trigger knows
        conn.execute(text("UPDATE fields SET updated_at = updated_at"))
    assert locate() == first and located.misses == 2  # the fields' revision changed
    Changeset(world.user, delete=[world.survey]).apply(engine)
    assert locate() == {}
    with write_transaction(engine) as conn:  # a write transaction never uses the cache
        assert locate_many(conn, TypeCode.SURVEY, [world.survey]) == {}
    assert (located.misses, located.hits) == (3, 1)


def test_a_caller_removed_from_the_organization_loses_a_scope_it_synced_before(
    engine: Engine, world: World, located: LocatedCache
) -> None:
    """The caller's organizations are read anew by every request, whatever is kept."""
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    token = create_token(engine, world.user)
    request = GraphQLRequest(SYNC_IMAGES, {"survey": world.survey, "hashes": []})
    for _ in range(2):
        answer = executor.run(token, request)
        assert answer.status == 200 and "errors" not in answer.body, answer.body
        assert answer.body["data"]["sync_images"]["upserted"]
    with write_transaction(engine) as conn:
        conn.execute(t.memberships.delete())
    answer = executor.run(token, request)
    assert answer.status == 200
    assert answer.body["data"] == {"sync_images": None}
    assert [e["extensions"]["code"] for e in answer.body["errors"]] == ["NOT_FOUND"]
    assert answer.body["errors"][0]["message"] == f"survey {world.survey!r} not found"


def test_a_sqlite_begin_that_fails_raises_sqlalchemys_error_and_leaves_the_pool_usable(
    engine: Engine,
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("FieldSync sends SQLite's BEGIN itself; PostgreSQL's is psycopg's")
    with engine.connect() as conn:
        conn.connection.dbapi_connection.close()  # type: ignore[union-attr]
        with pytest.raises(DBAPIError, match="closed database") as raised:
            conn.begin()
        assert raised.value.connection_invalidated
    with read_snapshot(engine) as conn:
        assert conn.execute(select(t.users.c.id)).all() == []
