"""the durable queue of COG generation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fieldsync.storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, fieldsync.storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cog_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cog_id", sa.Integer(), nullable=False),
        sa.Column("source_file_id", sa.Integer(), nullable=False),
        sa.Column("mosaic_type", sa.String(length=32), nullable=False),
        sa.Column("clip_boundary", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        _moment("run_after", False),
        _moment("lease_expires_at", True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("output_file_id", sa.Integer(), nullable=True),
        _moment("created_at", False),
        _moment("updated_at", False),
        _moment("finished_at", True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_cog_jobs_actor_id_users")
        ),
        sa.ForeignKeyConstraint(["cog_id"], ["cogs.id"], name=op.f("fk_cog_jobs_cog_id_cogs")),
        sa.ForeignKeyConstraint(
            ["output_file_id"], ["files.id"], name=op.f("fk_cog_jobs_output_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["source_file_id"], ["files.id"], name=op.f("fk_cog_jobs_source_file_id_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cog_jobs")),
    )
    op.create_index(op.f("ix_cog_jobs_cog_id"), "cog_jobs", ["cog_id"], unique=False)
    op.create_index("ix_cog_jobs_state_run_after", "cog_jobs", ["state", "run_after"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cog_jobs_state_run_after", table_name="cog_jobs")
    op.drop_index(op.f("ix_cog_jobs_cog_id"), table_name="cog_jobs")
    op.drop_table("cog_jobs")
