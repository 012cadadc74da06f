"""Who may read what (sync-semantics §5).

A user reads the organizations it belongs to, all their descendants, and everything below
them. Anything else is answered exactly as if it did not exist. Where its role is editor or
admin (docs/auth.md) it may also write there, again with all descendants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from fieldsync.model.enums import ROLES, WRITE_ROLES
from fieldsync.storage import tables as t
from fieldsync.storage.sql import DriverRead, chunks, driver_rows


def _descendants_statement() -> Select[Any]:
    """The live organizations in the expanding `roots` and all their live descendants."""
    orgs = t.organizations
    tree = (
        select(orgs.c.id)
        .where(orgs.c.id.in_(bindparam("roots", expanding=True)), orgs.c.deleted_at.is_(None))
        .cte("tree", recursive=True)
    )
    tree = tree.union(
        select(orgs.c.id)
        .join(tree, orgs.c.parent_id == tree.c.id)
        .where(orgs.c.deleted_at.is_(None))
    )
    return select(tree.c.id)


def _access_statement() -> Select[Any]:
    """(role, organization id) of every live organization the user `user_id` reaches through
    a membership of that role: the organization of the membership and its live descendants."""
    orgs, m = t.organizations, t.memberships
    tree = (
        select(m.c.role, orgs.c.id)
        .join(orgs, orgs.c.id == m.c.organization_id)
        .where(m.c.user_id == bindparam("user_id"), orgs.c.deleted_at.is_(None))
        .cte("reach", recursive=True)
    )
    tree = tree.union(
        select(tree.c.role, orgs.c.id)
        .join(tree, orgs.c.parent_id == tree.c.id)
        .where(orgs.c.deleted_at.is_(None))
    )
    return select(tree.c.role, tree.c.id)


def _ancestors_statement() -> Select[Any]:
    """The live organizations above those in the expanding `ids` (not themselves)."""
    orgs = t.organizations
    up = (
        select(orgs.c.parent_id.label("id"))
        .where(orgs.c.id.in_(bindparam("ids", expanding=True)), orgs.c.parent_id.is_not(None))
        .cte("up", recursive=True)
    )
    up = up.union(
        select(orgs.c.parent_id).join(up, orgs.c.id == up.c.id).where(orgs.c.parent_id.is_not(None))
    )
    return select(orgs.c.id).where(orgs.c.id.in_(select(up.c.id)), orgs.c.deleted_at.is_(None))


def _visible_users_statement() -> Select[Any]:
    """Users among the expanding `sentera_ids` that are `viewer_id` or members of an
    organization in the expanding `colleagues_of`."""
    users, m = t.users, t.memberships
    return (
        select(users.c.sentera_id)
        .join(m, m.c.user_id == users.c.id, isouter=True)
        .where(
            users.c.sentera_id.in_(bindparam("sentera_ids", expanding=True)),
            (users.c.id == bindparam("viewer_id"))
            | m.c.organization_id.in_(bindparam("colleagues_of", expanding=True)),
        )
        .distinct()
    )


_DESCENDANTS = _descendants_statement()
_ACCESS = _access_statement()
_ANCESTORS = _ancestors_statement()
_VISIBLE_USERS = _visible_users_statement()


@dataclass(frozen=True, slots=True)
class OrganizationAccess:
    """What a user reaches through its memberships, each with all live descendants."""

    readable: set[int]
    """Member of, with any role."""
    writable: set[int]
    """Editor or admin of."""
    administered: set[int]
    """Admin of: whose members the user manages."""


def organization_access(conn: Connection, user_id: int) -> OrganizationAccess:
    """The user's readable, writable and administered organizations, in one statement."""
    read = organization_access_read(user_id)
    return organization_access_of(driver_rows(conn, read.statement, read.parameters))


def organization_access_read(user_id: int) -> DriverRead:
    """The statement of `organization_access`, to be sent ahead of others
    (`storage.sql.pipelined_driver_rows`); `organization_access_of` reads its rows."""
    return DriverRead(_ACCESS, {"user_id": user_id})


def organization_access_of(rows: Iterable[tuple[Any, ...]]) -> OrganizationAccess:
    """The access of the rows of an `organization_access_read`."""
    readable: set[int] = set()
    writable: set[int] = set()
    administered: set[int] = set()
    for role, organization_id in rows:
        if role not in ROLES:
            continue
        readable.add(organization_id)
        if role in WRITE_ROLES:
            writable.add(organization_id)
        if role == "admin":
            administered.add(organization_id)
    return OrganizationAccess(readable, writable, administered)


def descendant_organization_ids(conn: Connection, roots: set[int]) -> set[int]:
    """The live organizations `roots` and all their live descendants."""
    if not roots:
        return set()
    return set(conn.execute(_DESCENDANTS, {"roots": sorted(roots)}).scalars())


def readable_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations the user reads: those it is a member of (any role) and their descendants."""
    return organization_access(conn, user_id).readable


def writable_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations the user writes: those where it is an editor or admin, and descendants."""
    return organization_access(conn, user_id).writable


def administered_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations whose members the user manages: where it is an admin, and descendants."""
    return organization_access(conn, user_id).administered


def ancestor_organization_ids(conn: Connection, organization_ids: set[int]) -> set[int]:
    """The live organizations above `organization_ids` (not themselves), at any depth."""
    if not organization_ids:
        return set()
    return set(conn.execute(_ANCESTORS, {"ids": sorted(organization_ids)}).scalars())


def colleague_organization_ids(conn: Connection, readable: set[int]) -> set[int]:
    """Organizations whose members a user reading `readable` may see: those and their
    ancestors.

    A member of one of them reads some organization the user reads too (a member of an
    ancestor reads its descendants), so they share data and may see each other's names.
    """
    return readable | ancestor_organization_ids(conn, readable)


def visible_user_sentera_ids(
    conn: Connection, viewer_id: int, colleagues_of: set[int], sentera_ids: set[str]
) -> set[str]:
    """The users among `sentera_ids` the viewer may see: itself, and members of an
    organization in `colleagues_of` (see `colleague_organization_ids`)."""
    visible: set[str] = set()
    colleagues = sorted(colleagues_of)
    for part in chunks(sorted(sentera_ids)):
        parameters = {
            "sentera_ids": list(part),
            "viewer_id": viewer_id,
            "colleagues_of": colleagues,
        }
        visible.update(conn.execute(_VISIBLE_USERS, parameters).scalars())
    return visible
