"""HTTP to a FieldSync server: one connection pool, gzip request bodies, timeouts, and retries
with exponential back-off and full jitter.

A request is retried when the server could not be reached, answered 429 (after its
`Retry-After`), or answered 5xx. A request that is not idempotent (a mutation that may create
items) is retried only when it certainly did not run: the connection was never made, or the
server answered 429 or 503 (refusals that come before any work).
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from fieldsync.client.errors import (
    ClientError,
    ProtocolError,
    ServerUnreachableError,
    error_for,
    graphql_error,
)

log = logging.getLogger("fieldsync.client")

GZIP_FROM_BYTES = 1024
"""Request bodies at least this large are sent gzip-compressed."""
_REFUSED_BEFORE_WORK = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. After failed attempt n (from 0) the client waits
    a random time between half of and all of min(max_delay, base_delay * 2**n) seconds
    ("equal jitter": clients spread out, yet the waits add up to at least 7.75 s over the
    default 6 attempts, long enough for a server restart), or the server's `Retry-After`."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_delay, retry_after) + random.uniform(0, self.base_delay)
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Retrying:
    """What a retry waits for, given to `on_retry` (for progress displays and logs)."""

    attempt: int
    delay: float
    reason: str


def graphql_endpoint(server: str) -> str:
    """The /graphql URL of a server given as `http://host:port` or as its /graphql URL."""
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"'{server}' is not a server URL: give one like http://127.0.0.1:8000")
    path = parts.path.rstrip("/")
    if not path.endswith("/graphql"):
        path += "/graphql"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class Transport:
    """Posts GraphQL documents to one server and fetches signed links, over one pool."""

    server: str
    token: str | None = None
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_retry: Callable[[Retrying], None] | None = None
    http: httpx.Client | None = None
    sleep: Callable[[float], None] = time.sleep
    requests_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def __post_init__(self) -> None:
        self.endpoint = graphql_endpoint(self.server)
        self._counting = threading.Lock()
        if self.http is None:
            self.http = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                headers={"User-Agent": "fieldsync-client"},
            )

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def close(self) -> None:
        self.client.close()

    def count(self, *, requests: int = 0, sent: int = 0, received: int = 0) -> None:
        """Add to the traffic counters (downloads run in several threads)."""
        with self._counting:
            self.requests_sent += requests
            self.bytes_sent += sent
            self.bytes_received += received

    def execute(
        self, document: str, variables: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """`data` of the answer; a GraphQL error of any field raises (see `graphql_error`)."""
        body = orjson.dumps({"query": document, "variables": variables})
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if len(body) >= GZIP_FROM_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        response = self.send(
            lambda: self.client.post(self.endpoint, content=body, headers=headers),
            idempotent=idempotent,
        )
        self.count(sent=len(body))
        return _data_of(response)

    def send(
        self, request: Callable[[], httpx.Response], *, idempotent: bool = True
    ) -> httpx.Response:
        """`request()`'s answer once it is not one to retry; 4xx and 5xx answers raise."""
        attempt = 0
        while True:
            try:
                response = request()
            except httpx.TransportError as exc:
                reason = _transport_reason(exc)
                if attempt + 1 >= self.retry.attempts or not _may_retry_failure(exc, idempotent):
                    raise ServerUnreachableError(
                        f"cannot reach {self.endpoint}: {reason}; check --server and the network"
                    ) from None
                self._wait(attempt, None, reason)
            else:
                self.count(requests=1, received=len(response.content))
                if not _to_retry(response.status_code, idempotent):
                    return _checked(response)
                if attempt + 1 >= self.retry.attempts:
                    return _checked(response)
                self._wait(
                    attempt, _retry_after(response), f"HTTP {response.status_code} from the server"
                )
            attempt += 1

    def _wait(self, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = self.retry.delay(attempt, retry_after)
        log.info("retrying in %.1f s: %s", delay, reason)
        if self.on_retry is not None:
            self.on_retry(Retrying(attempt + 1, delay, reason))
        self.sleep(delay)


def _to_retry(status: int, idempotent: bool) -> bool:
    if idempotent:
        return status == 429 or status >= 500
    return status in _REFUSED_BEFORE_WORK


def _may_retry_failure(exc: httpx.TransportError, idempotent: bool) -> bool:
    return idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _checked(response: httpx.Response) -> httpx.Response:
    """The response, or the `ClientError` its 4xx/5xx status and body call for."""
    if response.status_code < 400:
        return response
    message, code = f"HTTP {response.status_code}", None
    try:
        errors = orjson.loads(response.content).get("errors") or []
        message = str(errors[0].get("message", message))
        code = (errors[0].get("extensions") or {}).get("code")
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        pass
    raise error_for(message, code, response.status_code)


def _data_of(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            f"the server at {response.url} answered with something other than JSON: "
            "is --server the address of a FieldSync server?"
        ) from None
    if not isinstance(answer, dict):
        raise ProtocolError("the server's answer is not a JSON object")
    if answer.get("errors"):
        raise graphql_error(answer["errors"])
    data = answer.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("the server's answer carries no data")
    return data
