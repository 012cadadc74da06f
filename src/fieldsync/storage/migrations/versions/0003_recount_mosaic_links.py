"""recount mosaic image links by organization

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A mosaic's image links count only while the linked image is live and in the mosaic's own
organization (docs/sync.md). Databases written before that rule may hold mosaics whose stored
representation still counts images that moved to another organization: recompute every live
mosaic's representation under the current rule. Mosaics whose counted links did not change keep
their content hash; the others get a new version, attributed to their last updater, so clients
see them as updated on their next sync.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from fieldsync.model import kinds as k
from fieldsync.model.representation import refresh_representations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    conn = op.get_bind()
    mosaics = k.MOSAIC.table
    now = datetime.now(UTC).replace(microsecond=0)
    query = (
        sa.select(mosaics.c.id, mosaics.c.updated_by_id)
        .where(mosaics.c.deleted_at.is_(None))
        .order_by(mosaics.c.id)
    )
    rows = conn.execute(query).all()
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        refresh_representations(conn, k.MOSAIC, {row.id: row.updated_by_id for row in batch}, now)


def downgrade() -> None:
    """Nothing to undo: the representations follow the rule of the code that reads them."""
