"""Schema migrations, on SQLite and PostgreSQL: they build exactly the schema `tables.metadata`
describes, running them again changes nothing, and a database made at the first revision
upgrades in place to head with its data and its sync answers intact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, Table, inspect, select, text

import fieldsync.storage.migrate as migrate_module
from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import schema_status, upgrade
from fieldsync.tokens import create_token
from tests.builder import (
    Changeset,
    cog_record,
    field_record,
    file_record,
    flight_task_record,
    image_record,
    mosaic_record,
    organization_record,
    sid,
    survey_record,
    user_record,
)

FIRST_REVISION = "0001"
SCRIPTS = ScriptDirectory(str(Path(migrate_module.__file__).with_name("migrations")))
HEAD = SCRIPTS.get_current_head()


@pytest.fixture
def empty_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an EMPTY database of each backend (no schema yet)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def schema_diff(engine: Engine, metadata: MetaData = t.metadata) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def schema_of(engine: Engine) -> dict[str, Any]:
    """Everything reflection tells about the schema, as comparable text."""
    inspector = inspect(engine)
    described: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        described[name] = repr(
            (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                inspector.get_pk_constraint(name),
                sorted(map(repr, inspector.get_foreign_keys(name))),
                sorted(map(repr, inspector.get_unique_constraints(name))),
                sorted(
                    repr((i["name"], i["column_names"], i["unique"]))
                    for i in inspector.get_indexes(name)
                ),
            )
        )
    return described


def alembic_revision(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_the_first_revision_is_the_base_of_the_history() -> None:
    assert SCRIPTS.get_base() == FIRST_REVISION
    assert HEAD is not None


def test_upgrade_creates_the_schema(empty_engine: Engine) -> None:
    assert inspect(empty_engine).get_table_names() == []
    before = schema_status(empty_engine)
    assert before.current is None and not before.up_to_date

    after = upgrade(empty_engine)

    assert after.current == HEAD and after.up_to_date
    tables = set(inspect(empty_engine).get_table_names())
    assert tables == {table.name for table in t.metadata.sorted_tables} | {"alembic_version"}
    assert alembic_revision(empty_engine) == [HEAD]


def test_the_migrated_schema_matches_the_table_definitions_exactly(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert schema_diff(empty_engine) == []

    # The partial indexes of the sync hot path keep their WHERE clause.
    dialect = empty_engine.dialect.name
    inspector = inspect(empty_engine)
    for table in t.metadata.sorted_tables:
        for index in table.indexes:
            expected = index.dialect_options[dialect].get("where")
            if expected is None:
                continue
            reflected = {i["name"]: i for i in inspector.get_indexes(table.name)}[index.name]
            predicate = str(reflected.get("dialect_options", {}).get(f"{dialect}_where"))
            assert "deleted_at IS NULL" in predicate, (index.name, predicate)


def test_the_comparison_would_notice_a_difference(empty_engine: Engine) -> None:
    """Guards the test above: an extra column and a missing table both show in the diff."""
    upgrade(empty_engine)
    changed = MetaData(naming_convention=t.metadata.naming_convention)
    for table in t.metadata.sorted_tables:
        if table.name != "logos":
            table.to_metadata(changed)
    images = changed.tables["images"]
    images.append_column(Column("brand_new", Integer, nullable=True))
    kinds = {entry[0] for entry in schema_diff(empty_engine, changed)}
    assert {"add_column", "remove_table"} <= kinds


def test_upgrading_twice_is_a_no_op(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    world = World()
    apply_changeset(empty_engine, world.create())
    schema = schema_of(empty_engine)
    rows = all_rows(empty_engine)

    status = upgrade(empty_engine)

    assert status.current == HEAD and status.up_to_date
    assert alembic_revision(empty_engine) == [HEAD]
    assert schema_of(empty_engine) == schema
    assert all_rows(empty_engine) == rows


def test_a_database_made_at_the_first_revision_upgrades_in_place_and_keeps_its_data(
    empty_engine: Engine, tmp_path: Path
) -> None:
    status = upgrade(empty_engine, FIRST_REVISION)
    assert status.current == FIRST_REVISION
    assert alembic_revision(empty_engine) == [FIRST_REVISION]

    # Data as a FieldSync of that revision wrote it, with some history (updates, deletes).
    world = World()
    old_rows = write_at_first_revision(empty_engine, world, tmp_path)
    assert old_rows["images"] and old_rows["item_versions"]

    status = upgrade(empty_engine)

    assert status.current == HEAD and status.up_to_date
    assert schema_diff(empty_engine) == []
    # Every row and every value the old schema held is still there.
    reflected = MetaData()
    for name, rows in old_rows.items():
        if not rows:
            continue
        table = Table(name, reflected, autoload_with=empty_engine)
        head_table = t.metadata.tables.get(name, table)
        # Read with today's column types where a column still exists (UTC timestamps).
        columns = [
            head_table.c[column] if column in head_table.c else table.c[column]
            for column in rows[0]._fields
        ]
        with empty_engine.connect() as conn:
            keys = [c for c in columns if c.name in table.primary_key.columns]
            now = conn.execute(select(*columns).order_by(*keys)).all()
        assert [tuple(row) for row in now] == [tuple(row) for row in rows], name

    # Sync still answers: every live image of the survey, with the hashes it had.
    token = create_token(empty_engine, world.user)
    page = sync_images(empty_engine, token, world.survey, [])
    live = [image for image in world.images if image not in world.deleted_images]
    assert sorted(entry["sentera_id"] for entry in page["upserted"]) == sorted(live)
    assert page["remaining_count"] == 0
    stored = {
        row.sentera_id: row.content_hash for row in old_rows["images"] if row.sentera_id in live
    }
    assert {e["sentera_id"]: e["content_hash"] for e in page["upserted"]} == {
        sentera_id: _b64(raw) for sentera_id, raw in stored.items()
    }
    # A client holding a deleted image's hash is told it went away.
    gone = sync_images(empty_engine, token, world.survey, [world.deleted_hash])
    assert [entry["content_hash"] for entry in gone["deleted"]] == [world.deleted_hash]

    # And the upgraded database takes new writes.
    summary = apply_changeset(
        empty_engine,
        {
            "actor_sentera_id": world.user,
            "upsert": {
                "images": [
                    {"sentera_id": sid("IM"), "survey_sentera_id": world.survey, "filename": "n"}
                ]
            },
        },
    )
    assert summary.created == 1


# -- helpers -----------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")


class World:
    def __init__(self) -> None:
        self.org, self.user, self.field, self.survey = sid("OR"), sid("US"), sid("AS"), sid("CO")
        self.images = [sid("IM") for _ in range(12)]
        self.mosaic, self.cog, self.file, self.task = sid("MO"), sid("CG"), sid("FI"), sid("TA")
        self.deleted_images = self.images[:3]
        self.deleted_hash = ""

    def create(self) -> dict[str, Any]:
        return (
            Changeset(self.user)
            .add("organizations", organization_record(self.org, "Acme"))
            .add("users", user_record(self.user, "a@acme.test", [self.org]))
            .add("fields", field_record(self.field, self.org, name="N"))
            .add("surveys", survey_record(self.survey, self.field))
            .add(
                "images",
                *(
                    image_record(
                        image,
                        self.survey,
                        f"IMG_{n}.jpg",
                        located=False,
                        latitude=45.5,
                        captured_at="2024-06-01T14:03:11Z",
                    )
                    for n, image in enumerate(self.images)
                ),
            )
            .add(
                "mosaics",
                mosaic_record(
                    self.mosaic,
                    self.survey,
                    self.images[:6],
                    mosaic_type="NDVI",
                    quality="PREVIEW",
                ),
            )
            .add("cogs", cog_record(self.cog, self.mosaic, "PENDING"))
            .add(
                "files",
                file_record(self.file, "MOSAIC", self.mosaic, "ortho.tif", file_type="MOSAIC"),
            )
            .add("flight_tasks", flight_task_record(self.task, self.org))
            .document()
        )

    def change(self) -> dict[str, Any]:
        return {
            "actor_sentera_id": self.user,
            "upsert": {
                "images": [{"sentera_id": self.images[5], "filename": "renamed.jpg"}],
                "cogs": [{"sentera_id": self.cog, "status": "SUCCESS"}],
            },
            "delete": self.deleted_images,
        }


def all_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in t.metadata.sorted_tables
        }


def write_at_first_revision(engine: Engine, world: World, tmp_path: Path) -> dict[str, Any]:
    """Fill a database that is at FIRST_REVISION with a world, and return its rows.

    The changesets are applied by today's code to a scratch database, and only the columns the
    first revision's tables have are written to `engine`, so this stays true to what that
    revision could hold after later revisions change the tables.
    """
    scratch = make_engine(f"sqlite:///{tmp_path}/scratch.db")
    try:
        upgrade(scratch)
        apply_changeset(scratch, world.create())
        token = create_token(scratch, world.user)
        before = sync_images(scratch, token, world.survey, [])
        hashes = {entry["sentera_id"]: entry["content_hash"] for entry in before["upserted"]}
        world.deleted_hash = hashes[world.deleted_images[0]]
        apply_changeset(scratch, world.change())
        old = MetaData()
        old.reflect(engine)
        rows: dict[str, Any] = {}
        with scratch.connect() as source, engine.begin() as target:
            for table in t.metadata.sorted_tables:
                if table.name not in old.tables:
                    continue
                old_table = old.tables[table.name]
                columns = [table.c[c.name] for c in old_table.columns if c.name in table.c]
                data = source.execute(select(*columns).order_by(*table.primary_key.columns)).all()
                if data:
                    target.execute(table.insert(), [dict(row._mapping) for row in data])
                rows[table.name] = data
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                for table in t.metadata.sorted_tables:
                    if "id" in table.c and table.name in old.tables:
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"
                            )
                        )
        return rows
    finally:
        scratch.dispose()


SYNC_IMAGES = """
query($hashes: [String!]!, $survey: ID!) {
  sync_images(content_hashes: $hashes, survey_sentera_id: $survey) {
    remaining_count
    deleted { sentera_id content_hash }
    upserted { sentera_id content_hash ... on Image { filename } }
  }
}"""


def sync_images(engine: Engine, token: str, survey: str, hashes: list[str]) -> Any:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    response = executor.run(
        token, GraphQLRequest(query=SYNC_IMAGES, variables={"hashes": hashes, "survey": survey})
    )
    assert response.status == 200 and "errors" not in response.body, response.body
    return response.body["data"]["sync_images"]
