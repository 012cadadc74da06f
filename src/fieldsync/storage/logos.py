"""The SQL of logos (the `logos` table): an organization's branding images, not sync items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from fieldsync.storage import tables as t


@dataclass(frozen=True, slots=True)
class LogoRow:
    sentera_id: str
    name: str | None
    created_at: datetime
    updated_at: datetime


def live_logos(conn: Connection, organization_id: int) -> list[LogoRow]:
    """The organization's logos that are not deleted, oldest first."""
    logos = t.logos
    rows = conn.execute(
        select(logos.c.sentera_id, logos.c.name, logos.c.created_at, logos.c.updated_at)
        .where(logos.c.organization_id == organization_id, logos.c.deleted_at.is_(None))
        .order_by(logos.c.created_at, logos.c.id)
    )
    return [LogoRow(row.sentera_id, row.name, row.created_at, row.updated_at) for row in rows]
