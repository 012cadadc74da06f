"""Settings: every one has a command-line option and a FIELDSYNC_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fieldsync.ratelimit import DEFAULT_RATE_LIMIT
from fieldsync.storage.database import DEFAULT_DATABASE_URL

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    rate_limit: int = DEFAULT_RATE_LIMIT  # requests per minute per token; 0 turns it off

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
            rate_limit=int(env.get("FIELDSYNC_RATE_LIMIT", defaults.rate_limit)),
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
        }
