"""Settings: every one has a command-line option and a FIELDSYNC_* environment variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fieldsync.api.limits import MAX_OWNERS_CEILING, Limits
from fieldsync.blobs.context import (
    DEFAULT_BLOB_STORE,
    DEFAULT_GC_INTERVAL,
    DEFAULT_UPLOAD_LIFETIME,
    BlobSettings,
)
from fieldsync.ratelimit import DEFAULT_RATE_LIMIT
from fieldsync.storage.database import DEFAULT_DATABASE_URL

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")
MAX_PORT = 65535
MIN_BODY_BYTES = 1024
_LIMITS = Limits()


COG_WORKER_MODES = ("auto", "on", "off")


class SettingsError(ValueError):
    """A FIELDSYNC_* variable holds a value the setting cannot take (one line, no traceback)."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    rate_limit: int = DEFAULT_RATE_LIMIT  # requests per minute per token; 0 turns it off
    # Cost limits of one request (fieldsync.api.limits, docs/limits.md).
    max_query_depth: int = _LIMITS.max_depth
    max_query_aliases: int = _LIMITS.max_aliases
    max_query_fields: int = _LIMITS.max_fields
    max_query_cost: int = _LIMITS.max_cost
    max_query_tokens: int = _LIMITS.max_tokens
    max_hashes: int = _LIMITS.max_hashes
    max_owners: int = _LIMITS.max_owners
    request_timeout: float = _LIMITS.request_seconds
    max_response_bytes: int = _LIMITS.max_response_bytes
    introspection: bool = True
    # Operations (see docs/operations.md).
    log_format: str = "json"
    graphiql: bool = True
    fast_path: bool = True
    """Sync queries may run on the compiled fast path; False runs every request through
    graphql-core's standard execution (an escape hatch)."""
    max_concurrent_requests: int = 8
    max_queued_requests: int = 16
    queue_timeout: float = 2.0
    pool_timeout: float = 2.0
    retry_after: int = 2
    shutdown_timeout: float = 10.0
    # File bytes (see docs/blobs.md).
    blob_store: str = DEFAULT_BLOB_STORE
    upload_lifetime: int = DEFAULT_UPLOAD_LIFETIME
    blob_gc_interval: int = DEFAULT_GC_INTERVAL  # seconds between gc runs of serve; 0 = off
    public_url: str | None = None
    # COG processing (see docs/processing.md): `auto` runs one worker inside `serve` on SQLite
    # (one machine does everything) and none on PostgreSQL (run `fieldsync worker`).
    cog_worker: str = "auto"

    def runs_cog_worker(self) -> bool:
        if self.cog_worker == "auto":
            return self.database_url.startswith("sqlite")
        return self.cog_worker == "on"

    @classmethod
    def from_environment(cls) -> Settings:
        """Settings from FIELDSYNC_* variables; a bad value raises SettingsError."""
        env = os.environ
        defaults = cls()
        return cls(
            database_url=env.get("FIELDSYNC_DATABASE_URL", defaults.database_url),
            host=env.get("FIELDSYNC_HOST", defaults.host),
            port=_int(env, "FIELDSYNC_PORT", defaults.port, 1, MAX_PORT),
            workers=_int(env, "FIELDSYNC_WORKERS", defaults.workers, 1),
            max_body_bytes=_int(
                env, "FIELDSYNC_MAX_BODY_BYTES", defaults.max_body_bytes, MIN_BODY_BYTES
            ),
            log_level=_choice(env, "FIELDSYNC_LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            rate_limit=_int(env, "FIELDSYNC_RATE_LIMIT", defaults.rate_limit, 0),
            **_limits_from_environment(env, defaults),
            **_operations_from_environment(env, defaults),
            **_blobs_from_environment(env, defaults),
        )

    def to_environment(self) -> dict[str, str]:
        """The same settings as environment variables (handed to worker processes)."""
        return {
            "FIELDSYNC_DATABASE_URL": self.database_url,
            "FIELDSYNC_HOST": self.host,
            "FIELDSYNC_PORT": str(self.port),
            "FIELDSYNC_WORKERS": str(self.workers),
            "FIELDSYNC_MAX_BODY_BYTES": str(self.max_body_bytes),
            "FIELDSYNC_LOG_LEVEL": self.log_level,
            "FIELDSYNC_RATE_LIMIT": str(self.rate_limit),
            **self._limits_to_environment(),
            **self._operations_environment(),
            **self._blobs_environment(),
        }

    def _blobs_environment(self) -> dict[str, str]:
        public = {"FIELDSYNC_PUBLIC_URL": self.public_url} if self.public_url else {}
        return {
            "FIELDSYNC_BLOB_STORE": self.blob_store,
            "FIELDSYNC_UPLOAD_LIFETIME": str(self.upload_lifetime),
            "FIELDSYNC_BLOB_GC_INTERVAL": str(self.blob_gc_interval),
            **public,
        }

    def blobs(self) -> BlobSettings:
        return BlobSettings(
            store_url=self.blob_store,
            upload_lifetime=self.upload_lifetime,
            gc_interval=self.blob_gc_interval,
            public_url=self.public_url or None,
        )

    def _operations_environment(self) -> dict[str, str]:
        return {
            "FIELDSYNC_LOG_FORMAT": self.log_format,
            "FIELDSYNC_GRAPHIQL": "1" if self.graphiql else "0",
            "FIELDSYNC_FAST_PATH": "1" if self.fast_path else "0",
            "FIELDSYNC_MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
            "FIELDSYNC_MAX_QUEUED_REQUESTS": str(self.max_queued_requests),
            "FIELDSYNC_QUEUE_TIMEOUT": repr(self.queue_timeout),
            "FIELDSYNC_POOL_TIMEOUT": repr(self.pool_timeout),
            "FIELDSYNC_RETRY_AFTER": str(self.retry_after),
            "FIELDSYNC_SHUTDOWN_TIMEOUT": repr(self.shutdown_timeout),
            "FIELDSYNC_COG_WORKER": self.cog_worker,
        }

    # -- cost limits -----------------------------------------------------------------------

    def limits(self) -> Limits:
        return Limits(
            max_depth=self.max_query_depth,
            max_aliases=self.max_query_aliases,
            max_fields=self.max_query_fields,
            max_cost=self.max_query_cost,
            max_tokens=self.max_query_tokens,
            max_hashes=self.max_hashes,
            max_owners=self.max_owners,
            request_seconds=self.request_timeout,
            max_response_bytes=self.max_response_bytes,
        )

    def _limits_to_environment(self) -> dict[str, str]:
        return {
            "FIELDSYNC_MAX_QUERY_DEPTH": str(self.max_query_depth),
            "FIELDSYNC_MAX_QUERY_ALIASES": str(self.max_query_aliases),
            "FIELDSYNC_MAX_QUERY_FIELDS": str(self.max_query_fields),
            "FIELDSYNC_MAX_QUERY_COST": str(self.max_query_cost),
            "FIELDSYNC_MAX_QUERY_TOKENS": str(self.max_query_tokens),
            "FIELDSYNC_MAX_HASHES": str(self.max_hashes),
            "FIELDSYNC_MAX_OWNERS": str(self.max_owners),
            "FIELDSYNC_REQUEST_TIMEOUT": repr(self.request_timeout),
            "FIELDSYNC_MAX_RESPONSE_BYTES": str(self.max_response_bytes),
            "FIELDSYNC_INTROSPECTION": "1" if self.introspection else "0",
        }


def _limits_from_environment(env: Mapping[str, str], defaults: Settings) -> dict[str, Any]:
    return {
        "max_query_depth": _int(env, "FIELDSYNC_MAX_QUERY_DEPTH", defaults.max_query_depth, 1),
        "max_query_aliases": _int(
            env, "FIELDSYNC_MAX_QUERY_ALIASES", defaults.max_query_aliases, 0
        ),
        "max_query_fields": _int(env, "FIELDSYNC_MAX_QUERY_FIELDS", defaults.max_query_fields, 1),
        "max_query_cost": _int(env, "FIELDSYNC_MAX_QUERY_COST", defaults.max_query_cost, 1),
        "max_query_tokens": _int(env, "FIELDSYNC_MAX_QUERY_TOKENS", defaults.max_query_tokens, 1),
        "max_hashes": _int(env, "FIELDSYNC_MAX_HASHES", defaults.max_hashes, 0),
        "max_owners": _int(env, "FIELDSYNC_MAX_OWNERS", defaults.max_owners, 1, MAX_OWNERS_CEILING),
        "request_timeout": _float(env, "FIELDSYNC_REQUEST_TIMEOUT", defaults.request_timeout),
        "max_response_bytes": _int(
            env, "FIELDSYNC_MAX_RESPONSE_BYTES", defaults.max_response_bytes, MIN_BODY_BYTES
        ),
        "introspection": _bool(env, "FIELDSYNC_INTROSPECTION", defaults.introspection),
    }


def _operations_from_environment(env: Mapping[str, str], defaults: Settings) -> dict[str, Any]:
    return {
        "log_format": _choice(env, "FIELDSYNC_LOG_FORMAT", defaults.log_format, LOG_FORMATS),
        "graphiql": _bool(env, "FIELDSYNC_GRAPHIQL", defaults.graphiql),
        "fast_path": _bool(env, "FIELDSYNC_FAST_PATH", defaults.fast_path),
        "max_concurrent_requests": _int(
            env, "FIELDSYNC_MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests, 1
        ),
        "max_queued_requests": _int(
            env, "FIELDSYNC_MAX_QUEUED_REQUESTS", defaults.max_queued_requests, 0
        ),
        "queue_timeout": _float(env, "FIELDSYNC_QUEUE_TIMEOUT", defaults.queue_timeout),
        "pool_timeout": _float(env, "FIELDSYNC_POOL_TIMEOUT", defaults.pool_timeout),
        "retry_after": _int(env, "FIELDSYNC_RETRY_AFTER", defaults.retry_after, 1),
        "shutdown_timeout": _float(env, "FIELDSYNC_SHUTDOWN_TIMEOUT", defaults.shutdown_timeout),
        "cog_worker": _choice(env, "FIELDSYNC_COG_WORKER", defaults.cog_worker, COG_WORKER_MODES),
    }


def _blobs_from_environment(env: Mapping[str, str], defaults: Settings) -> dict[str, Any]:
    public_url = env.get("FIELDSYNC_PUBLIC_URL", "").strip() or None
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"FIELDSYNC_PUBLIC_URL must start with http:// or https://, not {public_url!r}"
        )
    return {
        "blob_store": env.get("FIELDSYNC_BLOB_STORE", "").strip() or defaults.blob_store,
        "upload_lifetime": _int(env, "FIELDSYNC_UPLOAD_LIFETIME", defaults.upload_lifetime, 1),
        "blob_gc_interval": _int(env, "FIELDSYNC_BLOB_GC_INTERVAL", defaults.blob_gc_interval, 0),
        "public_url": public_url,
    }


# -- reading one variable --------------------------------------------------------------------


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name} must be a whole number {bounds}, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingsError(f"{name} must be a whole number {bounds}, not {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be a number of seconds above 0, not {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1/true/yes/on or 0/false/no/off, not {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw.strip().lower()
