"""Managing the members of an organization through the API: an admin of the organization (or
of one above it) adds users with a role, changes their role, or removes them.

A membership's role applies to the organization and all its descendants (fieldsync.access).
Each call checks every entry and writes the valid ones, like the upsert mutations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from fieldsync.errors import ForbiddenError, NotFoundError, TooManyItemsError
from fieldsync.ids import TypeCode, type_code_of
from fieldsync.storage import memberships as stored
from fieldsync.storage import tables as t
from fieldsync.storage.rows import rows_by_sentera_id
from fieldsync.write.access import WriteAccess
from fieldsync.write.mutations import AttributeIssue, ItemError

MAX_MEMBERSHIPS = 1000


@dataclass(frozen=True, slots=True)
class Membership:
    user_sentera_id: str
    organization_sentera_id: str
    role: str | None
    """None once removed."""


@dataclass(slots=True)
class MembershipOutcome:
    succeeded: list[Membership]
    failed: list[ItemError]


def _administered(access: WriteAccess, organization: str, count: int, name: str) -> int:
    """The organization's id, if the caller may manage its members."""
    if count > MAX_MEMBERSHIPS:
        raise TooManyItemsError(
            f"{name} takes at most {MAX_MEMBERSHIPS:,} entries a call; got {count:,}: split "
            "the list into several calls"
        )
    if type_code_of(organization) is not TypeCode.ORGANIZATION or not access.may_read(organization):
        raise NotFoundError(f"organization {organization!r} not found")
    row = rows_by_sentera_id(access.conn, t.organizations, [organization])[organization]
    if row["id"] not in access.administered:
        raise ForbiddenError(
            f"managing the members of organization {organization!r} needs the admin role in "
            "it or in an organization above it"
        )
    organization_id: int = row["id"]
    return organization_id


def _unknown_user(index: int, item: object, sentera_id: str, what: str) -> ItemError:
    return ItemError(
        index,
        item,
        [AttributeIssue("user_sentera_id", "not_found", what, {"sentera_id": sentera_id})],
    )


def upsert_memberships(
    conn: Connection,
    access: WriteAccess,
    organization: str,
    entries: Sequence[Mapping[str, str]],
) -> MembershipOutcome:
    """Give each user its role in the organization, adding it as a member if it is not one."""
    organization_id = _administered(access, organization, len(entries), "upsert_memberships")
    users = stored.live_user_ids(conn, [entry["user_sentera_id"] for entry in entries])
    roles = stored.roles_in(conn, organization_id)
    outcome = MembershipOutcome([], [])
    for index, entry in enumerate(entries):
        user, role = entry["user_sentera_id"], entry["role"]
        user_id = users.get(user)
        if user_id is None:
            outcome.failed.append(
                _unknown_user(index, dict(entry), user, f"user {user!r} does not exist")
            )
            continue
        if roles.get(user_id) != role:
            stored.set_role(conn, organization_id, user_id, role, new=user_id not in roles)
            roles[user_id] = role
        outcome.succeeded.append(Membership(user, organization, role))
    return outcome


def delete_memberships(
    conn: Connection, access: WriteAccess, organization: str, user_sentera_ids: Sequence[str]
) -> MembershipOutcome:
    """Remove users from the organization (they keep their other memberships)."""
    organization_id = _administered(
        access, organization, len(user_sentera_ids), "delete_memberships"
    )
    users = stored.live_user_ids(conn, user_sentera_ids)
    roles = stored.roles_in(conn, organization_id)
    outcome = MembershipOutcome([], [])
    for index, user in enumerate(user_sentera_ids):
        user_id = users.get(user)
        if user_id is None or user_id not in roles:
            message = f"user {user!r} is not a member of organization {organization!r}"
            outcome.failed.append(_unknown_user(index, user, user, message))
            continue
        stored.remove(conn, organization_id, user_id)
        del roles[user_id]
        outcome.succeeded.append(Membership(user, organization, None))
    return outcome
