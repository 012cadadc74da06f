"""A process-wide, bounded cache of decoded stored representations.

Keyed by (kind, item id, content hash): a content hash names exactly one representation of an
item, so an entry can never be stale; an update gives the item a new hash and so a new key.
The cached dicts are shared by every request that reads the same version: callers must not
change them (copy one first when something must be changed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# About 1-3 KB of Python objects per decoded representation: some 50-150 MB at most.
DEFAULT_MAX_ENTRIES = 50_000

Key = tuple[str, int, bytes]
"""(kind name, item id, raw content hash)."""


class RepresentationCache:
    """Least-recently-used cache of decoded representations, at most `max_entries` of them."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 or more")
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_cached(self, keys: Sequence[Key]) -> list[dict[str, Any] | None]:
        """The cached representation of each key, in order (None: not cached)."""
        with self._lock:
            return [self._hit(key) for key in keys]

    def get_many(
        self,
        wanted: Iterable[tuple[Key, Any]],
        decode: Callable[[Any], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The decoded representation of each (key, stored value), in order: cached ones as they
        are, the others made by `decode(stored value)` and remembered."""
        pairs = list(wanted)
        found = self.get_cached([key for key, _ in pairs])
        made: dict[Key, dict[str, Any]] = {}
        for n, (key, stored) in enumerate(pairs):
            if found[n] is None:
                found[n] = made[key] = decode(stored)
        if made:
            self._remember(made)
        return [record for record in found if record is not None]

    def _hit(self, key: Key) -> dict[str, Any] | None:
        record = self._entries.get(key)
        if record is not None:
            self._entries.move_to_end(key)
        return record

    def _remember(self, made: Mapping[Key, dict[str, Any]]) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries.update(made)
            for key in made:
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


REPRESENTATIONS = RepresentationCache()
"""The process's cache, used by `sync.engine.load_representations`."""
