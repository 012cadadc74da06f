"""Per-token rate limit: at most N requests per token in each fixed one-minute window.

Checked right after a token is authenticated, before the request is parsed. On PostgreSQL the
counts live in the database (`storage/rate_limits.py`), so every worker process of
`serve --workers N` counts against the same budget; SQLite serves from one process and counts
in memory. Both answer the same question: is this request within the limit, and if not, how
long until the window ends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from fieldsync.storage import rate_limits
from fieldsync.storage.database import error_summary, is_sqlite

log = logging.getLogger("fieldsync.ratelimit")
WINDOW_SECONDS = 60
# 600 a minute (10 a second on average): a device's whole sync, a loop of ~100 calls per kind,
# fits several times over in one minute even when it runs its loops back to back, while a
# runaway client or a stolen token cannot keep a worker busy on its own.
DEFAULT_RATE_LIMIT = 600

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A refused request: the limit it hit and the whole seconds until it may try again."""

    limit_per_minute: int
    retry_after_seconds: int

    @property
    def message(self) -> str:
        return (
            f"Rate limit exceeded: at most {self.limit_per_minute} requests per minute per "
            f"token; retry after {self.retry_after_seconds} s"
        )


class RateLimiter(Protocol):
    limit_per_minute: int

    def check(self, token_id: int) -> RateLimited | None:
        """Count one request of a token; a RateLimited when it is over the limit."""
        ...


def _window_start(now: float) -> int:
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


def _verdict(limit: int, count: int, window_start: int, now: float) -> RateLimited | None:
    if count <= limit:
        return None
    retry_after = max(1, math.ceil(window_start + WINDOW_SECONDS - now))
    return RateLimited(limit, retry_after)


class InProcessRateLimiter:
    """Counts in this process's memory: right for SQLite, which serves from one process."""

    def __init__(self, limit_per_minute: int, clock: Clock = time.time) -> None:
        self.limit_per_minute = limit_per_minute
        self._clock = clock
        self._window = 0
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def check(self, token_id: int) -> RateLimited | None:
        now = self._clock()
        window = _window_start(now)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}  # old windows are forgotten whole
            count = self._counts.get(token_id, 0) + 1
            self._counts[token_id] = count
        return _verdict(self.limit_per_minute, count, window, now)


class DatabaseRateLimiter:
    """Counts in the database, so every worker process shares one budget per token.

    When the counters cannot be written (a read-only replica, say) requests are let through,
    with one warning per window in the log: the limit protects capacity, it is no access rule.
    """

    def __init__(self, engine: Engine, limit_per_minute: int, clock: Clock = time.time) -> None:
        self.limit_per_minute = limit_per_minute
        self._engine = engine
        self._clock = clock
        self._swept_window = 0
        self._warned_window = 0
        self._lock = threading.Lock()

    def check(self, token_id: int) -> RateLimited | None:
        now = self._clock()
        window = _window_start(now)
        try:
            count = rate_limits.count_request(self._engine, token_id, window)
        except SQLAlchemyError as exc:
            self._warn_once(window, exc)
            return None  # not counted: let through (see the class docstring)
        self._sweep(window)
        return _verdict(self.limit_per_minute, count, window, now)

    def _sweep(self, window: int) -> None:
        """Once per window and process, delete the windows before it."""
        with self._lock:
            if window <= self._swept_window:
                return
            self._swept_window = window
        try:
            rate_limits.delete_windows_before(self._engine, window)
        except SQLAlchemyError as exc:
            self._warn_once(window, exc)

    def _warn_once(self, window: int, exc: SQLAlchemyError) -> None:
        with self._lock:
            if window <= self._warned_window:
                return
            self._warned_window = window
        log.warning("rate limit not applied: cannot count requests: %s", error_summary(exc))


def rate_limiter_for(engine: Engine, limit_per_minute: int) -> RateLimiter | None:
    """The limiter for this database, or None when the limit is off (0)."""
    if limit_per_minute <= 0:
        return None
    if is_sqlite(engine):
        return InProcessRateLimiter(limit_per_minute)
    return DatabaseRateLimiter(engine, limit_per_minute)
