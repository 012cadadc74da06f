"""The reads behind the API's paged lists: which rows of a table a list shows (a `Listing`),
how many there are, and one page of them, oldest first; and organizations with the sentera_id
of their parent, as the API shows them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, Table, bindparam, false, func, select

from fieldsync.storage import tables as t
from fieldsync.storage.mosaic_links import counted_links
from fieldsync.storage.sql import chunks


@dataclass(frozen=True, slots=True)
class Listing:
    """The rows of `table` a list shows."""

    table: Table
    where: ColumnElement[bool]


def children(table: Table, column: str, parent_id: int | None) -> Listing:
    """The live rows of `table` whose `column` is `parent_id` (None: a parent the caller may
    not read, whose list is empty)."""
    if parent_id is None:
        return Listing(table, false())
    return Listing(table, (table.c[column] == parent_id) & table.c.deleted_at.is_(None))


def owned(table: Table, owner_type: str, owner_id: int | None) -> Listing:
    """The live files or feature sets of one owner (None: one the caller may not read)."""
    if owner_id is None:
        return Listing(table, false())
    return Listing(
        table,
        (table.c.scope_type == owner_type)
        & (table.c.scope_id == owner_id)
        & table.c.deleted_at.is_(None),
    )


def counted_images(mosaic_id: int | None) -> Listing:
    """The images a mosaic counts (`storage.mosaic_links.counted_links`)."""
    if mosaic_id is None:
        return Listing(t.images, false())
    links = t.mosaic_images
    counted = counted_links(links.c.image_id).where(links.c.mosaic_id == mosaic_id)
    return Listing(t.images, t.images.c.id.in_(counted))


def live_organizations(ids: Iterable[int]) -> Listing:
    orgs = t.organizations
    return Listing(orgs, orgs.c.id.in_(sorted(set(ids))) & orgs.c.deleted_at.is_(None))


def count(conn: Connection, listing: Listing) -> int:
    query = select(func.count()).select_from(listing.table).where(listing.where)
    total: int = conn.execute(query).scalar_one()
    return total


def page_ids(conn: Connection, listing: Listing, limit: int, offset: int) -> list[int]:
    """The ids of one page of the listing's rows, oldest first."""
    table = listing.table
    query = (
        select(table.c.id)
        .where(listing.where)
        .order_by(table.c.created_at, table.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query).scalars())


def _organizations() -> Select[Any]:
    orgs, parent = t.organizations, t.organizations.alias("parent")
    return select(
        orgs.c.id,
        orgs.c.sentera_id,
        orgs.c.name,
        orgs.c.created_at,
        orgs.c.updated_at,
        parent.c.sentera_id.label("parent_sid"),
    ).outerjoin(parent, parent.c.id == orgs.c.parent_id)


_ORGANIZATIONS = _organizations()
_ORGANIZATIONS_BY_SENTERA_ID = _ORGANIZATIONS.where(
    t.organizations.c.sentera_id.in_(bindparam("sentera_ids", expanding=True))
)


def organization_page(
    conn: Connection, listing: Listing, limit: int, offset: int
) -> list[Row[Any]]:
    """One page of a listing of organizations, oldest first: id, sentera_id, name,
    created_at, updated_at and the parent's sentera_id (`parent_sid`)."""
    orgs = t.organizations
    query = (
        _ORGANIZATIONS.where(listing.where)
        .order_by(orgs.c.created_at, orgs.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query))


def organizations_by_sentera_id(conn: Connection, sentera_ids: Iterable[str]) -> list[Row[Any]]:
    """The organizations (live or not) among `sentera_ids`, with `organization_page`'s
    columns."""
    found: list[Row[Any]] = []
    for part in chunks(sorted(set(sentera_ids))):
        found.extend(conn.execute(_ORGANIZATIONS_BY_SENTERA_ID, {"sentera_ids": list(part)}))
    return found
