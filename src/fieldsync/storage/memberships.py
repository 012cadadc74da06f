"""Memberships of one organization: who belongs to it, with which role."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, select, update

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks


def live_user_ids(conn: Connection, sentera_ids: Iterable[str]) -> dict[str, int]:
    """Internal ids of the live users among `sentera_ids`."""
    users = t.users
    found: dict[str, int] = {}
    for part in chunks(sorted(set(sentera_ids))):
        rows = conn.execute(
            select(users.c.sentera_id, users.c.id).where(
                users.c.sentera_id.in_(part), users.c.deleted_at.is_(None)
            )
        )
        found.update((row.sentera_id, row.id) for row in rows)
    return found


def memberships_of_user(conn: Connection, user_id: int) -> dict[int, str]:
    """A user's role in each organization it is a member of, by organization id."""
    m = t.memberships
    query = select(m.c.organization_id, m.c.role).where(m.c.user_id == user_id)
    return {organization_id: role for organization_id, role in conn.execute(query)}


def roles_in(conn: Connection, organization_id: int) -> dict[int, str]:
    """The role of every member of one organization, by user id."""
    m = t.memberships
    rows = conn.execute(select(m.c.user_id, m.c.role).where(m.c.organization_id == organization_id))
    return {row.user_id: row.role for row in rows}


def set_role(conn: Connection, organization_id: int, user_id: int, role: str, *, new: bool) -> None:
    m = t.memberships
    if new:
        conn.execute(insert(m).values(user_id=user_id, organization_id=organization_id, role=role))
        return
    conn.execute(
        update(m)
        .where(m.c.user_id == user_id, m.c.organization_id == organization_id)
        .values(role=role)
    )


def remove(conn: Connection, organization_id: int, user_id: int) -> None:
    m = t.memberships
    conn.execute(delete(m).where(m.c.user_id == user_id, m.c.organization_id == organization_id))


def members(conn: Connection, organization_id: int) -> list[tuple[str, str]]:
    """(user sentera_id, role) of every live member, in the order they were created."""
    m, users = t.memberships, t.users
    rows = conn.execute(
        select(users.c.sentera_id, m.c.role)
        .join(users, users.c.id == m.c.user_id)
        .where(m.c.organization_id == organization_id, users.c.deleted_at.is_(None))
        .order_by(users.c.created_at, users.c.id)
    )
    return [(row.sentera_id, row.role) for row in rows]
