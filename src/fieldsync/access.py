"""Who may read what (sync-semantics §5).

A user reads the organizations it belongs to, all their descendants, and everything below
them. Anything else is answered exactly as if it did not exist. Where its role is editor or
admin (docs/auth.md) it may also write there, again with all descendants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from fieldsync.model.enums import ROLES, WRITE_ROLES
from fieldsync.storage import organization_tree as tree
from fieldsync.storage.sql import DriverRead, driver_rows


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
    return tree.memberships_reach_read(user_id)


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


def colleague_organization_ids(conn: Connection, readable: set[int]) -> set[int]:
    """Organizations whose members a user reading `readable` may see: those and their
    ancestors.

    A member of one of them reads some organization the user reads too (a member of an
    ancestor reads its descendants), so they share data and may see each other's names.
    """
    return readable | tree.ancestor_ids(conn, readable)
