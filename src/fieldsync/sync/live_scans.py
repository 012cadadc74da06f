"""A process-wide, bounded cache of scopes' live items: the rows a sync call scans first.

A sync call starts by reading every live `(content_hash, id)` of its scope, in sync order
(`sync.engine.compute_page`). For a client polling an unchanged scope that scan is most of the
call's work; it is kept here, keyed by the scope and stamped with its table's revision
(`storage.sync_revisions`). Triggers change the revision in the transaction of every write
to the table, so a snapshot that reads the stamped revision sees exactly the stamped rows:
an entry is used only then, and is never stale. Revisions are random: an entry cannot match a
different database either, unless it is a copy holding the same rows.

Any write to a table makes every scan of that table miss once (the revision is per table, not
per scope): a busy table is simply read as before.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from fieldsync.sync.revision_cache import RevisionCache

# About 60 bytes of Python objects per row: some 30 MB at most.
DEFAULT_MAX_ROWS = 500_000

ScopeKey = tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]
"""(table name, ((scope type, scope ids), …)), the scope types sorted."""


@dataclass(frozen=True, slots=True)
class LiveScan:
    """A scope's live items in sync order: their raw content hashes and their ids."""

    hashes: list[bytes]
    ids: array[int] = field(default_factory=lambda: array("q"))

    @classmethod
    def of(cls, batches: Iterable[list[tuple[bytes, int]]]) -> LiveScan:
        """The scan of `(content_hash, id)` rows read in batches."""
        scan = cls([])
        for rows in batches:
            scan.hashes.extend(content_hash for content_hash, _ in rows)
            scan.ids.extend(item_id for _, item_id in rows)
        return scan

    def __len__(self) -> int:
        return len(self.hashes)

    def diff(self, held: Collection[bytes]) -> tuple[list[tuple[bytes, int]], list[bytes]]:
        """The live items (`(content_hash, id)`, in order) whose hash the client lacks, and
        the client's hashes that match no live item.

        A client that holds every live hash (the no-change call) costs two set operations and
        no Python loop over the rows.
        """
        held_set = held if isinstance(held, set | frozenset) else set(held)
        unmatched = held_set.difference(self.hashes)
        if len(held_set) - len(unmatched) == len(self.hashes):
            return [], list(unmatched)
        lacking = [
            (content_hash, item_id)
            for content_hash, item_id in zip(self.hashes, self.ids, strict=True)
            if content_hash not in held_set
        ]
        return lacking, list(unmatched)


class LiveScanCache(RevisionCache[ScopeKey, LiveScan]):
    """Least-recently-used scans, holding at most `max_rows` rows in all."""

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        super().__init__(max_rows, weight=len)


LIVE_SCANS = LiveScanCache()
"""The process's cache, used by `sync.engine.compute_page`."""
