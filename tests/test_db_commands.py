"""The operator commands, run as a real process: `db status`, `db upgrade`, `load`, `token` and
`db copy` (SQLite into a fresh PostgreSQL database, then checked row by row and sync by sync)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, inspect, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine
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
from tests.ops_support import free_port

# Every test here runs the real `fieldsync` command as a process (about a second each).
pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"^created (\d+), updated (\d+), unchanged (\d+), deleted (\d+)$")


def _fieldsync_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("fieldsync")
    if beside_python.is_file():
        return [str(beside_python)]
    found = shutil.which("fieldsync")
    if found:
        return [found]
    return [sys.executable, "-m", "fieldsync"]


FIELDSYNC = _fieldsync_command()


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `fieldsync` command, with no FIELDSYNC_* settings inherited."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    return subprocess.run(
        [*FIELDSYNC, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


# -- worlds ----------------------------------------------------------------------------------


class World:
    """A world with one of every kind (and a survey big enough for two sync_images pages)."""

    def __init__(self, images: int = 1200) -> None:
        self.org, self.child_org, self.user = sid("OR"), sid("OR"), sid("US")
        self.field, self.survey, self.survey2 = sid("AS"), sid("CO"), sid("CO")
        self.images = [sid("IM") for _ in range(images)]
        self.images2 = [sid("IM") for _ in range(20)]
        self.mosaic, self.cog = sid("MO"), sid("CG")
        self.feature_set, self.logo = sid("FS"), sid("LO")
        self.files = {
            "SURVEY": sid("FI"),
            "MOSAIC": sid("FI"),
            "FIELD": sid("FI"),
            "FEATURE_SET": sid("FI"),
            "LOGO": sid("FI"),
        }
        self.survey_files = [sid("FI") for _ in range(30)]
        self.tasks = [sid("TA") for _ in range(12)]
        self.new_org = sid("OR")

    def owners(self) -> list[dict[str, str]]:
        owner_of = {
            "SURVEY": self.survey,
            "MOSAIC": self.mosaic,
            "FIELD": self.field,
            "FEATURE_SET": self.feature_set,
            "LOGO": self.logo,
        }
        return [{"owner_type": kind, "sentera_id": owner} for kind, owner in owner_of.items()]

    def create(self) -> dict[str, Any]:
        owners = {entry["owner_type"]: entry["sentera_id"] for entry in self.owners()}
        return (
            Changeset(self.user)
            .add(
                "organizations",
                organization_record(self.org, "Acme"),
                organization_record(self.child_org, "Acme West", parent_sentera_id=self.org),
            )
            .add(
                "users",
                user_record(
                    self.user, "ada@acme.test", [self.org], first_name="Ada", last_name="Lovelace"
                ),
            )
            .add(
                "fields",
                field_record(self.field, self.org, name="North 40", latitude=45.3, longitude=-93.5),
            )
            .add(
                "surveys",
                survey_record(
                    self.survey,
                    self.field,
                    name="June flight",
                    start_time="2024-06-01T14:00:00Z",
                    end_time="2024-06-01T14:40:00Z",
                ),
                survey_record(self.survey2, self.field, name="July"),
            )
            .add(
                "images",
                *(
                    image_record(
                        image_id,
                        self.survey,
                        f"IMG_{n:05d}.jpg",
                        captured_at="2024-06-01T14:03:11.250000Z",
                        size=6_000_000_000 + n,
                    )
                    for n, image_id in enumerate(self.images)
                ),
                *(
                    image_record(image_id, self.survey2, "b.jpg", located=False)
                    for image_id in self.images2
                ),
            )
            .add(
                "mosaics",
                mosaic_record(
                    self.mosaic,
                    self.survey,
                    self.images[:25],
                    name="Full RGB",
                    mosaic_type="RGB",
                    quality="FULL",
                    area={"value": 40.2, "unit": "ACRE"},
                    is_from_sentera_sensor=True,
                ),
            )
            .add("cogs", cog_record(self.cog, self.mosaic, "SUCCESS", max_zoom=19))
            .add(
                "feature_sets",
                feature_set_record(
                    self.feature_set,
                    "SURVEY",
                    self.survey,
                    name="Stand count",
                    type="SV_PLANT_COUNT",
                ),
            )
            .add("logos", logo_record(self.logo, self.org, name="Logo"))
            .add(
                "files",
                *(
                    file_record(file_id, kind, owners[kind], f"{kind.lower()}.bin", size=1024)
                    for kind, file_id in self.files.items()
                ),
                *(
                    file_record(
                        file_id,
                        "SURVEY",
                        self.survey,
                        f"doc{n}.pdf",
                        file_type="DOCUMENT",
                        version=1,
                    )
                    for n, file_id in enumerate(self.survey_files)
                ),
            )
            .add(
                "flight_tasks",
                *(
                    flight_task_record(
                        task,
                        self.child_org if n % 3 else self.org,
                        name=f"Scout {n}",
                        field_sentera_id=self.field,
                    )
                    for n, task in enumerate(self.tasks)
                ),
            )
            .document()
        )

    def change(self) -> dict[str, Any]:
        """Updates, moves and deletes, so tombstones and old item versions exist; and the root
        organization gets a parent created after it (a higher id than its own)."""
        return {
            "actor_sentera_id": self.user,
            "upsert": {
                "organizations": [
                    {"sentera_id": self.new_org, "name": "Holding"},
                    {"sentera_id": self.org, "parent_sentera_id": self.new_org},
                ],
                "images": [
                    {"sentera_id": image_id, "filename": f"renamed_{n}.jpg"}
                    for n, image_id in enumerate(self.images[:40:4])
                ]
                + [{"sentera_id": self.images[50], "survey_sentera_id": self.survey2}],
                "files": [
                    {"sentera_id": self.survey_files[0], "version": 2},
                    {
                        "sentera_id": self.survey_files[1],
                        "owner_type": "FIELD",
                        "owner_sentera_id": self.field,
                    },
                ],
                "flight_tasks": [
                    {"sentera_id": self.tasks[0], "status": "COMPLETED"},
                    {"sentera_id": self.tasks[1], "organization_sentera_id": self.org},
                ],
                "cogs": [{"sentera_id": self.cog, "status": "FAIL", "error": "tile too big"}],
            },
            "delete": [*self.images[1:40:3], self.survey_files[5], self.tasks[2], self.survey2],
        }


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def load(database_url: str, path: Path) -> tuple[int, int, int, int]:
    if database_url.startswith("sqlite:///") and not Path(database_url[10:]).exists():
        assert (
            cli("db", "upgrade", "--database-url", database_url).returncode == 0
        )  # load never creates
    result = cli("load", str(path), "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    match = SUMMARY.match(result.stdout.strip())
    assert match is not None, result.stdout
    created, updated, unchanged, deleted = (int(group) for group in match.groups())
    return created, updated, unchanged, deleted


def new_token(database_url: str, user: str) -> str:
    result = cli("token", "create", user, "--expires-in", "30d", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# -- reading back ----------------------------------------------------------------------------

DATA_TABLES = t.data_tables()


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in DATA_TABLES
        }


def all_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value of every table, in primary key order."""
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in DATA_TABLES
        }


