"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fieldsync.storage.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_versions",
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", name=op.f("pk_item_versions")),
    )
    with op.batch_alter_table("item_versions", schema=None) as batch_op:
        batch_op.create_index("ix_item_versions_kind_item", ["kind", "item_id"], unique=False)

    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organizations.id"],
            name=op.f("fk_organizations_parent_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_organizations_sentera_id")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organizations_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_users_sentera_id")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_email"), ["email"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "feature_sets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_feature_sets_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_feature_sets_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_sets")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_feature_sets_sentera_id")),
    )
    with op.batch_alter_table("feature_sets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feature_sets_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "fields",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_fields_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_fields_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_fields_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fields")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_fields_sentera_id")),
    )
    with op.batch_alter_table("fields", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fields_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_fields_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=False),
        sa.Column("download_filename", sa.String(length=1024), nullable=False),
        sa.Column("file_type", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_files_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_files_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_files_sentera_id")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(
            "ix_files_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "logos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_logos_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logos")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_logos_sentera_id")),
    )
    with op.batch_alter_table("logos", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logos_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "organization_id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_memberships_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("start_time", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_time", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_surveys_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["field_id"], ["fields.id"], name=op.f("fk_surveys_field_id_fields")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_surveys_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_surveys_sentera_id")),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_surveys_field_id"), ["field_id"], unique=False)
        batch_op.create_index(
            "ix_surveys_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "flight_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("field_id", sa.Integer(), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_flight_tasks_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["field_id"], ["fields.id"], name=op.f("fk_flight_tasks_field_id_fields")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_flight_tasks_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_flight_tasks_survey_id_surveys")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_flight_tasks_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flight_tasks")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_flight_tasks_sentera_id")),
    )
    with op.batch_alter_table("flight_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flight_tasks_field_id"), ["field_id"], unique=False)
        batch_op.create_index(
            "ix_flight_tasks_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_flight_tasks_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flight_tasks_survey_id"), ["survey_id"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("altitude", sa.Double(), nullable=True),
        sa.Column("captured_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_images_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_images_survey_id_surveys")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_images_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_images_sentera_id")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(
            "ix_images_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_images_survey_id"), ["survey_id"], unique=False)

    op.create_table(
        "mosaics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("mosaic_type", sa.String(length=32), nullable=False),
        sa.Column("quality", sa.String(length=16), nullable=False),
        sa.Column("image_status", sa.String(length=16), nullable=False),
        sa.Column("captured_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("area_value", sa.Double(), nullable=True),
        sa.Column("area_unit", sa.String(length=16), nullable=True),
        sa.Column("is_from_sentera_sensor", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_mosaics_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_mosaics_survey_id_surveys")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_mosaics_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mosaics")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_mosaics_sentera_id")),
    )
    with op.batch_alter_table("mosaics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mosaics_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_mosaics_survey_id"), ["survey_id"], unique=False)

    op.create_table(
        "cogs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentera_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", fieldsync.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=12), nullable=False),
        sa.Column("representation", sa.Text(), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("mosaic_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("clipped", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("max_zoom", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_cogs_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["mosaic_id"], ["mosaics.id"], name=op.f("fk_cogs_mosaic_id_mosaics")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_cogs_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cogs")),
        sa.UniqueConstraint("sentera_id", name=op.f("uq_cogs_sentera_id")),
    )
    with op.batch_alter_table("cogs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cogs_live_scope",
            ["scope_type", "scope_id", "created_at", "id", "content_hash"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_cogs_mosaic_id"), ["mosaic_id"], unique=False)

    op.create_table(
        "mosaic_images",
        sa.Column("mosaic_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_mosaic_images_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["mosaic_id"], ["mosaics.id"], name=op.f("fk_mosaic_images_mosaic_id_mosaics")
        ),
        sa.PrimaryKeyConstraint("mosaic_id", "image_id", name=op.f("pk_mosaic_images")),
    )
    with op.batch_alter_table("mosaic_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mosaic_images_image_id"), ["image_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mosaic_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mosaic_images_image_id"))

    op.drop_table("mosaic_images")
    with op.batch_alter_table("cogs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cogs_mosaic_id"))
        batch_op.drop_index(
            "ix_cogs_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("cogs")
    with op.batch_alter_table("mosaics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mosaics_survey_id"))
        batch_op.drop_index(
            "ix_mosaics_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("mosaics")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_survey_id"))
        batch_op.drop_index(
            "ix_images_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("images")
    with op.batch_alter_table("flight_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flight_tasks_survey_id"))
        batch_op.drop_index(batch_op.f("ix_flight_tasks_organization_id"))
        batch_op.drop_index(
            "ix_flight_tasks_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_flight_tasks_field_id"))

    op.drop_table("flight_tasks")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_surveys_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_surveys_field_id"))

    op.drop_table("surveys")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_organization_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("logos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logos_organization_id"))

    op.drop_table("logos")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_files_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("files")
    with op.batch_alter_table("fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fields_organization_id"))
        batch_op.drop_index(
            "ix_fields_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("fields")
    with op.batch_alter_table("feature_sets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_feature_sets_live_scope",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("feature_sets")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email"))

    op.drop_table("users")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organizations_parent_id"))

    op.drop_table("organizations")
    with op.batch_alter_table("item_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_item_versions_kind_item")

    op.drop_table("item_versions")
