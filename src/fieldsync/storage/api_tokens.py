"""The SQL of API tokens (the `api_tokens` table); the rules live in `fieldsync.tokens`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks, driver_rows

_tokens = t.api_tokens


@dataclass(frozen=True, slots=True)
class TokenRow:
    """What may be shown about a token: never its secret, never its hash."""

    id: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class LiveToken:
    token_id: int
    user_id: int
    user_sentera_id: str
    expires_at: datetime | None


def user_id_of(conn: Connection, user_sentera_id: str, *, live_only: bool) -> int | None:
    query = select(t.users.c.id).where(t.users.c.sentera_id == user_sentera_id)
    if live_only:
        query = query.where(t.users.c.deleted_at.is_(None))
    user_id: int | None = conn.execute(query).scalar()
    return user_id


def insert_token(
    conn: Connection, user_id: int, token_hash: str, now: datetime, expires_at: datetime | None
) -> int:
    token_id: int = conn.execute(
        insert(_tokens)
        .values(user_id=user_id, token_hash=token_hash, created_at=now, expires_at=expires_at)
        .returning(_tokens.c.id)
    ).scalar_one()
    return token_id


def revoke_by_hash(conn: Connection, token_hash: str, now: datetime) -> bool:
    """Revoke the unrevoked token with this hash; False when there is none."""
    result = conn.execute(
        update(_tokens)
        .where(_tokens.c.token_hash == token_hash, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


def revoke_by_id(conn: Connection, token_id: int, now: datetime) -> bool:
    """Revoke the unrevoked token with this id; False when there is none."""
    result = conn.execute(
        update(_tokens)
        .where(_tokens.c.id == token_id, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


def revoke_tokens_of_users(conn: Connection, user_ids: Iterable[int], now: datetime) -> None:
    """Revoke every unrevoked token of these users (deleted ones)."""
    for part in chunks(sorted(set(user_ids))):
        conn.execute(
            update(_tokens)
            .where(_tokens.c.user_id.in_(part), _tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def tokens_of_user(conn: Connection, user_id: int) -> list[TokenRow]:
    rows = conn.execute(
        select(
            _tokens.c.id,
            _tokens.c.created_at,
            _tokens.c.expires_at,
            _tokens.c.revoked_at,
            _tokens.c.last_used_at,
        )
        .where(_tokens.c.user_id == user_id)
        .order_by(_tokens.c.id)
    )
    return [TokenRow(*row) for row in rows]


# The two statements of every request, built once: each call only binds values.
_FIND_LIVE_TOKEN = (
    select(_tokens.c.id, t.users.c.id, t.users.c.sentera_id, _tokens.c.expires_at)
    .join(t.users, t.users.c.id == _tokens.c.user_id)
    .where(
        _tokens.c.token_hash == bindparam("token_hash"),
        _tokens.c.revoked_at.is_(None),
        t.users.c.deleted_at.is_(None),
    )
)
_STALE_TOKEN = (
    select(_tokens.c.id)
    .where(
        _tokens.c.id == bindparam("token_id"),
        or_(
            _tokens.c.last_used_at.is_(None),
            _tokens.c.last_used_at <= bindparam("stale_before", type_=_tokens.c.last_used_at.type),
        ),
    )
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_NOTE_LAST_USE = (
    update(_tokens)
    .where(_tokens.c.id == _STALE_TOKEN)
    .values(last_used_at=bindparam("now", type_=_tokens.c.last_used_at.type))
)


def find_live_token(conn: Connection, token_hash: str) -> LiveToken | None:
    """The unrevoked token with this hash, of a user that is not deleted (expiry not checked)."""
    rows = driver_rows(conn, _FIND_LIVE_TOKEN, {"token_hash": token_hash})
    return LiveToken(*rows[0]) if rows else None


def note_last_use(conn: Connection, token_id: int, now: datetime, every: timedelta) -> bool:
    """Set `last_used_at` unless it was set less than `every` ago, or the row is locked by
    another transaction (skipped, never waited for). True when the row was written."""
    parameters = {"token_id": token_id, "stale_before": now - every, "now": now}
    result = conn.execute(_NOTE_LAST_USE, parameters)
    return result.rowcount > 0
