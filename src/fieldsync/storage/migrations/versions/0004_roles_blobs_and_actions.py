"""membership roles, stored bytes of files and images, uploads, server secrets

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Every existing membership becomes an `editor` (what a member could do before roles existed).

Every sync item's representation gains `action` (CREATE until the item first changed, taken
from its version history), and images and files gain `checksum` (null: no bytes were stored
before). Representations are recomputed with the application's code, keeping each item's
`updated_at` and `updated_by`; since they change, so do content hashes, and each client
re-fetches every item once on its next sync.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import fieldsync.storage.types
from fieldsync.model import kinds as k
from fieldsync.model.representation import refresh_representations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BLOB_TABLES = ("images", "files")
_BATCH = 2000


def _blob_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("blob_key", sa.String(length=128), nullable=True),
        sa.Column("checksum", sa.String(length=24), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), server_default="editor", nullable=False)
        )
    for table in _BLOB_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in _blob_columns():
                batch_op.add_column(column)
            batch_op.create_index(batch_op.f(f"ix_{table}_blob_key"), ["blob_key"], unique=False)
    op.create_table(
        "blob_uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("multipart", sa.Boolean(), nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=24), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("storage_key", sa.String(length=1024), nullable=False),
        sa.Column("store_upload_id", sa.String(length=1024), nullable=True),
        sa.Column("blob_key", sa.String(length=128), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "completed_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("attached_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_blob_uploads_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_uploads")),
    )
    op.create_index(
        op.f("ix_blob_uploads_created_at"), "blob_uploads", ["created_at"], unique=False
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    _reshape_representations()


def _reshape_representations() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC).replace(microsecond=0)
    for kind in k.SYNC_KINDS:
        table = kind.table
        query = sa.select(table.c.id).where(table.c.deleted_at.is_(None)).order_by(table.c.id)
        ids = list(conn.execute(query).scalars())
        for start in range(0, len(ids), _BATCH):
            batch = dict.fromkeys(ids[start : start + _BATCH])
            refresh_representations(conn, kind, batch, now, reshaped=True)


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_index(op.f("ix_blob_uploads_created_at"), table_name="blob_uploads")
    op.drop_table("blob_uploads")
    for table in _BLOB_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_blob_key"))
            for column in ("content_type", "checksum", "blob_key"):
                batch_op.drop_column(column)
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("role")
