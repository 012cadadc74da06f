"""Sync under concurrent writes, end to end (PostgreSQL only).

A real `fieldsync serve --workers 3` process serves HTTP while two writers apply changesets
(creates, updates, moves, deletes of images, files and flight tasks) and four clients run the
documented sync loop over HTTP. Every page must be internally consistent; once the writers
stop, every client must converge to exactly the live items of each scope with their current
hashes: nothing lost, nothing duplicated, nothing stale.
"""

from __future__ import annotations

import base64
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, and_, or_, select

from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token
from tests.builder import (
    Changeset,
    field_record,
    file_record,
    flight_task_record,
    image_record,
    organization_record,
    sid,
    survey_record,
    user_record,
)
from tests.ops_support import ServeProcess

WRITERS = 2
CLIENTS = 4
STEPS_PER_WRITER = 20
INITIAL_IMAGES = 1300  # more than one sync_images page (1,000)
PAGE_SIZES = {"sync_images": 1000, "sync_files": 2000, "sync_flight_tasks": 2000}
TIME_LIMIT = 60.0


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    org: str = field(default_factory=lambda: sid("OR"))
    child_org: str = field(default_factory=lambda: sid("OR"))
    user: str = field(default_factory=lambda: sid("US"))
    field_id: str = field(default_factory=lambda: sid("AS"))
    survey_a: str = field(default_factory=lambda: sid("CO"))
    survey_b: str = field(default_factory=lambda: sid("CO"))

    def owners(self) -> list[dict[str, str]]:
        return [
            {"owner_type": "SURVEY", "sentera_id": self.survey_a},
            {"owner_type": "FIELD", "sentera_id": self.field_id},
        ]


@dataclass
class WriterState:
    """The items one writer owns, and where each one is now."""

    images: dict[str, str] = field(default_factory=dict)  # sentera_id -> survey
    files: dict[str, str] = field(default_factory=dict)  # sentera_id -> owner type
    tasks: dict[str, str] = field(default_factory=dict)  # sentera_id -> organization


def initial_world(world: World, writers: list[WriterState]) -> dict[str, Any]:
    changeset = (
        Changeset(world.user)
        .add(
            "organizations",
            organization_record(world.org, "Acme"),
            organization_record(world.child_org, "West", parent_sentera_id=world.org),
        )
        .add("users", user_record(world.user, "a@acme.test", [world.org]))
        .add("fields", field_record(world.field_id, world.org, name="N"))
        .add(
            "surveys",
            survey_record(world.survey_a, world.field_id, name="A"),
            survey_record(world.survey_b, world.field_id, name="B"),
        )
    )
    for n in range(INITIAL_IMAGES):
        survey = world.survey_a if n % 5 else world.survey_b
        image = sid("IM")
        writers[n % len(writers)].images[image] = survey
        changeset.add("images", image_record(image, survey, f"{n}.jpg", located=False))
    for n in range(120):
        owner_type = "SURVEY" if n % 3 else "FIELD"
        owner = world.survey_a if owner_type == "SURVEY" else world.field_id
        file = sid("FI")
        writers[n % len(writers)].files[file] = owner_type
        changeset.add(
            "files", file_record(file, owner_type, owner, f"{n}.pdf", file_type="DOCUMENT")
        )
    for n in range(80):
        org = world.org if n % 2 else world.child_org
        task = sid("TA")
        writers[n % len(writers)].tasks[task] = org
        changeset.add("flight_tasks", flight_task_record(task, org))
    return changeset.document()


