"""Property tests of sync-semantics §3: a client that applies each page converges, for every
sync query, while the data changes between its calls.

A state machine drives one small world per example (its own organization tree, user and token,
in the test's database): it creates, updates, rewrites unchanged, moves and deletes items through
changesets, and between those steps clients of every sync query call through GraphQL (the real
schema, resolvers and database, in process). A reference model (`tests/model_world.py`) says
which items each scope covers; the database says each item's current content hash. Every page
is checked against both:

- its entries are exactly the first page of the candidates (deleted entries first; upserts in
  creation order, only when every deleted candidate fit), at most the page size, and
  `remaining_count` is exactly what is left (never negative, never counting `failed`);
- a deleted entry names the client's own hash and the item that hash stands for, with the
  item's last fields if it was deleted in the scope, or the fields of the version the client
  holds if it moved out (nothing of its new place shows); an upsert carries the item's current
  hash and fields;
- repeating a call (a client that crashed before applying it) gives the same page; adding
  malformed strings only adds one `invalid_content_hash` failure per distinct string; adding
  hashes of other kinds, of other scopes, of older versions of items in the scope, hashes never
  issued and duplicates changes nothing;
- `remaining_count == 0` exactly when the next call, with the page applied, is empty.

Every write is checked too: the hash of exactly the items whose representation changed is new
(a no-op rewrite changes none; moving a mosaic changes its COGs'), deleted items keep their last
hash, and no two items share one. At the end every client loops to `remaining_count == 0` in
`ceil(total / page size)` calls and then holds exactly the scope's live items with their current
hashes, and a no-op rewrite of the whole world gives every client an empty page.

A separate test pages `sync_fields` (300 a page) through 350 fields, then through 320 deletions.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from sqlalchemy import Engine, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.tokens import create_token
from tests.model_world import (
    CHANGESET_KEYS,
    CHOICES,
    KINDS,
    ScopeSpec,
    WorldModel,
    new_id,
)

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
STEPS = 50
HASH_RE = re.compile(r"^[A-Za-z0-9+/]{16}$")
# Distinct malformed strings (one repeated): not 16 characters, not base64, padded.
MALFORMED = ("short", "not-a-hash!!!!!!", "short", "AAAAAAAAAAAAAAA=")
NEVER_ISSUED = "AAAAAAAAAAAAAAAA"

TABLES = {
    "field": t.fields,
    "survey": t.surveys,
    "image": t.images,
    "mosaic": t.mosaics,
    "cog": t.cogs,
    "file": t.files,
    "task": t.flight_tasks,
}

# What every page asks for each item, beyond __typename, sentera_id and content_hash.
SELECTIONS = {
    "Image": "filename survey { sentera_id }",
    "Mosaic": "name survey { sentera_id } images { total_count }",
    "Cog": "status mosaic { sentera_id } survey { sentera_id }",
    "File": "filename file_owner { owner_type sentera_id }",
    "FlightTask": "status organization { sentera_id } field { sentera_id } survey { sentera_id }",
    "Field": "name organization { sentera_id }",
    "Survey": "name field { sentera_id }",
}


@dataclass(frozen=True)
class SyncQuery:
    field: str
    typename: str
    kind: str
    page_size: int
    arguments: tuple[tuple[str, str], ...]

    @property
    def document(self) -> str:
        return _document(self)


@functools.cache
def _document(query: SyncQuery) -> str:
    declared = "".join(f", ${name}: {kind}" for name, kind in query.arguments)
    used = "".join(f", {name}: ${name}" for name, _ in query.arguments)
    item = (
        f"__typename sentera_id content_hash "
        f"... on {query.typename} {{ {SELECTIONS[query.typename]} }}"
    )
    return (
        f"query Sync($content_hashes: [String!]!{declared}) {{\n"
        f"  {query.field}(content_hashes: $content_hashes{used}) {{\n"
        f"    remaining_count\n"
        f"    failed {{ key message code reason details }}\n"
        f"    deleted {{ {item} }}\n"
        f"    upserted {{ {item} }}\n"
        f"  }}\n"
        f"}}"
    )


SURVEY_ARG = (("survey_sentera_id", "ID!"),)
ORG_ARGS = (("organization_sentera_id", "ID!"), ("include_descendant_organizations", "Boolean"))
# Page sizes are the ones sync-semantics §2 fixes.
SYNC_IMAGES = SyncQuery("sync_images", "Image", "image", 1000, SURVEY_ARG)
SYNC_MOSAICS = SyncQuery("sync_mosaics", "Mosaic", "mosaic", 2000, SURVEY_ARG)
SYNC_COGS = SyncQuery("sync_cogs", "Cog", "cog", 1000, SURVEY_ARG)
SYNC_FILES = SyncQuery("sync_files", "File", "file", 2000, (("owners", "[FileOwnerInput!]!"),))
SYNC_FLIGHT_TASKS = SyncQuery("sync_flight_tasks", "FlightTask", "task", 2000, ORG_ARGS)
SYNC_FIELDS = SyncQuery("sync_fields", "Field", "field", 300, ORG_ARGS)
SYNC_SURVEYS = SyncQuery("sync_surveys", "Survey", "survey", 2000, (("field_sentera_id", "ID!"),))


@functools.cache
def schema() -> Any:
    return build_fieldsync_schema()


@dataclass
class Client:
    """A sync client of one query and scope: the hashes it holds, by sentera_id."""

    label: str
    query: SyncQuery
    variables: dict[str, Any]
    scope: ScopeSpec | None = None
    expected_failed: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The fields that came with each hash the client was given."""

    def hashes(self) -> list[str]:
        return list(self.held.values())

    def apply(self, page: dict[str, Any]) -> None:
        """Drop every deleted entry's hash; store every upsert by sentera_id, replacing."""
        by_hash = {content_hash: sentera_id for sentera_id, content_hash in self.held.items()}
        for entry in page["deleted"]:
            sentera_id = by_hash.get(entry["content_hash"])
            if sentera_id is not None:
                del self.held[sentera_id]
        for entry in page["upserted"]:
            self.held[entry["sentera_id"]] = entry["content_hash"]
            self.seen[entry["content_hash"]] = entry


