"""Who may read what (sync-semantics §5).

A user reads the organizations it belongs to, all their descendants, and everything below
them. Anything else is answered exactly as if it did not exist.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from fieldsync.storage import tables as t


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
    member_of = set(
        conn.execute(
            select(t.memberships.c.organization_id).where(t.memberships.c.user_id == user_id)
        ).scalars()
    )
    return descendant_organization_ids(conn, member_of)
