"""token last use and rate limit windows

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fieldsync.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_used_at",
                fieldsync.storage.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )

    op.create_table(
        "rate_limit_windows",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", "window_start", name=op.f("pk_rate_limit_windows")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Counters need no crash safety: no WAL, so counting a request costs no disk flush.
        op.execute("ALTER TABLE rate_limit_windows SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("rate_limit_windows")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