def graphql(engine: Engine, token: str, query: str, **variables: Any) -> tuple[int, Any]:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    response = executor.run(token, GraphQLRequest(query=query, variables=variables))
    return response.status, response.body


ME = "query { me { sentera_id } }"

ITEM = """
    sentera_id content_hash created_at updated_at
    created_by { sentera_id } updated_by { sentera_id }
"""
SYNC_IMAGES = f"""
query($hashes: [String!]!, $survey: ID!) {{
  sync_images(content_hashes: $hashes, survey_sentera_id: $survey) {{
    remaining_count
    failed {{ key message details }}
    deleted {{ sentera_id content_hash ... on Image {{ filename }} }}
    upserted {{ {ITEM} ... on Image {{
      filename latitude longitude altitude captured_at size survey {{ sentera_id }} }} }}
  }}
}}"""
SYNC_FILES = f"""
query($hashes: [String!]!, $owners: [FileOwnerInput!]!) {{
  sync_files(content_hashes: $hashes, owners: $owners) {{
    remaining_count
    failed {{ key message details }}
    deleted {{ sentera_id content_hash ... on File {{ filename }} }}
    upserted {{ {ITEM} ... on File {{
      action filename download_filename file_type path size version
      file_owner {{ owner_type sentera_id }} }} }}
  }}
}}"""
SYNC_TASKS = f"""
query($hashes: [String!]!, $org: ID!, $descendants: Boolean) {{
  sync_flight_tasks(content_hashes: $hashes, organization_sentera_id: $org,
                    include_descendant_organizations: $descendants) {{
    remaining_count
    deleted {{ sentera_id content_hash }}
    upserted {{ {ITEM} ... on FlightTask {{
      name status organization {{ sentera_id }} field {{ sentera_id }} }} }}
  }}
}}"""
SYNC_MOSAICS_AND_COGS = f"""
query($hashes: [String!]!, $survey: ID!) {{
  sync_mosaics(content_hashes: $hashes, survey_sentera_id: $survey) {{
    remaining_count deleted {{ sentera_id content_hash }}
    upserted {{ {ITEM} ... on Mosaic {{ name mosaic_type area {{ value unit }}
      images {{ total_count }} }} }}
  }}
  sync_cogs(content_hashes: $hashes, survey_sentera_id: $survey) {{
    remaining_count deleted {{ sentera_id content_hash }}
    upserted {{ {ITEM} ... on Cog {{ status error max_zoom }} }}
  }}
}}"""


