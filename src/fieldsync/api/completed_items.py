"""A process-wide, bounded cache of list items as the fast path completed them.

A sync page's items are the shared dicts of the representation cache
(`sync.representation_cache`), and devices ask for the same pages with the same documents
again and again. When a selection set is completed by generated code alone (every field a
plain read of the source, no resolver, no error), its result depends only on that code, the
plans of its object fields and the source dict: `FastExecutor` keeps it here, keyed by the
plan's `completion_key` and the source's identity, and serves it as it is next time.

An entry holds its source dict, so the dict's `id` cannot be reused while the entry lives; the
completed values are shared between requests and never changed. Entries leave first in,
first out once there are `max_entries`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

DEFAULT_MAX_ENTRIES = 20_000
"""About 1-4 KB of Python objects per entry (the completed item, and a source no longer in the
representation cache): some 20 to 80 MB at most."""

Key = tuple[Any, int]
"""(a plan's completion key, the source dict's id)."""


class CompletedItems:
    """Completed list items by (completion key, source), at most `max_entries` of them."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 or more")
        self.max_entries = max_entries
        # An OrderedDict: dropping the oldest entry of a plain dict (`next(iter(d))`) walks
        # the slots its earlier deletions left, which grows with the entries.
        self._entries: OrderedDict[Key, tuple[dict[str, Any], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, completion_key: Any, source: dict[str, Any]) -> Any:
        """The completed value of `source` under the key, or None."""
        entry = self._entries.get((completion_key, id(source)))
        if entry is None or entry[0] is not source:
            return None
        return entry[1]

    def put(self, completion_key: Any, source: dict[str, Any], completed: Any) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            entries = self._entries
            while len(entries) >= self.max_entries:
                entries.popitem(last=False)
            entries[(completion_key, id(source))] = (source, completed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


COMPLETED_ITEMS = CompletedItems()
"""The process's cache, used by `api.fast_execution.FastExecutor`."""