def is_empty(page: dict[str, Any]) -> bool:
    return not page["deleted"] and not page["upserted"]


def _failure(entry: dict[str, Any]) -> tuple[str, str, str | None]:
    """What the spec fixes of a failure: key, details, and for an invalid owner the message."""
    message = entry["message"] if entry["key"] == "invalid_object" else None
    return entry["key"], json.dumps(entry["details"], sort_keys=True), message


def failures(entries: Iterable[dict[str, Any]] | None) -> list[tuple[str, str, str | None]]:
    return sorted(_failure(entry) for entry in entries or [])


def invalid_hash(value: str) -> dict[str, Any]:
    return {"key": "invalid_content_hash", "details": {"content_hash": value}}


def invalid_owner(owner_type: str, sentera_id: str) -> dict[str, Any]:
    return {
        "key": "invalid_object",
        "message": "Invalid owner",
        "details": {"owner_type": owner_type, "sentera_id": sentera_id},
    }


# What a page entry carries besides its id and hash: (client, sentera_id, the client's hash
# for a deleted entry or None for an upsert) -> fields.
FieldsOf = Callable[[Client, str, str | None], dict[str, Any]]


class SyncHarness:
    """Calls sync queries through GraphQL and checks each page against what is expected."""

    def __init__(self, executor: GraphQLExecutor, token: str) -> None:
        self.executor = executor
        self.token = token

    def call(self, client: Client, hashes: list[str]) -> dict[str, Any]:
        response = self.executor.run(
            self.token,
            GraphQLRequest(client.query.document, {"content_hashes": hashes, **client.variables}),
        )
        assert response.status == 200, (client.label, response.body)
        assert "errors" not in response.body, (client.label, response.body)
        page: dict[str, Any] = response.body["data"][client.query.field]
        return page

    def check_page(
        self,
        client: Client,
        page: dict[str, Any],
        expected: dict[str, str],
        fields_of: FieldsOf | None = None,
    ) -> None:
        """`page` answers `client.held`; `expected` is the scope's live items (sentera_id to
        current hash, in creation order); `fields_of` says what fields each entry carries."""
        query, label = client.query, client.label
        deleted, upserted = page["deleted"], page["upserted"]
        remaining = page["remaining_count"]
        assert len(deleted) + len(upserted) <= query.page_size, label
        assert remaining >= 0, (label, remaining)
        assert failures(page["failed"]) == failures(client.expected_failed), (label, page)

        held_hashes = set(client.held.values())
        upsert_candidates = [s for s, h in expected.items() if h not in held_hashes]
        deleted_candidates = {(s, h) for s, h in client.held.items() if s not in expected}
        n_deleted = min(query.page_size, len(deleted_candidates))
        n_upserted = min(query.page_size - n_deleted, len(upsert_candidates))

        got_deleted = [(entry["sentera_id"], entry["content_hash"]) for entry in deleted]
        assert len(set(got_deleted)) == len(got_deleted), (label, "duplicate deleted", deleted)
        assert set(got_deleted) <= deleted_candidates, (
            label,
            "deleted entries that are not the client's hashes of items gone from the scope",
            sorted(set(got_deleted) - deleted_candidates),
        )
        assert len(got_deleted) == n_deleted, (
            label,
            f"{len(got_deleted)} deleted entries, expected {n_deleted}",
            sorted(deleted_candidates - set(got_deleted)),
        )
        if upserted:
            # Upserts only come once every deleted candidate fit in the page.
            assert len(got_deleted) == len(deleted_candidates), label
        got_upserted = [entry["sentera_id"] for entry in upserted]
        assert got_upserted == upsert_candidates[:n_upserted], (
            label,
            "upserts are not the first candidates in creation order",
            got_upserted,
            upsert_candidates,
        )
        for entry in upserted:
            assert entry["content_hash"] == expected[entry["sentera_id"]], (label, entry)
        total = len(upsert_candidates) + len(deleted_candidates)
        assert remaining == total - n_deleted - n_upserted, (
            label,
            f"remaining_count {remaining}, expected {total - n_deleted - n_upserted}",
        )
        entries = [(entry, entry["content_hash"]) for entry in deleted]
        entries += [(entry, None) for entry in upserted]
        for entry, was in entries:
            assert entry["__typename"] == query.typename, (label, entry)
            assert HASH_RE.match(entry["content_hash"]), (label, entry)
            if fields_of is not None:
                wanted = fields_of(client, entry["sentera_id"], was)
                got = {key: entry[key] for key in wanted}
                assert got == wanted, (label, "deleted" if was else "upserted", got, wanted)

    def converge(
        self,
        client: Client,
        expected: dict[str, str],
        fields_of: FieldsOf | None = None,
        *,
        repeat_each: bool = False,
    ) -> list[dict[str, Any]]:
        """The client loop with nothing changing: ceil(total / page size) calls (one when there
        is nothing to do), then the client holds exactly `expected`."""
        held_hashes = set(client.held.values())
        total = sum(1 for s, h in expected.items() if h not in held_hashes) + sum(
            1 for s in client.held if s not in expected
        )
        needed = max(1, math.ceil(total / client.query.page_size))
        pages: list[dict[str, Any]] = []
        while True:
            assert len(pages) < needed, (client.label, f"not done after {needed} calls", total)
            page = self.call(client, client.hashes())
            self.check_page(client, page, expected, fields_of)
            if repeat_each:
                assert self.call(client, client.hashes()) == page, client.label
            pages.append(page)
            client.apply(page)
            if page["remaining_count"] == 0:
                break
        assert len(pages) == needed, (client.label, len(pages), needed)
        assert client.held == expected, client.label
        return pages