def sync_loop(
    engine: Engine, token: str, query: str, field: str, start: list[str], **scope: Any
) -> list[Any]:
    """Every page a client starting from `start` hashes receives until remaining_count is 0."""
    hashes = dict.fromkeys(start)
    pages: list[Any] = []
    for _ in range(20):
        status, body = graphql(engine, token, query, hashes=list(hashes), **scope)
        assert status == 200 and "errors" not in body, body
        page = body["data"][field]
        pages.append(page)
        for entry in page["deleted"]:
            hashes.pop(entry["content_hash"], None)
        for entry in page["upserted"]:
            hashes[entry["content_hash"]] = None
        if page["remaining_count"] == 0:
            return pages
    raise AssertionError("the sync loop did not converge")


def sync_answers(
    engine: Engine, token: str, world: World, held: dict[str, list[str]]
) -> dict[str, Any]:
    """The sync answers a client gets, from nothing and from the hashes it held before."""
    answers: dict[str, Any] = {}
    for start_name, start in (("empty", []), ("held", None)):
        answers[f"images/{start_name}"] = sync_loop(
            engine,
            token,
            SYNC_IMAGES,
            "sync_images",
            held["images"] if start is None else start,
            survey=world.survey,
        )
        answers[f"files/{start_name}"] = sync_loop(
            engine,
            token,
            SYNC_FILES,
            "sync_files",
            held["files"] if start is None else start,
            owners=world.owners(),
        )
        answers[f"tasks/{start_name}"] = sync_loop(
            engine,
            token,
            SYNC_TASKS,
            "sync_flight_tasks",
            held["tasks"] if start is None else start,
            org=world.org,
            descendants=True,
        )
    status, body = graphql(engine, token, SYNC_MOSAICS_AND_COGS, hashes=[], survey=world.survey)
    assert status == 200, body
    answers["mosaics+cogs"] = body
    return answers


def held_hashes(engine: Engine, token: str, world: World) -> dict[str, list[str]]:
    def hashes(pages: list[Any]) -> list[str]:
        return [entry["content_hash"] for page in pages for entry in page["upserted"]]

    return {
        "images": hashes(
            sync_loop(engine, token, SYNC_IMAGES, "sync_images", [], survey=world.survey)
        ),
        "files": hashes(
            sync_loop(engine, token, SYNC_FILES, "sync_files", [], owners=world.owners())
        ),
        "tasks": hashes(
            sync_loop(
                engine,
                token,
                SYNC_TASKS,
                "sync_flight_tasks",
                [],
                org=world.org,
                descendants=True,
            )
        ),
    }


# -- the command itself ------------------------------------------------------------------------


def test_the_command_runs_as_a_module_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fieldsync", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "fieldsync, version " in result.stdout


# -- db status / db upgrade --------------------------------------------------------------------


