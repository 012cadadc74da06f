"""The cache of completed list items (`api.completed_items`); tests/test_fast_path.py checks
that what it serves answers as graphql-core does."""

from __future__ import annotations

from fieldsync.api.completed_items import CompletedItems


def test_completed_items_are_bounded_and_keyed_by_the_source_itself() -> None:
    cache = CompletedItems(max_entries=2)
    a, b, c = {"n": 1}, {"n": 2}, {"n": 3}
    cache.put("plan", a, "A")
    cache.put("plan", b, "B")
    assert (cache.get("plan", a), cache.get("other plan", a), cache.get("plan", {"n": 1})) == (
        "A",
        None,
        None,
    )
    cache.put("plan", c, "C")  # the first in leaves first
    assert (cache.get("plan", a), cache.get("plan", b), cache.get("plan", c)) == (None, "B", "C")
    assert len(cache) == 2
    off = CompletedItems(max_entries=0)
    off.put("plan", a, "A")
    assert off.get("plan", a) is None
