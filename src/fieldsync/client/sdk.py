"""`FieldSyncClient`: every sync query and write mutation of a FieldSync server, typed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from fieldsync.client.errors import ProtocolError
from fieldsync.client.queries import (
    COGS,
    FEATURE_SETS,
    FIELDS,
    FILES,
    FLIGHT_TASKS,
    IMAGES,
    KINDS,
    ME,
    MOSAICS,
    ORGANIZATIONS,
    ORGANIZATIONS_PAGE,
    SURVEYS,
    Kind,
)
from fieldsync.client.sync import Item, ScopeTotals, SyncPage, sync_into, sync_pages
from fieldsync.client.transport import RetryPolicy, Transport

Owner = tuple[str, str]
"""A file or feature set owner: (owner_type, sentera_id), e.g. ("SURVEY", "...")."""


@dataclass(frozen=True)
class ItemFailure:
    """One item a write refused: its position in the input and why."""

    index: int
    item: Any
    attributes: list[dict[str, Any]]

    @property
    def message(self) -> str:
        return "; ".join(
            f"{a.get('attribute') or 'item'}: {a.get('message')}" for a in self.attributes
        )


@dataclass(frozen=True)
class WriteResult:
    """What an upsert or delete wrote (`succeeded`, in input order) and refused (`failed`)."""

    succeeded: list[Item]
    failed: list[ItemFailure]


def owners_input(owners: Sequence[Owner]) -> list[dict[str, str]]:
    return [{"owner_type": kind, "sentera_id": sentera_id} for kind, sentera_id in owners]


class FieldSyncClient:
    """A client of one server with one token; use it as a context manager, or `close()` it."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.transport = transport or Transport(
            server, token, timeout=timeout, retry=retry or RetryPolicy()
        )

    def __enter__(self) -> FieldSyncClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def execute(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Any query; `data` of the answer."""
        return self.transport.execute(document, variables or {})

    def me(self) -> Item:
        me: Item = self.execute(ME)["me"]
        return me

    def organizations(self) -> list[Item]:
        """Every organization the token may read, its logos included."""
        found: list[Item] = []
        page = 1
        while True:
            answer = self.execute(ORGANIZATIONS, {"page": page, "page_size": ORGANIZATIONS_PAGE})
            collection = answer["organizations"]
            found.extend(collection["results"])
            if not collection["results"] or len(found) >= collection["total_count"]:
                return found
            page += 1

    # -- sync -------------------------------------------------------------------------------

    def pages(self, kind: Kind, scope: dict[str, Any], held: dict[str, Item]) -> Iterator[SyncPage]:
        """The raw pages of a scope for a caller that applies them itself (to `held`, which
        must map sentera_id to an item with its content_hash by the time the next is asked)."""
        return sync_pages(
            self.transport, kind, scope, lambda: [i["content_hash"] for i in held.values()]
        )

    def sync(self, kind: str | Kind, scope: dict[str, Any], held: dict[str, Item]) -> ScopeTotals:
        """Bring `held` (sentera_id -> item) up to date with one scope of one kind."""
        chosen = KINDS[kind] if isinstance(kind, str) else kind
        return sync_into(self.transport, chosen, scope, held)

    def sync_fields(
        self, organization_sentera_id: str, held: dict[str, Item], *, descendants: bool = False
    ) -> ScopeTotals:
        scope = {
            "organization_sentera_id": organization_sentera_id,
            "include_descendant_organizations": descendants,
        }
        return self.sync(FIELDS, scope, held)

    def sync_surveys(self, field_sentera_id: str, held: dict[str, Item]) -> ScopeTotals:
        return self.sync(SURVEYS, {"field_sentera_id": field_sentera_id}, held)

    def sync_mosaics(self, survey_sentera_id: str, held: dict[str, Item]) -> ScopeTotals:
        return self.sync(MOSAICS, {"survey_sentera_id": survey_sentera_id}, held)

    def sync_images(self, survey_sentera_id: str, held: dict[str, Item]) -> ScopeTotals:
        return self.sync(IMAGES, {"survey_sentera_id": survey_sentera_id}, held)

    def sync_cogs(self, survey_sentera_id: str, held: dict[str, Item]) -> ScopeTotals:
        return self.sync(COGS, {"survey_sentera_id": survey_sentera_id}, held)

    def sync_files(self, owners: Sequence[Owner], held: dict[str, Item]) -> ScopeTotals:
        return self.sync(FILES, {"owners": owners_input(owners)}, held)

    def sync_feature_sets(self, owners: Sequence[Owner], held: dict[str, Item]) -> ScopeTotals:
        return self.sync(FEATURE_SETS, {"owners": owners_input(owners)}, held)

    def sync_flight_tasks(
        self, organization_sentera_id: str, held: dict[str, Item], *, descendants: bool = False
    ) -> ScopeTotals:
        scope = {
            "organization_sentera_id": organization_sentera_id,
            "include_descendant_organizations": descendants,
        }
        return self.sync(FLIGHT_TASKS, scope, held)

    # -- writes -----------------------------------------------------------------------------

    def upsert(self, kind: str | Kind, parent: Any, items: Sequence[Item]) -> WriteResult:
        """Create (no sentera_id) or update items under `parent`: a sentera_id, or for files
        and feature sets an owner (owner_type, sentera_id). At most the mutation's limit."""
        chosen = KINDS[kind] if isinstance(kind, str) else kind
        variables = {_parent_name(chosen): _parent_value(parent), _items_name(chosen): list(items)}
        return _write_result(
            self.transport.execute(chosen.upsert_document, variables, idempotent=False)
        )

    def delete(self, kind: str | Kind, parent: Any, sentera_ids: Sequence[str]) -> WriteResult:
        chosen = KINDS[kind] if isinstance(kind, str) else kind
        variables = {_parent_name(chosen): _parent_value(parent), "sentera_ids": list(sentera_ids)}
        return _write_result(self.transport.execute(chosen.delete_document, variables))

    def upsert_fields(self, organization_sentera_id: str, fields: Sequence[Item]) -> WriteResult:
        return self.upsert(FIELDS, organization_sentera_id, fields)

    def upsert_surveys(self, field_sentera_id: str, surveys: Sequence[Item]) -> WriteResult:
        return self.upsert(SURVEYS, field_sentera_id, surveys)

    def upsert_images(self, survey_sentera_id: str, images: Sequence[Item]) -> WriteResult:
        return self.upsert(IMAGES, survey_sentera_id, images)

    def upsert_mosaics(self, survey_sentera_id: str, mosaics: Sequence[Item]) -> WriteResult:
        return self.upsert(MOSAICS, survey_sentera_id, mosaics)

    def upsert_cogs(self, mosaic_sentera_id: str, cogs: Sequence[Item]) -> WriteResult:
        return self.upsert(COGS, mosaic_sentera_id, cogs)

    def upsert_files(self, owner: Owner, files: Sequence[Item]) -> WriteResult:
        return self.upsert(FILES, owner, files)

    def upsert_feature_sets(self, owner: Owner, feature_sets: Sequence[Item]) -> WriteResult:
        return self.upsert(FEATURE_SETS, owner, feature_sets)

    def upsert_flight_tasks(
        self, organization_sentera_id: str, flight_tasks: Sequence[Item]
    ) -> WriteResult:
        return self.upsert(FLIGHT_TASKS, organization_sentera_id, flight_tasks)

    def delete_fields(self, organization_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(FIELDS, organization_sentera_id, ids)

    def delete_surveys(self, field_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(SURVEYS, field_sentera_id, ids)

    def delete_images(self, survey_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(IMAGES, survey_sentera_id, ids)

    def delete_mosaics(self, survey_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(MOSAICS, survey_sentera_id, ids)

    def delete_cogs(self, mosaic_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(COGS, mosaic_sentera_id, ids)

    def delete_files(self, owner: Owner, ids: Sequence[str]) -> WriteResult:
        return self.delete(FILES, owner, ids)

    def delete_feature_sets(self, owner: Owner, ids: Sequence[str]) -> WriteResult:
        return self.delete(FEATURE_SETS, owner, ids)

    def delete_flight_tasks(self, organization_sentera_id: str, ids: Sequence[str]) -> WriteResult:
        return self.delete(FLIGHT_TASKS, organization_sentera_id, ids)


def _parent_name(kind: Kind) -> str:
    return kind.upsert_parent.split(":")[0]


def _items_name(kind: Kind) -> str:
    return kind.upsert_items.split(":")[0]


def _parent_value(parent: Any) -> Any:
    if isinstance(parent, tuple):
        return owners_input([parent])[0]
    return parent


def _write_result(data: dict[str, Any]) -> WriteResult:
    result = data.get("result")
    if not isinstance(result, dict):
        raise ProtocolError("the write answered no result")
    return WriteResult(
        succeeded=list(result["succeeded"]),
        failed=[
            ItemFailure(int(f["index"]), f.get("item"), list(f.get("attributes") or []))
            for f in result["failed"]
        ],
    )