def read_hashes(engine: Engine, ids: dict[str, list[str]]) -> dict[str, tuple[str, bool]]:
    """Current content hash (base64) and liveness of each item, read from the tables."""
    found: dict[str, tuple[str, bool]] = {}
    with engine.connect() as conn:
        for kind, sentera_ids in ids.items():
            if not sentera_ids:
                continue
            table = TABLES[kind]
            rows = conn.execute(
                select(table.c.sentera_id, table.c.content_hash, table.c.deleted_at).where(
                    table.c.sentera_id.in_(sentera_ids)
                )
            )
            for row in rows:
                encoded = base64.b64encode(bytes(row.content_hash)).decode("ascii")
                found[row.sentera_id] = (encoded, row.deleted_at is None)
    return found


def tracked(method: Callable[..., None]) -> Callable[..., None]:
    """Mark the machine broken when a step fails, so teardown does not mask the failure."""

    @functools.wraps(method)
    def wrapper(self: SyncMachine, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return wrapper


class SyncMachine(RuleBasedStateMachine):
    """One fresh world per example; clients of every sync query call between changes."""

    def __init__(self, engine: Engine, executor: GraphQLExecutor) -> None:
        super().__init__()
        self.engine = engine
        self.broken = False
        self.clock = T0
        self.world = world = WorldModel(self.clock)
        apply_changeset(engine, world.initial_document(), now=self.clock)
        self.harness = SyncHarness(executor, create_token(engine, world.user))
        self.db = read_hashes(engine, self._ids())
        assert {s for s, (_, live) in self.db.items() if live} == set(world.items)
        self.history: dict[str, list[str]] = {s: [h] for s, (h, _) in self.db.items()}

        def survey(query: SyncQuery, kind: str) -> Client:
            return Client(
                f"{query.field}(survey)",
                query,
                {"survey_sentera_id": world.survey1},
                ScopeSpec(kind, frozenset({world.survey1})),
            )

        owners = [
            ("SURVEY", world.survey1),
            ("FIELD", world.field1),
            ("MOSAIC", world.mosaic1),
            ("SURVEY", world.foreign_survey),  # exists, but the user may not read it
        ]
        root_only = frozenset({world.root})
        tree = world.descendants(world.root)
        self.clients = [
            survey(SYNC_IMAGES, "image"),
            survey(SYNC_MOSAICS, "mosaic"),
            survey(SYNC_COGS, "cog"),
            Client(
                "sync_files(owners)",
                SYNC_FILES,
                {"owners": [{"owner_type": ot, "sentera_id": s} for ot, s in owners]},
                ScopeSpec("file", frozenset({world.survey1, world.field1, world.mosaic1})),
                [invalid_owner("SURVEY", world.foreign_survey)],
            ),
            Client(
                "sync_flight_tasks(root, descendants=false)",
                SYNC_FLIGHT_TASKS,
                {"organization_sentera_id": world.root, "include_descendant_organizations": False},
                ScopeSpec("task", root_only),
            ),
            Client(
                "sync_flight_tasks(root, descendants=true)",
                SYNC_FLIGHT_TASKS,
                {"organization_sentera_id": world.root, "include_descendant_organizations": True},
                ScopeSpec("task", tree),
            ),
            Client(
                "sync_fields(root, descendants omitted)",
                SYNC_FIELDS,
                {"organization_sentera_id": world.root},
                ScopeSpec("field", root_only),
            ),
            Client(
                "sync_fields(root, descendants=true)",
                SYNC_FIELDS,
                {"organization_sentera_id": world.root, "include_descendant_organizations": True},
                ScopeSpec("field", tree),
            ),
            Client(
                "sync_surveys(field)",
                SYNC_SURVEYS,
                {"field_sentera_id": world.field1},
                ScopeSpec("survey", frozenset({world.field1})),
            ),
        ]
        self.by_label = {client.label: client for client in self.clients}
        # Every client starts with a full copy, so later moves and deletes reach it as deleted
        # entries.
        for client in self.clients:
            self.harness.converge(client, self.expected(client), self.entry_fields)

    # -- the model and the database -----------------------------------------------------------

    def _ids(self) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for item in self.world.items.values():
            ids[item.kind].append(item.sentera_id)
        return ids

    def entry_fields(self, client: Client, sentera_id: str, deleted: str | None) -> dict[str, Any]:
        """An upsert carries the item's current fields. A deleted entry carries the item's last
        fields if it was deleted in the scope; if it moved out of the scope first, the fields of
        the version the client holds, so nothing of its new place shows."""
        assert client.scope is not None
        if deleted is None or self.world.deleted_in(sentera_id, client.scope):
            return self.world.sync_fields(sentera_id)
        held = client.seen[deleted]
        return {key: held[key] for key in self.world.sync_fields(sentera_id)}

    def expected(self, client: Client) -> dict[str, str]:
        assert client.scope is not None
        return {s: self.db[s][0] for s in self.world.members(client.scope)}

    def apply(
        self,
        upsert: dict[str, list[dict[str, Any]]] | None = None,
        delete: list[str] | None = None,
        *,
        changed: set[str],
        created: Iterable[str] = (),
    ) -> None:
        """Apply a changeset; exactly `changed` (and the new items) get a new hash."""
        apply_changeset(self.engine, self.world.document(upsert, delete), now=self.clock)
        before, after = self.db, read_hashes(self.engine, self._ids())
        new = set(created)
        for sentera_id, item in self.world.items.items():
            assert sentera_id in after, sentera_id
            content_hash, live = after[sentera_id]
            assert live == item.live, (item.kind, sentera_id, "live in the database:", live)
            assert HASH_RE.match(content_hash), content_hash
            if sentera_id in new:
                assert sentera_id not in before
            elif sentera_id in changed:
                assert content_hash != before[sentera_id][0], (
                    f"{item.kind} {sentera_id} changed but kept its content hash"
                )
            else:
                assert content_hash == before[sentera_id][0], (
                    f"{item.kind} {sentera_id} got a new content hash but did not change"
                )
            history = self.history.setdefault(sentera_id, [])
            if content_hash not in history:
                history.append(content_hash)
        all_hashes = [content_hash for content_hash, _ in after.values()]
        assert len(set(all_hashes)) == len(all_hashes), "two items share a content hash"
        self.db = after

    # -- changes ------------------------------------------------------------------------------

    def _pick(self, data: st.DataObject, kind: str, candidates: list[str]) -> str | None:
        if not candidates:
            return None
        return data.draw(st.sampled_from(candidates), label=kind)

    def _new_item(self, kind: str, data: st.DataObject) -> str | None:
        """Add a new item of `kind` to the model (the changeset is still to be applied)."""
        world = self.world
        parent = self._pick(data, "parent", world.parent_candidates(kind))
        if parent is None:
            return None
        values = {
            key: data.draw(st.sampled_from(choices), label=key)
            for key, choices in CHOICES[kind].items()
        }
        links: list[str] = []
        task_field = task_survey = None
        if kind == "mosaic":
            images = [i.sentera_id for i in world.live("image") if i.parent == parent]
            if images:
                links = data.draw(st.lists(st.sampled_from(images), unique=True), label="images")
        if kind == "task":
            fields = [f.sentera_id for f in world.live("field")]
            surveys = [s.sentera_id for s in world.live("survey")]
            task_field = data.draw(st.none() | st.sampled_from(fields), label="task field")
            task_survey = data.draw(st.none() | st.sampled_from(surveys), label="task survey")
        return world.add(
            kind, parent, values, self.clock, links, field=task_field, survey=task_survey
        )

    def _update(
        self, sentera_id: str, data: st.DataObject
    ) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
        """Set one value (drawn from two, so sometimes the one it already has) in the model;
        returns the changeset upsert and the ids whose representation changes."""
        kind = self.world.kind_of(sentera_id)
        key = data.draw(st.sampled_from(sorted(CHOICES[kind])), label="key")
        value = data.draw(st.sampled_from(CHOICES[kind][key]), label="value")
        changed = self.world.update(sentera_id, key, value)
        return {CHANGESET_KEYS[kind]: [{"sentera_id": sentera_id, key: value}]}, changed

    def _move(
        self, sentera_id: str, data: st.DataObject
    ) -> tuple[dict[str, list[dict[str, Any]]], set[str]] | None:
        """Give an item another parent in the model; returns the changeset upsert and the ids
        whose representation changes (None when there is nowhere to go)."""
        world = self.world
        item = world.items[sentera_id]
        targets = [p for p in world.parent_candidates(item.kind) if p != item.parent]
        target = self._pick(data, "to", targets)
        if target is None:
            return None
        keep_links = item.kind in ("image", "mosaic") and data.draw(
            st.booleans(), label="keep links"
        )
        records, changed = world.move(sentera_id, target, keep_links=keep_links)
        upsert: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            key = CHANGESET_KEYS[world.kind_of(record["sentera_id"])]
            upsert.setdefault(key, []).append(record)
        return upsert, changed

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    @tracked
    def create(self, kind: str, data: st.DataObject) -> None:
        sentera_id = self._new_item(kind, data)
        if sentera_id is None:
            return
        record = self.world.record(self.world.items[sentera_id])
        self.apply({CHANGESET_KEYS[kind]: [record]}, changed=set(), created=[sentera_id])

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    @tracked
    def update(self, kind: str, data: st.DataObject) -> None:
        sentera_id = self._pick(data, kind, [i.sentera_id for i in self.world.live(kind)])
        if sentera_id is None:
            return
        upsert, changed = self._update(sentera_id, data)
        self.apply(upsert, changed=changed)

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    @tracked
    def rewrite_unchanged(self, kind: str, data: st.DataObject) -> None:
        """Write an item's values again (all of them, or some): nothing changes."""
        world = self.world
        sentera_id = self._pick(data, kind, [i.sentera_id for i in world.live(kind)])
        if sentera_id is None:
            return
        item = world.items[sentera_id]
        keys = sorted(set(world.record(item)) - {"sentera_id"})
        subset = data.draw(st.none() | st.lists(st.sampled_from(keys), unique=True), label="keys")
        self.apply({CHANGESET_KEYS[kind]: [world.record(item, subset)]}, changed=set())

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    @tracked
    def move(self, kind: str, data: st.DataObject) -> None:
        """Give an item another parent (a mosaic takes its COGs to its new survey)."""
        sentera_id = self._pick(data, kind, [i.sentera_id for i in self.world.live(kind)])
        if sentera_id is None:
            return
        before = self.world.link_counts()
        moved = self._move(sentera_id, data)
        if moved is not None:
            self.apply(moved[0], changed=moved[1] | self.world.relinked(before))

    def _deletable(self, kind: str) -> list[str]:
        """Live items of `kind` whose delete takes no scope the clients sync."""
        world = self.world
        return [i.sentera_id for i in world.live(kind) if world.can_delete(i.sentera_id)]

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    @tracked
    def delete(self, kind: str, data: st.DataObject) -> None:
        """Delete an item and everything below it."""
        sentera_id = self._pick(data, kind, self._deletable(kind))
        if sentera_id is None:
            return
        before = self.world.link_counts()
        _, changed = self.world.delete(sentera_id)
        self.apply(delete=[sentera_id], changed=changed | self.world.relinked(before))

    @rule(
        kind=st.sampled_from(KINDS),
        write=st.sampled_from(["create", "update", "move"]),
        data=st.data(),
    )
    @tracked
    def write_and_delete(self, kind: str, write: str, data: st.DataObject) -> None:
        """Create, update or move an item and delete it in the same changeset: its tombstone
        holds what was written; the items deleted with it keep their last hash."""
        world = self.world
        before = world.link_counts()
        created: list[str] = []
        below: dict[str, tuple[dict[str, Any], str]] | None = None
        if write == "create":
            new = self._new_item(kind, data)
            if new is None:
                return
            sentera_id, created = new, [new]
            upsert = {CHANGESET_KEYS[kind]: [world.record(world.items[new])]}
            written: set[str] = set()
        else:
            picked = self._pick(data, kind, self._deletable(kind))
            if picked is None:
                return
            sentera_id = picked
            # What hangs below it is not written: it keeps the version it has now (a COG
            # whose mosaic moves and is deleted at once is deleted where it was).
            below = world.versions_below(picked)
            wrote = self._update(picked, data) if write == "update" else self._move(picked, data)
            if wrote is None:
                return
            upsert, written = wrote
        doomed, changed = world.delete(sentera_id, below)
        written = {s for s in written if s == sentera_id or s not in doomed}
        relinked = world.relinked(before)
        self.apply(upsert, [sentera_id], changed=written | changed | relinked, created=created)

    @rule()
    @tracked
    def tick(self) -> None:
        """Let a second pass: until then, changes share one `updated_at`."""
        self.clock += timedelta(seconds=1)

    # -- clients -------------------------------------------------------------------------------

    def noise(self, client: Client) -> list[str]:
        """Hashes the server must ignore for this client: of other kinds, of items of its kind
        outside its scope, older versions of items in its scope, one never issued, and the
        client's own hashes again."""
        assert client.scope is not None
        expected = self.expected(client)
        found: list[str] = [NEVER_ISSUED]
        for sentera_id, item in self.world.items.items():
            current = self.db[sentera_id][0]
            if item.kind != client.scope.kind:
                found.extend(self.history[sentera_id])
            elif sentera_id in expected:
                found.extend(h for h in self.history[sentera_id] if h != current)
            elif item.live:
                found.append(current)
        return found + client.hashes()

    @rule(
        data=st.data(),
        crash=st.booleans(),
        malformed=st.booleans(),
        noise=st.booleans(),
    )
    @tracked
    def sync(self, data: st.DataObject, crash: bool, malformed: bool, noise: bool) -> None:
        """One client calls, maybe crashes and repeats, applies the page and calls again."""
        harness, fields_of = self.harness, self.entry_fields
        label = data.draw(st.sampled_from(sorted(self.by_label)), label="client")
        client = self.by_label[label]
        expected = self.expected(client)
        page = harness.call(client, client.hashes())
        harness.check_page(client, page, expected, fields_of)
        if crash:
            assert harness.call(client, client.hashes()) == page, (label, "crash repeat")
        if malformed:
            hashes = client.hashes()
            position = data.draw(st.integers(0, len(hashes)), label="malformed at")
            sent = hashes[:position] + list(MALFORMED) + hashes[position:]
            with_bad = harness.call(client, sent)
            assert {**with_bad, "failed": None} == {**page, "failed": None}, label
            wanted = client.expected_failed + [invalid_hash(v) for v in dict.fromkeys(MALFORMED)]
            assert failures(with_bad["failed"]) == failures(wanted), (label, with_bad["failed"])
        if noise:
            assert harness.call(client, self.noise(client)) == page, (label, "noise")
        client.apply(page)
        follow = harness.call(client, client.hashes())
        harness.check_page(client, follow, expected, fields_of)
        assert is_empty(follow) == (page["remaining_count"] == 0), (label, page, follow)
        client.apply(follow)
        if follow["remaining_count"] == 0:
            assert client.held == expected, label

    def teardown(self) -> None:
        if self.broken:
            return
        world, harness = self.world, self.harness
        for client in self.clients:
            harness.converge(client, self.expected(client), self.entry_fields)
        # Writing every live item again as it is changes nothing and gives nobody anything.
        upsert: dict[str, list[dict[str, Any]]] = {}
        for item in world.live():
            upsert.setdefault(CHANGESET_KEYS[item.kind], []).append(world.record(item))
        self.apply(upsert, changed=set())
        for client in self.clients:
            page = harness.call(client, client.hashes())
            assert is_empty(page) and page["remaining_count"] == 0, (client.label, page)


# Both execution paths run the machine, each with half the profile's examples.
EXECUTION_PATHS = pytest.mark.parametrize(
    "fast_path", [True, False], ids=["fast_path", "graphql_core"]
)


@pytest.mark.slow
@EXECUTION_PATHS
def test_every_sync_query_converges_while_data_changes(engine: Engine, fast_path: bool) -> None:
    executor = GraphQLExecutor(schema(), engine, fast_path=fast_path)

    class OnThisDatabase(SyncMachine):
        def __init__(self) -> None:
            super().__init__(engine, executor)

    per_path = max(1, math.ceil(settings().max_examples / 2))
    run_state_machine_as_test(
        OnThisDatabase, settings=settings(stateful_step_count=STEPS, max_examples=per_path)
    )


# -- paging ------------------------------------------------------------------------------------


def _fields_in(engine: Engine, organizations: Iterable[str], order: list[str]) -> dict[str, str]:
    """Live fields of the organizations (by their organization column), with their current
    hashes, in the order they were created."""
    f, o = t.fields, t.organizations
    with engine.connect() as conn:
        rows = conn.execute(
            select(f.c.sentera_id, f.c.content_hash)
            .join(o, o.c.id == f.c.organization_id)
            .where(o.c.sentera_id.in_(list(organizations)), f.c.deleted_at.is_(None))
        ).all()
    current = {
        row.sentera_id: base64.b64encode(bytes(row.content_hash)).decode("ascii") for row in rows
    }
    return {s: current[s] for s in order if s in current}


@EXECUTION_PATHS
def test_sync_fields_pages_through_hundreds_of_fields(engine: Engine, fast_path: bool) -> None:
    user, root, child = new_id("US"), new_id("OR"), new_id("OR")
    # 350 fields, 3 of every 7 in the child organization: 200 in root, 150 in child.
    order = [new_id("AS") for _ in range(350)]
    owner = {s: child if i % 7 < 3 else root for i, s in enumerate(order)}
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "organizations": [
                    {"sentera_id": root, "name": "Root"},
                    {"sentera_id": child, "name": "Child", "parent_sentera_id": root},
                ],
                "users": [
                    {
                        "sentera_id": user,
                        "email": "pages@example.test",
                        "organization_sentera_ids": [root],
                    }
                ],
                "fields": [
                    {"sentera_id": s, "organization_sentera_id": owner[s], "name": f"F{i}"}
                    for i, s in enumerate(order)
                ],
            },
        },
        now=T0,
    )
    harness = SyncHarness(
        GraphQLExecutor(schema(), engine, fast_path=fast_path), create_token(engine, user)
    )
    tree = Client(
        "sync_fields(root, descendants=true)",
        SYNC_FIELDS,
        {"organization_sentera_id": root, "include_descendant_organizations": True},
    )
    flat = Client("sync_fields(root)", SYNC_FIELDS, {"organization_sentera_id": root})

    def expect(client: Client) -> dict[str, str]:
        return _fields_in(engine, [root, child] if client is tree else [root], order)

    # From nothing: 350 fields take two pages of 300; a crash repeat gets each page again.
    pages = harness.converge(tree, expect(tree), repeat_each=True)
    assert [(len(p["upserted"]), p["remaining_count"]) for p in pages] == [(300, 50), (50, 0)]
    pages = harness.converge(flat, expect(flat))
    assert [(len(p["upserted"]), p["remaining_count"]) for p in pages] == [(200, 0)]
    for client in (tree, flat):
        assert is_empty(harness.call(client, client.hashes()))

    # 320 deletions, 10 renames and 5 new fields: deleted entries fill the first page.
    later = T0 + timedelta(seconds=1)
    doomed, survivors = order[:320], order[320:]
    new = [new_id("AS") for _ in range(5)]
    order += new
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "fields": [{"sentera_id": s, "name": "Renamed"} for s in survivors[:10]]
                + [{"sentera_id": s, "organization_sentera_id": root, "name": "New"} for s in new]
            },
            "delete": doomed,
        },
        now=later,
    )
    pages = harness.converge(tree, expect(tree), repeat_each=True)
    assert [(len(p["deleted"]), len(p["upserted"]), p["remaining_count"]) for p in pages] == [
        (300, 0, 35),
        (20, 15, 0),
    ]
    doomed_in_root = sum(1 for s in doomed if owner[s] == root)
    renamed_in_root = sum(1 for s in survivors[:10] if owner[s] == root)
    pages = harness.converge(flat, expect(flat))
    assert [(len(p["deleted"]), len(p["upserted"])) for p in pages] == [
        (doomed_in_root, renamed_in_root + 5)
    ]

    # Writing every live field again as it is gives nobody anything.
    apply_changeset(
        engine,
        {
            "actor_sentera_id": user,
            "upsert": {
                "fields": [
                    {"sentera_id": s, "organization_sentera_id": owner.get(s, root)}
                    for s in expect(tree)
                ]
            },
        },
        now=later + timedelta(seconds=1),
    )
    for client in (tree, flat):
        pages = harness.converge(client, expect(client))
        assert len(pages) == 1 and is_empty(pages[0]), client.label
