"""Settings: every one has a command-line option and a FIELDSYNC_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fieldsync.storage.database import DEFAULT_DATABASE_URL

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off", "")


def _flag(value: str) -> bool:
    if value.strip().lower() in _TRUE_WORDS:
        return True
    if value.strip().lower() in _FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes/no value: use 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    # Operations (see docs/operations.md).
    log_format: str = "json"
    graphiql: bool = True
    max_concurrent_requests: int = 8
    max_queued_requests: int = 16
    queue_timeout: float = 2.0
    pool_timeout: float = 2.0
    retry_after: int = 2
    shutdown_timeout: float = 10.0

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        defaults = cls()
        return cls(
            database_url=env.get("FIELDSYNC_DATABASE_URL", defaults.database_url),
            host=env.get("FIELDSYNC_HOST", defaults.host),
            port=int(env.get("FIELDSYNC_PORT", defaults.port)),
            workers=int(env.get("FIELDSYNC_WORKERS", defaults.workers)),
            max_body_bytes=int(env.get("FIELDSYNC_MAX_BODY_BYTES", defaults.max_body_bytes)),
            log_level=env.get("FIELDSYNC_LOG_LEVEL", defaults.log_level),
            **_operations_from_environment(defaults),
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
            **self._operations_environment(),
        }

    def _operations_environment(self) -> dict[str, str]:
        return {
            "FIELDSYNC_LOG_FORMAT": self.log_format,
            "FIELDSYNC_GRAPHIQL": "1" if self.graphiql else "0",
            "FIELDSYNC_MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
            "FIELDSYNC_MAX_QUEUED_REQUESTS": str(self.max_queued_requests),
            "FIELDSYNC_QUEUE_TIMEOUT": str(self.queue_timeout),
            "FIELDSYNC_POOL_TIMEOUT": str(self.pool_timeout),
            "FIELDSYNC_RETRY_AFTER": str(self.retry_after),
            "FIELDSYNC_SHUTDOWN_TIMEOUT": str(self.shutdown_timeout),
        }


def _operations_from_environment(defaults: Settings) -> dict[str, Any]:
    env = os.environ
    return {
        "log_format": env.get("FIELDSYNC_LOG_FORMAT", defaults.log_format),
        "graphiql": _flag(env.get("FIELDSYNC_GRAPHIQL", "1" if defaults.graphiql else "0")),
        "max_concurrent_requests": int(
            env.get("FIELDSYNC_MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests)
        ),
        "max_queued_requests": int(
            env.get("FIELDSYNC_MAX_QUEUED_REQUESTS", defaults.max_queued_requests)
        ),
        "queue_timeout": float(env.get("FIELDSYNC_QUEUE_TIMEOUT", defaults.queue_timeout)),
        "pool_timeout": float(env.get("FIELDSYNC_POOL_TIMEOUT", defaults.pool_timeout)),
        "retry_after": int(env.get("FIELDSYNC_RETRY_AFTER", defaults.retry_after)),
        "shutdown_timeout": float(env.get("FIELDSYNC_SHUTDOWN_TIMEOUT", defaults.shutdown_timeout)),
    }