def next_changeset(
    world: World, state: WriterState, rng: random.Random, step: int
) -> dict[str, Any]:
    """Creates, updates, moves and deletes among the items this writer owns."""
    other_survey = {world.survey_a: world.survey_b, world.survey_b: world.survey_a}
    other_org = {world.org: world.child_org, world.child_org: world.org}
    owner_of = {"SURVEY": world.survey_a, "FIELD": world.field_id}
    images: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    delete: list[str] = []

    live_images = sorted(state.images)
    touched = rng.sample(live_images, 30)
    for image in touched[:10]:
        images.append({"sentera_id": image, "filename": f"renamed-{step}-{image[:7]}.jpg"})
    for image in touched[10:20]:
        state.images[image] = other_survey[state.images[image]]
        images.append({"sentera_id": image, "survey_sentera_id": state.images[image]})
    for image in touched[20:]:
        del state.images[image]
        delete.append(image)
    for n in range(25):
        image, survey = sid("IM"), world.survey_a if n % 2 else world.survey_b
        state.images[image] = survey
        images.append({"sentera_id": image, "survey_sentera_id": survey, "filename": "new.jpg"})

    touched = rng.sample(sorted(state.files), 9)
    for file in touched[:3]:
        files.append({"sentera_id": file, "version": step})
    for file in touched[3:6]:
        state.files[file] = "FIELD" if state.files[file] == "SURVEY" else "SURVEY"
        files.append(
            {
                "sentera_id": file,
                "owner_type": state.files[file],
                "owner_sentera_id": owner_of[state.files[file]],
            }
        )
    for file in touched[6:]:
        del state.files[file]
        delete.append(file)
    for _ in range(4):
        file = sid("FI")
        state.files[file] = "SURVEY"
        files.append(
            {
                "sentera_id": file,
                "owner_type": "SURVEY",
                "owner_sentera_id": world.survey_a,
                "filename": "new.pdf",
                "file_type": "OTHER",
            }
        )

    touched = rng.sample(sorted(state.tasks), 6)
    for task in touched[:2]:
        tasks.append({"sentera_id": task, "status": "IN_PROGRESS", "name": f"step {step}"})
    for task in touched[2:4]:
        state.tasks[task] = other_org[state.tasks[task]]
        tasks.append({"sentera_id": task, "organization_sentera_id": state.tasks[task]})
    for task in touched[4:]:
        del state.tasks[task]
        delete.append(task)
    for _ in range(3):
        task = sid("TA")
        state.tasks[task] = world.child_org
        tasks.append(
            {"sentera_id": task, "organization_sentera_id": world.child_org, "status": "OPEN"}
        )

    return {
        "actor_sentera_id": world.user,
        "upsert": {"images": images, "files": files, "flight_tasks": tasks},
        "delete": delete,
    }


# -- the client --------------------------------------------------------------------------------

SYNC_IMAGES = """
query($hashes: [String!]!, $survey: ID!) {
  sync_images(content_hashes: $hashes, survey_sentera_id: $survey) {
    remaining_count failed { key }
    deleted { sentera_id content_hash }
    upserted { sentera_id content_hash }
  }
}"""
SYNC_FILES = """
query($hashes: [String!]!, $owners: [FileOwnerInput!]!) {
  sync_files(content_hashes: $hashes, owners: $owners) {
    remaining_count failed { key }
    deleted { sentera_id content_hash }
    upserted { sentera_id content_hash ... on File { file_owner { sentera_id } } }
  }
}"""
SYNC_TASKS = """
query($hashes: [String!]!, $org: ID!) {
  sync_flight_tasks(content_hashes: $hashes, organization_sentera_id: $org,
                    include_descendant_organizations: true) {
    remaining_count failed { key }
    deleted { sentera_id content_hash }
    upserted { sentera_id content_hash }
  }
}"""


@dataclass
class Scope:
    name: str
    query: str
    variables: dict[str, Any]
    held: dict[str, str] = field(default_factory=dict)  # sentera_id -> content hash


class Client:
    """One device: a hash store per scope, and the documented sync loop over HTTP."""

    def __init__(self, url: str, token: str, world: World) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.scopes = [
            Scope("sync_images", SYNC_IMAGES, {"survey": world.survey_a}),
            Scope("sync_files", SYNC_FILES, {"owners": world.owners()}),
            Scope("sync_flight_tasks", SYNC_TASKS, {"org": world.org}),
        ]
        self.calls = 0

    def call(self, scope: Scope) -> dict[str, Any]:
        sent = set(scope.held.values())
        response = self.http.post(
            "/graphql",
            json={"query": scope.query, "variables": {"hashes": list(sent), **scope.variables}},
        )
        self.calls += 1
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        page: dict[str, Any] = body["data"][scope.name]
        check_page(scope.name, page, sent)
        for entry in page["deleted"]:
            if scope.held.get(entry["sentera_id"]) == entry["content_hash"]:
                del scope.held[entry["sentera_id"]]
        for entry in page["upserted"]:
            scope.held[entry["sentera_id"]] = entry["content_hash"]
        return page

    def sync(self, scope: Scope, max_calls: int) -> bool:
        """Run the loop until remaining_count is 0 (True) or max_calls were made (False)."""
        return any(self.call(scope)["remaining_count"] == 0 for _ in range(max_calls))

    def close(self) -> None:
        self.http.close()


def check_page(name: str, page: dict[str, Any], sent: set[str]) -> None:
    deleted, upserted = page["deleted"], page["upserted"]
    assert page["remaining_count"] >= 0, page["remaining_count"]
    assert len(deleted) + len(upserted) <= PAGE_SIZES[name]
    assert page["failed"] is None, page["failed"]
    upserted_ids = [entry["sentera_id"] for entry in upserted]
    assert len(upserted_ids) == len(set(upserted_ids)), f"{name}: an item upserted twice"
    assert not {entry["content_hash"] for entry in upserted} & sent, (
        f"{name}: upserted an item whose current hash the client already holds"
    )
    deleted_hashes = [entry["content_hash"] for entry in deleted]
    assert len(deleted_hashes) == len(set(deleted_hashes)), f"{name}: a hash deleted twice"
    assert set(deleted_hashes) <= sent, f"{name}: deleted a hash the client never sent"
    assert not {entry["sentera_id"] for entry in deleted} & set(upserted_ids), (
        f"{name}: an item both deleted and upserted in one page"
    )


