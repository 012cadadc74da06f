"""The organization tree's reads: the organizations a membership reaches, descendants,
ancestors, and the users a reader may see (the rules are fieldsync.access's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from fieldsync.storage import tables as t
from fieldsync.storage.sql import DriverRead, chunks


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


def memberships_reach_read(user_id: int) -> DriverRead:
    """(role, organization id) of every live organization the user reaches through a
    membership of that role, as a read to be sent by `driver_rows` or ahead of others
    (`storage.sql.pipelined_driver_rows`)."""
    return DriverRead(_ACCESS, {"user_id": user_id})


def descendant_ids(conn: Connection, roots: Iterable[int]) -> set[int]:
    """The live organizations among `roots` and all their live descendants."""
    wanted = sorted(set(roots))
    if not wanted:
        return set()
    return set(conn.execute(_DESCENDANTS, {"roots": wanted}).scalars())


def ancestor_ids(conn: Connection, organization_ids: Iterable[int]) -> set[int]:
    """The live organizations above `organization_ids` (not themselves), at any depth."""
    wanted = sorted(set(organization_ids))
    if not wanted:
        return set()
    return set(conn.execute(_ANCESTORS, {"ids": wanted}).scalars())


def visible_users(
    conn: Connection, viewer_id: int, colleagues_of: Iterable[int], sentera_ids: Iterable[str]
) -> set[str]:
    """The users among `sentera_ids` that are `viewer_id` or members of an organization in
    `colleagues_of`."""
    visible: set[str] = set()
    colleagues = sorted(set(colleagues_of))
    for part in chunks(sorted(set(sentera_ids))):
        parameters = {
            "sentera_ids": list(part),
            "viewer_id": viewer_id,
            "colleagues_of": colleagues,
        }
        visible.update(conn.execute(_VISIBLE_USERS, parameters).scalars())
    return visible


def parent_sentera_ids(conn: Connection) -> dict[str, str | None]:
    """Every organization's parent (None: a root), by sentera_id, tombstones included."""
    orgs, parent = t.organizations, t.organizations.alias("parent")
    query = select(orgs.c.sentera_id, parent.c.sentera_id).outerjoin(
        parent, parent.c.id == orgs.c.parent_id
    )
    return {sentera_id: parent_sid for sentera_id, parent_sid in conn.execute(query).tuples()}
