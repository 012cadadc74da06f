"""A bounded, least-recently-used cache of what was read at known table revisions.

Each value is stamped with the revision (`storage.sync_revisions`) of the tables it was read
from; `get` gives it back only for the same revision, so a value is never stale. Used for
scopes' live scans (`sync.live_scans`) and for located scopes (`sync.scopes.locate_many`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    revision: Hashable
    value: V
    weight: int


def _one(_value: object) -> int:
    return 1


class RevisionCache(Generic[K, V]):
    """Values by key, each with its revision, holding at most `max_weight` in all: the weight
    of a value is `weight(value)` (1 by default); the least recently used go first."""

    def __init__(self, max_weight: int, weight: Callable[[V], int] = _one) -> None:
        if max_weight < 0:
            raise ValueError("the bound must be 0 or more")
        self.max_weight = max_weight
        self.hits = 0
        self.misses = 0
        self._weight = weight
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, revision: Hashable) -> V | None:
        """The value kept for `key` when it was read at `revision`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.revision != revision:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.value

    def put(self, key: K, revision: Hashable, value: V) -> None:
        """Keep the value read at `revision` (one heavier than the bound is not kept)."""
        weight = self._weight(value)
        if weight > self.max_weight:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old.weight
            self._entries[key] = _Entry(revision, value, weight)
            self._total += weight
            while self._total > self.max_weight:
                _, evicted = self._entries.popitem(last=False)
                self._total -= evicted.weight

    def clear(self) -> None:
        """Forget every value, and the counts of hits and misses."""
        with self._lock:
            self._entries.clear()
            self._total = 0
            self.hits = self.misses = 0
