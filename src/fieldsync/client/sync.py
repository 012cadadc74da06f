"""The documented sync loop: send the hashes held, apply the page, repeat until nothing is left."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fieldsync.client.errors import ProtocolError
from fieldsync.client.queries import Kind
from fieldsync.client.transport import Transport

Item = dict[str, Any]
MAX_PAGES_WITHOUT_PROGRESS = 3


@dataclass(frozen=True)
class Deleted:
    """An item the server says is gone from the scope, under the hash the client sent."""

    sentera_id: str
    content_hash: str


@dataclass(frozen=True)
class SyncFailure:
    """A `failed` entry: something about the request that did not stop the page."""

    key: str
    message: str
    details: Any = None


@dataclass(frozen=True)
class SyncPage:
    upserted: list[Item]
    deleted: list[Deleted]
    failed: list[SyncFailure]
    remaining_count: int


@dataclass
class ScopeTotals:
    """What one loop over a scope did."""

    pages: int = 0
    upserted: int = 0
    deleted: int = 0
    failed: list[SyncFailure] = field(default_factory=list)


def fetch_page(
    transport: Transport, kind: Kind, scope: dict[str, Any], content_hashes: list[str]
) -> SyncPage:
    """One call of the kind's sync query."""
    data = transport.execute(kind.sync_document, {**scope, "content_hashes": content_hashes})
    return parse_page(data.get("page"), kind)


def parse_page(page: Any, kind: Kind) -> SyncPage:
    if not isinstance(page, dict):
        raise ProtocolError(f"{kind.sync_field} answered no page")
    try:
        return SyncPage(
            upserted=list(page["upserted"]),
            deleted=[Deleted(d["sentera_id"], d["content_hash"]) for d in page["deleted"]],
            failed=[
                SyncFailure(f["key"], f["message"], f.get("details"))
                for f in page.get("failed") or []
            ],
            remaining_count=int(page["remaining_count"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{kind.sync_field} answered a malformed page ({exc})") from None


def sync_pages(
    transport: Transport,
    kind: Kind,
    scope: dict[str, Any],
    held_hashes: Callable[[], list[str]],
) -> Iterator[SyncPage]:
    """The pages of one scope, until `remaining_count` is 0.

    `held_hashes` is asked before every call, so the caller applies each page (yielded) to what
    it holds before the next one is fetched. A server that keeps answering the same non-empty
    page while saying more remains (a held set the caller failed to update) stops the loop with
    a ProtocolError rather than spinning.
    """
    stalled = 0
    previous: tuple[int, int, int] | None = None
    while True:
        page = fetch_page(transport, kind, scope, held_hashes())
        yield page
        if page.remaining_count == 0:
            return
        signature = (len(page.upserted), len(page.deleted), page.remaining_count)
        empty = not page.upserted and not page.deleted
        stalled = stalled + 1 if empty or signature == previous else 0
        if stalled >= MAX_PAGES_WITHOUT_PROGRESS:
            raise ProtocolError(
                f"{kind.sync_field} makes no progress ({page.remaining_count} remaining): "
                "the held hashes are not being updated"
            )
        previous = signature


def sync_into(
    transport: Transport, kind: Kind, scope: dict[str, Any], held: dict[str, Item]
) -> ScopeTotals:
    """The loop over an in-memory store: `held` maps sentera_id to the item last received."""
    totals = ScopeTotals()
    for page in sync_pages(
        transport, kind, scope, lambda: [i["content_hash"] for i in held.values()]
    ):
        totals.pages += 1
        for entry in page.deleted:
            if held.get(entry.sentera_id, {}).get("content_hash") == entry.content_hash:
                del held[entry.sentera_id]
                totals.deleted += 1
        for item in page.upserted:
            held[item["sentera_id"]] = item
        totals.upserted += len(page.upserted)
        totals.failed.extend(page.failed)
    return totals
