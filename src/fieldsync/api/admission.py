"""Admission control: a bounded number of GraphQL requests execute at once in this process, a
few more wait briefly in a queue, and everything beyond is answered 503 with `Retry-After` at
once. Errors that mean the database is unreachable, and a connection pool that stayed busy, are
answered 503 with `Retry-After` too, never 500.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fieldsync.api.execution import GraphQLResponse, error_body
from fieldsync.observability import IN_FLIGHT, QUEUED, OutageEpisodes
from fieldsync.storage.database import is_database_unavailable, is_pool_timeout

OVERLOADED = "SERVER_OVERLOADED"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    max_concurrent: int
    max_queued: int
    queue_timeout: float
    retry_after: int


class Overloaded(Exception):
    """No execution slot is free and none became free within the queue timeout."""


def unavailable(message: str, code: str, retry_after: int) -> GraphQLResponse:
    return GraphQLResponse(503, error_body(message, code), {"Retry-After": str(retry_after)})


class Admission:
    """Execution slots for one process, handed to waiters in arrival order."""

    def __init__(self, limits: AdmissionLimits, outage: OutageEpisodes) -> None:
        self.limits = limits
        self.outage = outage
        self.executing = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def _acquire(self) -> None:
        if self.executing < self.limits.max_concurrent and not self._waiters:
            self.executing += 1
            return
        if len(self._waiters) >= self.limits.max_queued:
            raise Overloaded
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        QUEUED.inc()
        try:
            await asyncio.wait({waiter}, timeout=self.limits.queue_timeout)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            QUEUED.dec()
        if not waiter.done():
            self._abandon(waiter)
            raise Overloaded

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        """Leave the queue; a slot handed over meanwhile is passed on."""
        if waiter.done() and not waiter.cancelled():
            self._release()
            return
        waiter.cancel()
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter: `executing` stays
                return
        self.executing -= 1

    def overloaded(self) -> GraphQLResponse:
        return unavailable(
            "The server is busy: retry after the number of seconds in Retry-After",
            OVERLOADED,
            self.limits.retry_after,
        )

    async def run(self, call: Callable[[], Awaitable[GraphQLResponse]]) -> GraphQLResponse:
        """Await `call` (which runs the request in a worker thread) once a slot is free; 503
        when none is or the database cannot be used."""
        try:
            await self._acquire()
        except Overloaded:
            return self.overloaded()
        IN_FLIGHT.inc()
        try:
            return await call()
        except Exception as exc:
            if is_pool_timeout(exc):
                return self.overloaded()
            if not is_database_unavailable(exc):
                raise
            self.outage.failed(exc)
            return unavailable(
                "The database is unavailable: retry after the number of seconds in Retry-After",
                DATABASE_UNAVAILABLE,
                self.limits.retry_after,
            )
        finally:
            IN_FLIGHT.dec()
            self._release()