def test_status_of_an_empty_database_says_it_needs_upgrade(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url[10:]).touch()  # an empty file: `db status` never creates one
    result = cli("db", "status", "--database-url", database_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "current empty" in result.stdout
    assert "needs 'fieldsync db upgrade'" in result.stdout
    no_traceback(result)


def test_upgrade_then_status_then_upgrade_again(database_url: str) -> None:
    first = cli("db", "upgrade", "--database-url", database_url)
    assert first.returncode == 0, first.stderr
    match = re.fullmatch(r"schema empty -> (\w+)\n", first.stdout)
    assert match is not None, first.stdout
    head = match.group(1)

    status = cli("db", "status", "--database-url", database_url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.strip() == f"current {head}, head {head}: up to date"

    engine = make_engine(database_url)
    try:
        tables_before = sorted(inspect(engine).get_table_names())
        again = cli("db", "upgrade", "--database-url", database_url)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"schema {head} -> {head}"
        assert sorted(inspect(engine).get_table_names()) == tables_before
        assert {table.name for table in DATA_TABLES} <= set(tables_before)
    finally:
        engine.dispose()


def test_status_with_a_bad_url_is_a_clear_error() -> None:
    result = cli("db", "status", "--database-url", "mysql://someone@somewhere/db")
    assert result.returncode != 0
    assert "unsupported database 'mysql'" in result.stderr
    no_traceback(result)


# -- load --------------------------------------------------------------------------------------


def test_load_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    world = World(images=60)
    path = write_json(tmp_path / "world.json", world.create())
    created, updated, unchanged, deleted = load(url, path)
    assert created > 60 and (updated, unchanged, deleted) == (0, 0, 0)

    # The same document again from standard input changes nothing.
    result = cli("load", "-", "--database-url", url, stdin=path.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"created 0, updated 0, unchanged {created}, deleted 0"

    result = cli("load", "-", "--database-url", url, stdin=json.dumps(world.change()))
    assert result.returncode == 0, result.stderr
    match = SUMMARY.match(result.stdout.strip())
    assert match is not None and int(match.group(2)) > 0 and int(match.group(4)) > 0


def test_a_bad_changeset_prints_every_error_with_its_path_and_writes_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    world = World(images=5)
    load(url, write_json(tmp_path / "world.json", world.create()))
    engine = make_engine(url)
    try:
        before = all_rows(engine)
    finally:
        engine.dispose()

    bad = {
        "actor_sentera_id": world.user,
        "upsert": {
            "images": [
                {"sentera_id": sid("IM"), "survey_sentera_id": world.survey, "filename": "ok.jpg"},
                {"sentera_id": sid("IM"), "survey_sentera_id": sid("CO"), "filename": "x.jpg"},
            ],
            "mosaics": [
                {
                    "sentera_id": sid("MO"),
                    "survey_sentera_id": world.survey,
                    "mosaic_type": "RBG",
                    "quality": "FULL",
                }
            ],
            "flight_tasks": [{"sentera_id": sid("TA"), "status": "OPEN"}],
        },
        "delete": [sid("IM")],
    }
    result = cli("load", str(write_json(tmp_path / "bad.json", bad)), "--database-url", url)
    assert result.returncode != 0
    assert result.stdout == ""
    errors = result.stderr
    assert "upsert.images[1].survey_sentera_id" in errors
    assert "upsert.mosaics[0].mosaic_type" in errors and "'RBG'" in errors
    assert "upsert.flight_tasks[0]: missing required key 'organization_sentera_id'" in errors
    assert "delete[0]" in errors
    assert "changeset rejected: 4 error(s); nothing was written" in errors
    no_traceback(result)

    not_json = cli("load", "-", "--database-url", url, stdin='{"upsert": ')
    assert not_json.returncode != 0 and "not valid JSON" in not_json.stderr
    no_traceback(not_json)

    engine = make_engine(url)
    try:
        assert all_rows(engine) == before
    finally:
        engine.dispose()


# -- tokens ------------------------------------------------------------------------------------


def test_token_create_prints_only_the_token_and_it_authenticates_until_revoked(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/fieldsync.db"
    world = World(images=1)
    load(url, write_json(tmp_path / "world.json", world.create()))

    result = cli("token", "create", world.user, "--expires-in", "30d", "--database-url", url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0] == lines[0].strip() and " " not in lines[0]
    token = lines[0]

    engine = make_engine(url)
    try:
        assert graphql(engine, token, ME) == (200, {"data": {"me": {"sentera_id": world.user}}})
        with engine.connect() as conn:
            expires_at = conn.execute(select(t.api_tokens.c.expires_at)).scalar_one()
            created_at = conn.execute(select(t.api_tokens.c.created_at)).scalar_one()
        assert (expires_at - created_at).days == 30

        revoked = cli("token", "revoke", token, "--database-url", url)
        assert revoked.returncode == 0, revoked.stderr
        status, body = graphql(engine, token, ME)
        assert status == 401
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        engine.dispose()

    again = cli("token", "revoke", token, "--database-url", url)
    assert again.returncode != 0 and again.stderr.strip()
    no_traceback(again)

    unknown = cli("token", "create", sid("US"), "--database-url", url)
    assert unknown.returncode != 0 and unknown.stdout == ""
    no_traceback(unknown)

    bad_lifetime = cli("token", "create", world.user, "--expires-in", "soon", "--database-url", url)
    assert bad_lifetime.returncode != 0 and bad_lifetime.stdout == ""
    no_traceback(bad_lifetime)


# -- db copy -----------------------------------------------------------------------------------


def _copied_counts(stdout: str) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    total = -1
    for line in stdout.splitlines():
        match = re.match(r"^(\w+)\s+([\d,]+) rows?\b", line)
        assert match is not None, line
        value = int(match.group(2).replace(",", ""))
        if match.group(1) == "total":
            total = value
        else:
            counts[match.group(1)] = value
    return counts, total


def add_upload_and_secret(engine: Engine, user: str) -> None:
    """Rows for the tables the world's changesets do not fill: an upload, a server secret and
    a COG job."""
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        user_id = conn.execute(
            select(t.users.c.id).where(t.users.c.sentera_id == user)
        ).scalar_one()
        conn.execute(insert(t.server_secrets).values(name="copied", value="s3cret", created_at=now))
        conn.execute(
            insert(t.blob_uploads).values(
                id="upload-1",
                multipart=False,
                filename="a.bin",
                byte_size=3,
                checksum="kAFQmDzST7DWlj99KOF/cg==",
                storage_key="k",
                created_by_id=user_id,
                created_at=now,
            )
        )
        cog_id = conn.execute(select(func.min(t.cogs.c.id))).scalar_one()
        file_id = conn.execute(select(func.min(t.files.c.id))).scalar_one()
        conn.execute(
            insert(t.cog_jobs).values(
                cog_id=cog_id,
                source_file_id=file_id,
                mosaic_type="RGB",
                actor_id=user_id,
                state="queued",
                attempts=0,
                max_attempts=3,
                run_after=now,
                created_at=now,
                updated_at=now,
            )
        )


def test_db_copy_from_sqlite_to_a_fresh_postgresql_keeps_everything(
    tmp_path: Path, new_postgres_database: Callable[[], str]
) -> None:
    source_url = f"sqlite:///{tmp_path}/fieldsync.db"
    world = World()
    load(source_url, write_json(tmp_path / "world.json", world.create()))
    token = new_token(source_url, world.user)
    source = make_engine(source_url)
    held = held_hashes(source, token, world)
    load(source_url, write_json(tmp_path / "change.json", world.change()))
    revoked = new_token(source_url, world.user)
    assert cli("token", "revoke", revoked, "--database-url", source_url).returncode == 0
    add_upload_and_secret(source, world.user)

    target_url = new_postgres_database()
    target = make_engine(target_url)
    try:
        source_counts = row_counts(source)
        assert all(source_counts.values()), source_counts  # every table has rows to copy
        with source.connect() as conn:
            assert conn.execute(
                select(func.count()).select_from(t.images).where(t.images.c.deleted_at.isnot(None))
            ).scalar_one()

        result = cli("db", "copy", "--from", source_url, "--to", target_url)
        assert result.returncode == 0, result.stderr
        no_traceback(result)
        printed, total = _copied_counts(result.stdout)
        assert printed == source_counts
        assert total == sum(source_counts.values())
        assert "committed" in result.stdout.splitlines()[-1]

        # Same rows, value for value: ids, hashes, representations, tombstones, tokens.
        assert row_counts(target) == source_counts
        assert all_rows(target) == all_rows(source)

        # Same sync answers, from nothing and from a client's stale hashes.
        assert sync_answers(target, token, world, held) == sync_answers(source, token, world, held)
        deleted_pages = sync_answers(target, token, world, held)["images/held"]
        assert any(page["deleted"] for page in deleted_pages)

        # A token made before the copy works; a revoked one stays revoked.
        assert graphql(target, token, ME) == (200, {"data": {"me": {"sentera_id": world.user}}})
        assert graphql(target, revoked, ME)[0] == 401

        # New rows get fresh ids (sequences were moved past the copied ids).
        more = {
            "actor_sentera_id": world.user,
            "upsert": {
                "images": [
                    {
                        "sentera_id": sid("IM"),
                        "survey_sentera_id": world.survey,
                        "filename": "n.jpg",
                    }
                ],
                "files": [
                    {
                        "sentera_id": sid("FI"),
                        "owner_type": "FIELD",
                        "owner_sentera_id": world.field,
                        "filename": "n.pdf",
                        "file_type": "DOCUMENT",
                    }
                ],
                "organizations": [{"sentera_id": sid("OR"), "name": "Acme East"}],
            },
        }
        assert load(target_url, write_json(tmp_path / "more.json", more))[0] == 3
        new_token(target_url, world.user)
        after = row_counts(target)
        assert after["images"] == source_counts["images"] + 1
        assert after["api_tokens"] == source_counts["api_tokens"] + 1

        # A target that holds data is refused, and nothing is written to it.
        before = all_rows(target)
        refused = cli("db", "copy", "--from", source_url, "--to", target_url)
        assert refused.returncode == 1
        assert "not empty" in refused.stderr and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1
        no_traceback(refused)
        assert all_rows(target) == before

        # And back again: PostgreSQL into a new SQLite file gives the same rows.
        round_trip_url = f"sqlite:///{tmp_path}/round-trip.db"
        back = cli("db", "copy", "--from", target_url, "--to", round_trip_url)
        assert back.returncode == 0, back.stderr
        round_trip = make_engine(round_trip_url)
        try:
            assert all_rows(round_trip) == all_rows(target)
        finally:
            round_trip.dispose()
    finally:
        source.dispose()
        target.dispose()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:{port}/fieldsync", "cannot reach target"),
        ("mysql://someone@somewhere/db", "unsupported database 'mysql'"),
        ("not a url", "not a database URL"),
        ("SOURCE", "the same database"),
    ],
    ids=["unreachable", "unsupported", "malformed", "same-database"],
)
def test_db_copy_errors_are_one_clear_line(tmp_path: Path, target: str, message: str) -> None:
    source_url = f"sqlite:///{tmp_path}/fieldsync.db"
    load(source_url, write_json(tmp_path / "world.json", World(images=2).create()))
    target = source_url if target == "SOURCE" else target.format(port=free_port())
    result = cli("db", "copy", "--from", source_url, "--to", target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr
    no_traceback(result)


def test_db_copy_from_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = cli(
        "db", "copy", "--from", f"sqlite:///{missing}", "--to", f"sqlite:///{tmp_path}/new.db"
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert not missing.exists()
    no_traceback(result)


def test_db_copy_into_a_non_empty_sqlite_target_is_refused(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path}/source.db"
    target_url = f"sqlite:///{tmp_path}/target.db"
    load(source_url, write_json(tmp_path / "a.json", World(images=3).create()))
    load(target_url, write_json(tmp_path / "b.json", World(images=1).create()))
    target = make_engine(target_url)
    try:
        before = all_rows(target)
        result = cli("db", "copy", "--from", source_url, "--to", target_url)
        assert result.returncode == 1
        assert "is not empty" in result.stderr and "Nothing was written" in result.stderr
        no_traceback(result)
        assert all_rows(target) == before
    finally:
        target.dispose()
