"""What every resolver of one request shares: a snapshot connection, the caller, a loader."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from fieldsync.access import OrganizationAccess, colleague_organization_ids, organization_access
from fieldsync.blobs.context import BlobContext
from fieldsync.blobs.uploads import StoredBytes, attach
from fieldsync.errors import NoBlobStoreError
from fieldsync.ids import TypeCode, type_code_of
from fieldsync.model.kinds import KIND_BY_CODE
from fieldsync.model.representation import iso
from fieldsync.storage import tables as t
from fieldsync.storage.listings import organizations_by_sentera_id
from fieldsync.storage.organization_tree import visible_users
from fieldsync.storage.rows import rows_by_sentera_id
from fieldsync.sync.engine import load_representations
from fieldsync.sync.scopes import readable_objects
from fieldsync.tokens import Viewer
from fieldsync.write.access import WriteAccess


def organization_object(row: Any) -> dict[str, Any]:
    return {
        "__typename": "Organization",
        "_id": row.id,
        "sentera_id": row.sentera_id,
        "name": row.name,
        "parent_organization_id": row.parent_sid,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


class Loader:
    """Objects by sentera_id, fetched in batches.

    Ids are primed when a page is built; the first object of a type that a query really
    needs fetches every primed id of that type in one statement. A page's records are only
    noted (`defer`) and searched for ids once an object is needed: most sync queries ask
    for the ids of what an item references, and need none.
    """

    def __init__(self, conn: Connection, viewer: Viewer) -> None:
        self.conn = conn
        self.viewer = viewer
        self.cache: dict[str, dict[str, Any] | None] = {}
        self.pending: dict[TypeCode, set[str]] = defaultdict(set)
        self._primed: dict[TypeCode, set[str]] = defaultdict(set)
        self._deferred: list[Sequence[dict[str, Any]]] = []

    def defer(self, records: Sequence[dict[str, Any]]) -> None:
        """Prime the ids the records reference (`{"sentera_id": …}` values), when needed."""
        self._deferred.append(records)

    def primed(self, code: TypeCode) -> set[str]:
        """The primed ids of a type."""
        self._prime_deferred()
        return self._primed[code]

    def _prime_deferred(self) -> None:
        while self._deferred:
            records = self._deferred.pop()
            self.prime(
                value["sentera_id"]
                for record in records
                for value in record.values()
                if isinstance(value, dict) and len(value) == 1 and "sentera_id" in value
            )

    def prime(self, sentera_ids: Iterable[str]) -> None:
        for sentera_id in sentera_ids:
            if sentera_id not in self.cache:
                code = type_code_of(sentera_id)
                if code is not None:
                    self.pending[code].add(sentera_id)
                    self._primed[code].add(sentera_id)

    def load(self, sentera_id: str) -> dict[str, Any] | None:
        if sentera_id not in self.cache:
            self._prime_deferred()
            code = type_code_of(sentera_id)
            if code is None:
                return None
            batch = self.pending.pop(code, set()) | {sentera_id}
            found = self._fetch(code, batch)
            for wanted in batch:
                self.cache[wanted] = found.get(wanted)
        return self.cache[sentera_id]

    def _fetch(self, code: TypeCode, sentera_ids: set[str]) -> dict[str, dict[str, Any]]:
        kind = KIND_BY_CODE[code]
        if kind.sync is not None:
            return load_representations(self.conn, kind, sorted(sentera_ids), by="sentera_id")
        if code is TypeCode.USER:
            users = rows_by_sentera_id(self.conn, t.users, sentera_ids)
            return {
                sentera_id: {
                    "__typename": "User",
                    "sentera_id": sentera_id,
                    "first_name": row["first_name"],
                    "last_name": row["last_name"],
                    "email": row["email"] if row["id"] == self.viewer.user_id else None,
                }
                for sentera_id, row in users.items()
            }
        if code is TypeCode.ORGANIZATION:
            rows = organizations_by_sentera_id(self.conn, sentera_ids)
            return {row.sentera_id: organization_object(row) for row in rows}
        return {}


@dataclass
class RequestContext:
    conn: Connection
    viewer: Viewer
    loader: Loader
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    """The time the request's writes are stamped with."""
    blobs: BlobContext | None = None
    """The blob store and link signer (None: this server stores no bytes)."""
    base_url: str = ""
    """The request's base URL, for absolute links (unless a public URL is configured)."""
    _access: OrganizationAccess | None = None
    _write_access: WriteAccess | None = None
    _colleagues_of: set[int] | None = None
    identity_only: dict[int, bool] = field(default_factory=dict)
    """Per field node: does the selection ask for nothing but sentera_id?"""
    _may_read: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def open(
        cls, conn: Connection, viewer: Viewer, access: OrganizationAccess | None = None
    ) -> RequestContext:
        """The context of one request; `access`, the caller's organizations if they were read
        already in the same snapshot (else read at first use)."""
        return cls(conn=conn, viewer=viewer, loader=Loader(conn, viewer), _access=access)

    def prime_references(self, records: Sequence[dict[str, Any]]) -> None:
        """Let the loader fetch what the records reference in batches, should a query ask."""
        self.loader.defer(records)

    def attach_bytes(self, file_key: str) -> StoredBytes:
        """Claim the finished upload behind a file_key for the item being written."""
        if self.blobs is None:
            raise NoBlobStoreError
        return attach(self.conn, self.blobs, self.viewer.user_id, file_key, now=self.now)

    @property
    def write_access(self) -> WriteAccess:
        """What the caller may write (computed once, for mutations)."""
        if self._write_access is None:
            self._write_access = WriteAccess(
                self.conn,
                self.viewer.user_id,
                self.viewer.sentera_id,
                readable=self.readable,
                writable=self.organization_access.writable,
                administered=self.organization_access.administered,
            )
        return self._write_access

    def may_read(self, sentera_id: str) -> bool:
        """Whether the caller may read the object behind an id.

        A user is readable by itself and by the members of organizations that share data with
        it (`access.colleague_organization_ids`). Checked for every primed id of the same type
        at once, like the loader loads them.
        """
        if sentera_id not in self._may_read:
            code = type_code_of(sentera_id)
            if code is None:
                return False
            batch = {sentera_id} | (self.loader.primed(code) - self._may_read.keys())
            found: Collection[str]
            if code is TypeCode.USER:
                found = visible_users(self.conn, self.viewer.user_id, self.colleagues_of, batch)
            else:
                found = readable_objects(self.conn, self.readable, code, batch)
            for checked in batch:
                self._may_read[checked] = checked in found
        return self._may_read[sentera_id]

    @property
    def colleagues_of(self) -> set[int]:
        """Organizations whose members the caller may see (computed once)."""
        if self._colleagues_of is None:
            self._colleagues_of = colleague_organization_ids(self.conn, self.readable)
        return self._colleagues_of

    @property
    def organization_access(self) -> OrganizationAccess:
        """The organizations the caller reads, writes and administers (computed once, in one
        statement, for the whole request)."""
        if self._access is None:
            self._access = organization_access(self.conn, self.viewer.user_id)
        return self._access

    @property
    def readable(self) -> set[int]:
        """Internal ids of the organizations the caller may read (computed once)."""
        return self.organization_access.readable
