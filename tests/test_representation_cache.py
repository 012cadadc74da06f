"""Decoded representations are cached by (kind, item id, content hash), so never stale, and
what is served from the cache is never changed by the request that serves it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.hashing import encode_hash
from fieldsync.model import kinds as k
from fieldsync.storage.database import read_snapshot
from fieldsync.sync.engine import load_representations
from fieldsync.sync.representation_cache import RepresentationCache
from fieldsync.tokens import create_token
from tests.builder import Changeset, World, build_world, image_record, row

SYNC_IMAGES = """
query($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id content_hash ... on Image { filename } }
    deleted { sentera_id content_hash ... on Image { filename } }
  }
}
"""
SURVEY_IMAGES = """
query($survey: ID!) { survey(sentera_id: $survey) { images { results { sentera_id filename } } } }
"""


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


def _run(engine: Engine, world: World, query: str, **variables: Any) -> dict[str, Any]:
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    response = executor.run(create_token(engine, world.user), GraphQLRequest(query, variables))
    assert response.status == 200 and "errors" not in response.body, response.body
    data: dict[str, Any] = response.body["data"]
    return data


def _sync(engine: Engine, world: World, hashes: list[str]) -> dict[str, Any]:
    page: dict[str, Any] = _run(engine, world, SYNC_IMAGES, survey=world.survey, hashes=hashes)[
        "sync_images"
    ]
    return page


def _current_hash(engine: Engine, sentera_id: str) -> str:
    return encode_hash(row(engine, sentera_id)["content_hash"])


def test_a_sync_after_an_update_shows_the_new_values(engine: Engine, world: World) -> None:
    first = _sync(engine, world, [])
    assert {item["filename"] for item in first["upserted"]} == {"IMG_0001.jpg", "IMG_0002.jpg"}
    _run(engine, world, SURVEY_IMAGES, survey=world.survey)  # the collection's path too
    with read_snapshot(engine) as conn:
        cached = load_representations(conn, k.IMAGE, [world.image], by="sentera_id")
        again = load_representations(conn, k.IMAGE, [world.image], by="sentera_id")
    assert again[world.image] is cached[world.image]  # served from the cache

    Changeset(world.user).add("images", image_record(world.image, world.survey, "new.jpg")).apply(
        engine
    )

    held = [item["content_hash"] for item in first["upserted"]]
    changed = _sync(engine, world, held)
    assert [(item["sentera_id"], item["filename"]) for item in changed["upserted"]] == [
        (world.image, "new.jpg")
    ]
    assert changed["upserted"][0]["content_hash"] == _current_hash(engine, world.image)
    assert changed["deleted"] == [] and changed["remaining_count"] == 0
    full = _sync(engine, world, [])
    assert {item["sentera_id"]: item["filename"] for item in full["upserted"]} == {
        world.image: "new.jpg",
        world.image2: "IMG_0002.jpg",
    }
    listed = _run(engine, world, SURVEY_IMAGES, survey=world.survey)["survey"]["images"]
    assert {item["filename"] for item in listed["results"]} == {"new.jpg", "IMG_0002.jpg"}
    with read_snapshot(engine) as conn:
        updated = load_representations(conn, k.IMAGE, [world.image], by="sentera_id")
    assert updated[world.image]["filename"] == "new.jpg"
    assert cached[world.image]["filename"] == "IMG_0001.jpg"  # the old version, unchanged


def test_a_deleted_entry_does_not_change_the_cached_tombstone(engine: Engine, world: World) -> None:
    """The client holds an image that was then renamed and deleted: its deleted entry shows
    the final values with the hash the client holds; the tombstone, also read (and cached)
    through the loader, keeps its own hash."""
    held = [item["content_hash"] for item in _sync(engine, world, [])["upserted"]]
    old_hash = _current_hash(engine, world.image2)
    renamed = image_record(world.image2, world.survey, "final.jpg")
    Changeset(world.user).add("images", renamed).apply(engine)
    Changeset(world.user, delete=[world.image2]).apply(engine)
    tombstone_hash = _current_hash(engine, world.image2)
    with read_snapshot(engine) as conn:
        before = load_representations(conn, k.IMAGE, [world.image2], by="sentera_id")
    assert before[world.image2]["content_hash"] == tombstone_hash != old_hash

    page = _sync(engine, world, held)
    assert [
        (item["sentera_id"], item["content_hash"], item["filename"]) for item in page["deleted"]
    ] == [(world.image2, old_hash, "final.jpg")]
    with read_snapshot(engine) as conn:
        after = load_representations(conn, k.IMAGE, [world.image2], by="sentera_id")
    assert after[world.image2]["content_hash"] == tombstone_hash
    assert after[world.image2] == before[world.image2]


def _decoder(calls: list[bytes]) -> Any:
    def decode(stored: bytes) -> dict[str, Any]:
        calls.append(stored)
        decoded: dict[str, Any] = orjson.loads(stored)
        return decoded

    return decode


def test_the_cache_keeps_at_most_its_entries_least_recently_used_first_out() -> None:
    cache = RepresentationCache(max_entries=2)
    calls: list[bytes] = []
    decode = _decoder(calls)
    a, b, c = ("image", 1, b"a" * 12), ("image", 2, b"b" * 12), ("image", 3, b"c" * 12)
    first = cache.get_many([(a, b'{"n":1}'), (b, b'{"n":2}')], decode)
    assert first == [{"n": 1}, {"n": 2}] and len(calls) == 2
    assert cache.get_many([(a, b'{"n":1}')], decode)[0] is first[0]  # a is now the newest
    assert len(calls) == 2
    cache.get_many([(c, b'{"n":3}')], decode)  # evicts b, the least recently used
    assert len(cache) == 2 and len(calls) == 3
    cache.get_many([(a, b'{"n":1}'), (c, b'{"n":3}')], decode)
    assert len(calls) == 3
    cache.get_many([(b, b'{"n":2}')], decode)
    assert len(calls) == 4

    nothing = RepresentationCache(max_entries=0)
    nothing.get_many([(a, b'{"n":1}')], decode)
    assert len(nothing) == 0
    with pytest.raises(ValueError):
        RepresentationCache(max_entries=-1)
