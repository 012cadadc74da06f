"""membership roles, stored bytes of files and images, uploads, server secrets

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Every existing membership becomes an `editor` (what a member could do before roles existed).
Representations and content hashes are left as they are: an item without stored bytes is
represented as before, and one stored without `action` is read as CREATE when it was never
updated (`model.representation.action_of`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fieldsync.storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BLOB_TABLES = ("images", "files")


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
