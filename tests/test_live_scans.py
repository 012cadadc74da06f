"""A scope's live scan is kept between sync calls only while its table's revision, changed by
triggers in every writing transaction, is the one it was read at: a kept scan is never stale."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.storage import tables as t
from fieldsync.storage.database import read_snapshot, statement_deadline, write_transaction
from fieldsync.storage.sync_revisions import table_revision
from fieldsync.sync.live_scans import LIVE_SCANS, LiveScan, LiveScanCache
from fieldsync.tokens import create_token
from tests.builder import Changeset, World, build_world, image_record, sid

SYNC_IMAGES = """
query($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id content_hash ... on Image { filename } }
    deleted { sentera_id content_hash }
  }
}
"""


REVISION_OF_IMAGES = "SELECT revision FROM sync_revisions WHERE table_name = 'images'"


def _sync_tables() -> list[str]:
    """Every table whose rows sync queries serve (they have a content hash and a scope)."""
    return sorted(
        table.name
        for table in t.metadata.sorted_tables
        if {"content_hash", "scope_type", "scope_id"} <= set(table.c.keys())
        and table is not t.item_versions
    )


def _revisions(engine: Engine) -> dict[str, int | None]:
    with read_snapshot(engine) as conn:
        return {name: table_revision(conn, name) for name in _sync_tables()}


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def scans() -> Iterator[LiveScanCache]:
    LIVE_SCANS.clear()
    yield LIVE_SCANS
    LIVE_SCANS.clear()


class Syncer:
    def __init__(self, engine: Engine, world: World) -> None:
        self.executor = GraphQLExecutor(build_fieldsync_schema(), engine)
        self.token = create_token(engine, world.user)
        self.survey = world.survey

    def page(self, hashes: list[str]) -> dict[str, Any]:
        request = GraphQLRequest(SYNC_IMAGES, {"survey": self.survey, "hashes": hashes})
        response = self.executor.run(self.token, request)
        assert response.status == 200 and "errors" not in response.body, response.body
        page: dict[str, Any] = response.body["data"]["sync_images"]
        return page


def test_every_sync_table_has_a_revision_and_triggers(engine: Engine) -> None:
    revisions = _revisions(engine)
    assert set(revisions) == {
        "cogs", "feature_sets", "fields", "files", "flight_tasks", "images", "mosaics", "surveys"
    }  # fmt: skip
    assert None not in revisions.values()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'"))
            expected = 3  # a row trigger per event
        else:
            rows = conn.execute(
                text("SELECT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal")
            )
            expected = 1  # one statement trigger for every event
        triggered = [name for (name,) in rows]
    assert {name: triggered.count(name) for name in _sync_tables()} == dict.fromkeys(
        _sync_tables(), expected
    )
    assert "sync_revisions" in inspect(engine).get_table_names()


def test_each_kind_of_write_changes_only_its_tables_revision(engine: Engine, world: World) -> None:
    before = _revisions(engine)
    added = sid("IM")
    Changeset(world.user).add("images", image_record(added, world.survey, "a.jpg")).apply(engine)
    inserted = _revisions(engine)
    assert inserted["images"] != before["images"]
    assert {n: r for n, r in inserted.items() if n != "images"} == {
        n: r for n, r in before.items() if n != "images"
    }

    Changeset(world.user).add("images", image_record(added, world.survey, "b.jpg")).apply(engine)
    updated = _revisions(engine)
    Changeset(world.user, delete=[added]).apply(engine)
    soft_deleted = _revisions(engine)
    with write_transaction(engine) as conn:
        conn.execute(text("DELETE FROM images WHERE sentera_id = :s"), {"s": added})
    hard_deleted = _revisions(engine)
    values = [r["images"] for r in (before, inserted, updated, soft_deleted, hard_deleted)]
    assert len(set(values)) == len(values)


def test_a_write_that_rolls_back_leaves_the_revision(engine: Engine, world: World) -> None:
    before = _revisions(engine)["images"]
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        conn.execute(text("UPDATE images SET updated_at = updated_at"))
        raise RuntimeError("rolled back")
    assert _revisions(engine)["images"] == before


def test_an_unchanged_scope_is_served_from_the_kept_scan_and_a_write_is_seen(
    engine: Engine, world: World, scans: LiveScanCache
) -> None:
    syncer = Syncer(engine, world)
    first = syncer.page([])
    held = [item["content_hash"] for item in first["upserted"]]
    assert len(held) == 2 and scans.misses == 1 and scans.hits == 0

    assert syncer.page(held) == {"remaining_count": 0, "upserted": [], "deleted": []}
    assert scans.hits == 1  # the second call did not scan

    added = sid("IM")
    Changeset(world.user).add("images", image_record(added, world.survey, "new.jpg")).apply(engine)
    Changeset(world.user, delete=[world.image2]).apply(engine)
    changed = syncer.page(held)
    assert scans.misses == 2  # the writes made the kept scan unusable
    assert [item["filename"] for item in changed["upserted"]] == ["new.jpg"]
    assert [item["sentera_id"] for item in changed["deleted"]] == [world.image2]
    assert changed["remaining_count"] == 0

    renamed = image_record(world.image, world.survey, "renamed.jpg")
    Changeset(world.user).add("images", renamed).apply(engine)
    latest = {item["sentera_id"]: item for item in syncer.page([])["upserted"]}
    assert latest[world.image]["filename"] == "renamed.jpg"
    assert set(latest) == {world.image, added}


def test_a_scan_read_elsewhere_is_not_used_after_a_write_made_outside_the_api(
    engine: Engine, world: World, scans: LiveScanCache
) -> None:
    """A write by another process (here: plain SQL) changes the revision just the same."""
    syncer = Syncer(engine, world)
    held = [item["content_hash"] for item in syncer.page([])["upserted"]]
    with write_transaction(engine) as conn:
        conn.execute(
            text("UPDATE images SET deleted_at = created_at WHERE sentera_id = :s"),
            {"s": world.image},
        )
    page = syncer.page(held)
    assert scans.hits == 0
    # The client's hash of the image now matches no live item: it is deleted.
    assert [item["sentera_id"] for item in page["deleted"]] == [world.image]


def _scan(*rows: tuple[bytes, int]) -> LiveScan:
    return LiveScan.of([list(rows)])


def test_the_diff_of_a_scan() -> None:
    a, b, c, x = b"a" * 12, b"b" * 12, b"c" * 12, b"x" * 12
    scan = _scan((a, 1), (b, 2), (c, 3))
    assert scan.ids == array("q", [1, 2, 3])
    assert scan.diff({a, b, c}) == ([], [])
    lacking, unmatched = scan.diff({b, x})
    assert lacking == [(a, 1), (c, 3)] and unmatched == [x]
    assert scan.diff([]) == ([(a, 1), (b, 2), (c, 3)], [])
    # Two live items with one hash: a client holding it lacks neither.
    twins = _scan((a, 1), (a, 2), (b, 3))
    assert twins.diff({a}) == ([(b, 3)], []) and twins.diff({a, b}) == ([], [])


def test_the_cache_keeps_at_most_its_rows_least_recently_used_first_out() -> None:
    cache = LiveScanCache(max_rows=4)
    one, two, three = (("images", (("SURVEY", (n,)),)) for n in (1, 2, 3))
    rows = _scan((b"a" * 12, 1), (b"b" * 12, 2))
    cache.put(one, 7, rows)
    cache.put(two, 7, rows)
    assert cache.get(one, 7) is rows and cache.get(one, 8) is None  # one is the newest
    cache.put(three, 7, rows)  # evicts two
    assert cache.get(two, 7) is None and cache.get(three, 7) is rows and len(cache) == 2
    cache.put(one, 9, _scan())  # replaced, not added
    assert cache.get(one, 7) is None and cache.get(one, 9) is not None
    cache.put(two, 1, _scan(*[(bytes([n]) * 12, n) for n in range(5)]))  # larger than the bound
    assert cache.get(two, 1) is None
    assert (cache.hits, cache.misses) == (3, 4)
    with pytest.raises(ValueError):
        LiveScanCache(max_rows=-1)


def test_postgresql_reads_the_revisions_with_the_snapshot_begin(engine: Engine) -> None:
    """In one round trip with BEGIN, kept for the snapshot only; a write transaction gets no
    revision to keep anything by (its revision changes at its first write only)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads a revision in-process, with no round trip to save")
    expected = _revisions(engine)
    with read_snapshot(engine) as conn, statement_deadline(conn, 30, lambda: False):
        assert conn.info.get("fieldsync_sync_revisions") == expected
        assert table_revision(conn, "images") == expected["images"]
    with write_transaction(engine) as conn, statement_deadline(conn, 30, lambda: False):
        assert "fieldsync_sync_revisions" not in conn.info
        assert table_revision(conn, "images") is None
    with engine.connect() as conn:
        assert "fieldsync_sync_revisions" not in conn.info


def test_a_transaction_changes_a_revision_once_however_many_statements_write(
    engine: Engine, world: World
) -> None:
    """PostgreSQL: the first statement writing the table changes its revision (migration
    0007), so a bulk load leaves one dead row version, not one per statement; a savepoint
    rolled back takes its change with it. SQLite: every written row changes it."""
    before = _revisions(engine)["images"]
    values = []
    with write_transaction(engine) as conn:
        for _ in range(3):
            conn.execute(text("UPDATE images SET updated_at = updated_at"))
            values.append(conn.execute(text(REVISION_OF_IMAGES)).scalar_one())
    after = _revisions(engine)["images"]
    assert after not in (before, None) and values[-1] == after
    if engine.dialect.name == "postgresql":
        assert len(set(values)) == 1
        with write_transaction(engine) as conn:
            savepoint = conn.begin_nested()
            conn.execute(text("UPDATE images SET updated_at = updated_at"))
            savepoint.rollback()
            assert conn.execute(text(REVISION_OF_IMAGES)).scalar_one() == after
            conn.execute(text("UPDATE images SET updated_at = updated_at"))
        assert _revisions(engine)["images"] not in (after, None)
    else:
        assert len(set(values)) == 3