def live_scopes(engine: Engine, world: World) -> dict[str, dict[str, str]]:
    """What each scope holds now, read straight from the tables."""
    s, o, f = t.surveys, t.organizations, t.fields
    with engine.connect() as conn:
        survey_a = conn.execute(select(s.c.id).where(s.c.sentera_id == world.survey_a)).scalar_one()
        field_id = conn.execute(select(f.c.id).where(f.c.sentera_id == world.field_id)).scalar_one()
        orgs = (
            conn.execute(select(o.c.id).where(o.c.sentera_id.in_([world.org, world.child_org])))
            .scalars()
            .all()
        )
        images = conn.execute(
            select(t.images.c.sentera_id, t.images.c.content_hash).where(
                t.images.c.survey_id == survey_a, t.images.c.deleted_at.is_(None)
            )
        ).all()
        files = conn.execute(
            select(t.files.c.sentera_id, t.files.c.content_hash).where(
                t.files.c.deleted_at.is_(None),
                or_(
                    and_(t.files.c.scope_type == "SURVEY", t.files.c.scope_id == survey_a),
                    and_(t.files.c.scope_type == "FIELD", t.files.c.scope_id == field_id),
                ),
            )
        ).all()
        tasks = conn.execute(
            select(t.flight_tasks.c.sentera_id, t.flight_tasks.c.content_hash).where(
                t.flight_tasks.c.organization_id.in_(orgs), t.flight_tasks.c.deleted_at.is_(None)
            )
        ).all()
    return {
        name: {row.sentera_id: b64(row.content_hash) for row in rows}
        for name, rows in (
            ("sync_images", images),
            ("sync_files", files),
            ("sync_flight_tasks", tasks),
        )
    }


# -- the server --------------------------------------------------------------------------------


@pytest.fixture
def pg_engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers and several workers need PostgreSQL")
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Starts `fieldsync serve --workers 3` as a real process; stops it afterwards."""
    servers: list[ServeProcess] = []

    def start() -> str:
        # Four clients share one token and sync flat out: no per-token limit here.
        options = ("--workers", "3", "--log-level", "warning", "--rate-limit", "0")
        server = ServeProcess(tmp_path, database_url, *options)
        servers.append(server)
        return server.base

    yield start
    for server in servers:
        server.stop()


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_clients_converge_to_the_live_scope_while_writers_run(
    pg_engine: Engine, serve: Callable[[], str]
) -> None:
    started = time.monotonic()
    world = World()
    writers = [WriterState() for _ in range(WRITERS)]
    apply_changeset(pg_engine, initial_world(world, writers))
    token = create_token(pg_engine, world.user)
    base_url = serve()

    writing = threading.Event()
    writing.set()
    failures: list[BaseException] = []
    clients = [Client(base_url, token, world) for _ in range(CLIENTS)]

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:
                failures.append(exc)

        return run

    def writer(number: int) -> None:
        rng = random.Random(number)
        for step in range(STEPS_PER_WRITER):
            apply_changeset(pg_engine, next_changeset(world, writers[number], rng, step))
            time.sleep(rng.uniform(0.05, 0.25))

    def client(number: int) -> None:
        me = clients[number]
        rng = random.Random(100 + number)
        while writing.is_set() and not failures:
            scope = rng.choice(me.scopes)
            me.sync(scope, max_calls=3)

    writer_threads = [
        threading.Thread(target=guarded(functools.partial(writer, n))) for n in range(WRITERS)
    ]
    client_threads = [
        threading.Thread(target=guarded(functools.partial(client, n))) for n in range(CLIENTS)
    ]
    for thread in client_threads + writer_threads:
        thread.start()
    for thread in writer_threads:
        thread.join(timeout=TIME_LIMIT)
    writing.clear()
    for thread in client_threads:
        thread.join(timeout=TIME_LIMIT)
    # Every client really synced while the writers ran.
    assert all(me.calls >= 3 for me in clients), [me.calls for me in clients]
    assert not any(thread.is_alive() for thread in writer_threads + client_threads)
    if failures:
        raise failures[0]

    # Writers done: every client converges to exactly the live items of every scope.
    live = live_scopes(pg_engine, world)
    assert all(live.values())
    try:
        for me in clients:
            for scope in me.scopes:
                assert me.sync(scope, max_calls=10), f"{scope.name} did not converge"
                assert scope.held == live[scope.name], scope.name
                # Converged means converged: one more call is an empty page.
                page = me.call(scope)
                assert (page["remaining_count"], page["deleted"], page["upserted"]) == (0, [], [])
    finally:
        for me in clients:
            me.close()
    assert time.monotonic() - started < TIME_LIMIT * 2
