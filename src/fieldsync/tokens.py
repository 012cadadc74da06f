"""API tokens: random bearer secrets, stored only as SHA-256 hashes, with optional expiry."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from fieldsync.errors import InvalidArgumentError, NotFoundError
from fieldsync.storage import tables as t
from fieldsync.storage.database import write_transaction

TOKEN_PREFIX = "fst_"
# Matched with fullmatch; ASCII digits only (`\d` also takes other scripts' digits).
_DURATION = re.compile(r"[ \t]*([0-9]{1,12})[ \t]*([smhdw])[ \t]*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer lifetimes would overflow the expiry timestamp; nobody means more than a century.
MAX_DURATION = timedelta(days=36_525)


def parse_duration(text: str) -> timedelta:
    """`30d`, `8h`, `90m`, `2w` or `45s` as a timedelta."""
    match = _DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidArgumentError(
            f"{text!r} is not a duration: use a positive number and a unit, e.g. 30d, 8h, 90m"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidArgumentError(f"{text!r} is too long: at most {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated caller."""

    user_id: int
    sentera_id: str


def create_token(engine: Engine, user_sentera_id: str, expires_in: timedelta | None = None) -> str:
    """A new token for a live user; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        user_id = conn.execute(
            select(t.users.c.id).where(
                t.users.c.sentera_id == user_sentera_id, t.users.c.deleted_at.is_(None)
            )
        ).scalar()
        if user_id is None:
            raise NotFoundError(f"no user {user_sentera_id!r}")
        conn.execute(
            insert(t.api_tokens).values(
                user_id=user_id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
            )
        )
    return token


def revoke_token(engine: Engine, token: str) -> None:
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(t.api_tokens)
            .where(
                t.api_tokens.c.token_hash == token_hash(token), t.api_tokens.c.revoked_at.is_(None)
            )
            .values(revoked_at=datetime.now(UTC))
        )
        if result.rowcount == 0:
            raise NotFoundError("no such token, or it was revoked already")


def authenticate(conn: Connection, token: str) -> Viewer | None:
    """The live user a valid, unexpired, unrevoked token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    tokens, users = t.api_tokens, t.users
    row = conn.execute(
        select(users.c.id, users.c.sentera_id, tokens.c.expires_at)
        .join(users, users.c.id == tokens.c.user_id)
        .where(
            tokens.c.token_hash == token_hash(token),
            tokens.c.revoked_at.is_(None),
            users.c.deleted_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return None
    return Viewer(user_id=row.id, sentera_id=row.sentera_id)
