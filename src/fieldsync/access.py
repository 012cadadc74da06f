"""Who may read what (sync-semantics §5).

A user reads the organizations it belongs to, all their descendants, and everything below
them. Anything else is answered exactly as if it did not exist. Where its role is editor or
admin (docs/auth.md) it may also write there, again with all descendants.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from fieldsync.model.enums import ROLES, WRITE_ROLES
from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks


def descendant_organization_ids(conn: Connection, roots: set[int]) -> set[int]:
    """The live organizations `roots` and all their live descendants."""
    if not roots:
        return set()
    orgs = t.organizations
    tree = (
        select(orgs.c.id)
        .where(orgs.c.id.in_(sorted(roots)), orgs.c.deleted_at.is_(None))
        .cte("tree", recursive=True)
    )
    tree = tree.union(
        select(orgs.c.id)
        .join(tree, orgs.c.parent_id == tree.c.id)
        .where(orgs.c.deleted_at.is_(None))
    )
    return set(conn.execute(select(tree.c.id)).scalars())


def readable_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations the user reads: those it is a member of (any role) and their descendants."""
    return descendant_organization_ids(conn, _member_of(conn, user_id, ROLES))


def writable_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations the user writes: those where it is an editor or admin, and descendants."""
    return descendant_organization_ids(conn, _member_of(conn, user_id, WRITE_ROLES))


def administered_organization_ids(conn: Connection, user_id: int) -> set[int]:
    """Organizations whose members the user manages: where it is an admin, and descendants."""
    return descendant_organization_ids(conn, _member_of(conn, user_id, ("admin",)))


def _member_of(conn: Connection, user_id: int, roles: tuple[str, ...]) -> set[int]:
    m = t.memberships
    query = select(m.c.organization_id).where(m.c.user_id == user_id, m.c.role.in_(roles))
    return set(conn.execute(query).scalars())


def ancestor_organization_ids(conn: Connection, organization_ids: set[int]) -> set[int]:
    """The live organizations above `organization_ids` (not themselves), at any depth."""
    if not organization_ids:
        return set()
    orgs = t.organizations
    up = (
        select(orgs.c.parent_id.label("id"))
        .where(orgs.c.id.in_(sorted(organization_ids)), orgs.c.parent_id.is_not(None))
        .cte("up", recursive=True)
    )
    up = up.union(
        select(orgs.c.parent_id).join(up, orgs.c.id == up.c.id).where(orgs.c.parent_id.is_not(None))
    )
    live = select(orgs.c.id).where(orgs.c.id.in_(select(up.c.id)), orgs.c.deleted_at.is_(None))
    return set(conn.execute(live).scalars())


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
    users, m = t.users, t.memberships
    visible: set[str] = set()
    for part in chunks(sorted(sentera_ids)):
        rows = conn.execute(
            select(users.c.sentera_id)
            .join(m, m.c.user_id == users.c.id, isouter=True)
            .where(
                users.c.sentera_id.in_(part),
                (users.c.id == viewer_id) | m.c.organization_id.in_(sorted(colleagues_of)),
            )
            .distinct()
        )
        visible.update(rows.scalars())
    return visible
