"""The SQL of `server_secrets`: values every process of a deployment must share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from fieldsync.storage import tables as t
from fieldsync.storage.sql import insert_ignoring_duplicates

_secrets = t.server_secrets


def get_or_create_secret(engine: Engine, name: str, make: Callable[[], str]) -> str:
    """The secret called `name`; the first caller ever stores `make()`. Race-safe: when two
    processes start at once, both insert-if-absent and both read back the one that won."""
    with engine.connect() as conn:
        found = conn.execute(select(_secrets.c.value).where(_secrets.c.name == name)).scalar()
    if found is not None:
        return str(found)
    with engine.begin() as conn:
        row = {"name": name, "value": make(), "created_at": datetime.now(UTC)}
        insert_ignoring_duplicates(conn, _secrets, [row])
    with engine.connect() as conn:
        value = conn.execute(select(_secrets.c.value).where(_secrets.c.name == name)).scalar_one()
    return str(value)
