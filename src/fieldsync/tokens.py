"""API tokens: random bearer secrets, stored only as SHA-256 hashes, with optional expiry.

Creating, revoking and noting the last use of a token write only `api_tokens`, in a
`side_transaction`: never behind the writer lock a bulk load holds on PostgreSQL, and on SQLite
(one writer at a time) with a clear wait and a clear failure instead of a locked-file error.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from fieldsync.errors import FieldSyncError, InvalidArgumentError, NotFoundError
from fieldsync.storage import api_tokens as store
from fieldsync.storage.api_tokens import TokenRow
from fieldsync.storage.database import (
    WriterBusyError,
    WriteWait,
    error_summary,
    read_snapshot,
    side_transaction,
    with_write_wait,
)

TOKEN_PREFIX = "fst_"
LAST_USE_EVERY = timedelta(minutes=1)
# Matched with fullmatch; ASCII digits only (`\d` also takes other scripts' digits).
_DURATION = re.compile(r"[ \t]*([0-9]{1,12})[ \t]*([smhdw])[ \t]*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer lifetimes would overflow the expiry timestamp; nobody means more than a century.
MAX_DURATION = timedelta(days=36_525)


class TokenWriteError(FieldSyncError):
    """A token could not be created or revoked; the message says what state it is left in."""

    code = "UNAVAILABLE"


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
    """The authenticated caller, and the token it authenticated with."""

    user_id: int
    sentera_id: str
    token_id: int


@contextmanager
def _token_write(failed: str) -> Iterator[None]:
    """Turn a busy or failing database into a TokenWriteError saying `failed` (what state the
    token is left in)."""
    try:
        yield
    except WriterBusyError as exc:
        raise TokenWriteError(
            f"another writer (e.g. a load) held the database for more than {exc.seconds:g} s; "
            f"{failed}. Try again when it has finished, or wait longer with --write-wait"
        ) from None
    except SQLAlchemyError as exc:
        raise TokenWriteError(f"database error: {error_summary(exc)}; {failed}") from None


def create_token(
    engine: Engine,
    user_sentera_id: str,
    expires_in: timedelta | None = None,
) -> str:
    """A new token for a live user; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with (
        _token_write("no token was created"),
        side_transaction(engine) as conn,
    ):
        user_id = store.user_id_of(conn, user_sentera_id, live_only=True)
        if user_id is None:
            raise NotFoundError(f"no user {user_sentera_id!r}")
        expires_at = now + expires_in if expires_in else None
        store.insert_token(conn, user_id, token_hash(token), now, expires_at)
    return token


def revoke_token(engine: Engine, token: str) -> None:
    """Revoke a token given its secret."""
    with (
        _token_write("nothing was revoked: the token is STILL VALID"),
        side_transaction(engine) as conn,
    ):
        if not store.revoke_by_hash(conn, token_hash(token), datetime.now(UTC)):
            raise NotFoundError("no such token, or it was revoked already")


def revoke_token_id(engine: Engine, token_id: int) -> None:
    """Revoke a token given its id (from `list_tokens`), for when the secret is not at hand."""
    with (
        _token_write(f"nothing was revoked: token {token_id} is STILL VALID"),
        side_transaction(engine) as conn,
    ):
        if not store.revoke_by_id(conn, token_id, datetime.now(UTC)):
            raise NotFoundError(f"no token with id {token_id}, or it was revoked already")


def revoke(engine: Engine, token_or_id: str) -> None:
    """Revoke by secret (`fst_…`) or by id (digits, as `token list` shows it)."""
    reference = token_or_id.strip()
    if reference.isascii() and reference.isdigit():
        revoke_token_id(engine, int(reference))
    elif reference.startswith(TOKEN_PREFIX):
        revoke_token(engine, reference)
    else:
        raise InvalidArgumentError(
            f"{token_or_id!r} is neither a token ({TOKEN_PREFIX}…) nor a token id: "
            "see the ids with 'fieldsync token list USER_SENTERA_ID'"
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One token as an operator may see it; the secret and its hash are never shown."""

    id: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: str  # "active", "expired" or "revoked"


def _token_info(row: TokenRow, now: datetime) -> TokenInfo:
    if row.revoked_at is not None:
        status = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return TokenInfo(
        row.id, row.created_at, row.expires_at, row.revoked_at, row.last_used_at, status
    )


def list_tokens(engine: Engine, user_sentera_id: str) -> list[TokenInfo]:
    """Every token of a user (deleted users included), oldest first."""
    now = datetime.now(UTC)
    with read_snapshot(engine) as conn:
        user_id = store.user_id_of(conn, user_sentera_id, live_only=False)
        if user_id is None:
            raise NotFoundError(f"no user {user_sentera_id!r}")
        rows = store.tokens_of_user(conn, user_id)
    return [_token_info(row, now) for row in rows]


def authenticate(conn: Connection, token: str) -> Viewer | None:
    """The live user a valid, unexpired, unrevoked token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    found = store.find_live_token(conn, token_hash(token))
    if found is None:
        return None
    if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
        return None
    return Viewer(user_id=found.user_id, sentera_id=found.user_sentera_id, token_id=found.token_id)


class TokenUseRecorder:
    """Notes each token's last use, at most once a minute per token, and never makes a request
    wait: the write is skipped when another writer holds the database (SQLite) or the row
    (PostgreSQL), and tried again `retry_after_skip` later."""

    def __init__(
        self,
        engine: Engine,
        every: timedelta = LAST_USE_EVERY,
        retry_after_skip: timedelta = timedelta(seconds=5),
    ) -> None:
        # Never wait: a busy database skips the note.
        self.engine = with_write_wait(engine, WriteWait(seconds=0))
        self.every = every
        self.retry_after_skip = retry_after_skip
        self._due_at: dict[int, float] = {}  # token id -> time.monotonic() of the next write
        self._lock = threading.Lock()

    def record(self, token_id: int) -> None:
        if not self._claim(token_id):
            return
        try:
            with side_transaction(self.engine) as conn:
                written = store.note_last_use(conn, token_id, datetime.now(UTC), self.every)
        except (WriterBusyError, SQLAlchemyError):
            written = False
        if not written:  # busy, locked, or noted by another process: look again soon
            with self._lock:
                self._due_at[token_id] = time.monotonic() + self.retry_after_skip.total_seconds()

    def _claim(self, token_id: int) -> bool:
        """True (and the next write put off by `every`) when a write is due for the token."""
        now = time.monotonic()
        with self._lock:
            if now < self._due_at.get(token_id, now):
                return False
            self._due_at[token_id] = now + self.every.total_seconds()
            return True
