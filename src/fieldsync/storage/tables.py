"""The relational data model.

Every entity has an integer primary key used for joins and a public, immutable `sentera_id`.
Nothing is ever hard-deleted: a deleted row keeps its values and gets `deleted_at` (a
tombstone), so ids are never reused and sync can name what went away.

Sync items (fields, surveys, images, mosaics, COGs, feature sets, files, flight tasks) also
carry their current `content_hash`, the canonical JSON `representation` the hash was computed
from, and their *scope key* (`scope_type`, `scope_id`): the one parent whose sync query lists
them (a survey for images, mosaics and COGs; the owner for files and feature sets; the
organization for flight tasks and fields; the field for surveys). Every hash ever issued is kept
in `item_versions` with the scope key and the representation of that version.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from fieldsync.storage.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SENTERA_ID = String(80)


def _entity_columns() -> list[Column[object]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("sentera_id", SENTERA_ID, nullable=False, unique=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("deleted_at", UTCDateTime, nullable=True),
    ]


def _attribution_columns() -> list[Column[object]]:
    return [
        Column("created_by_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("updated_by_id", Integer, ForeignKey("users.id"), nullable=True),
    ]


def _sync_columns() -> list[Column[object]]:
    return [
        Column("content_hash", LargeBinary(12), nullable=False),
        Column("representation", Text, nullable=False),
        Column("scope_type", String(16), nullable=False),
        Column("scope_id", Integer, nullable=False),
    ]


def _blob_columns() -> list[Column[object]]:
    """The stored bytes of an image or file: null until an upload is attached."""
    return [
        # The blob store key (content-addressed, see fieldsync.blobs.store.blob_key).
        Column("blob_key", String(128), nullable=True, index=True),
        Column("checksum", String(24), nullable=True),  # MD5 of the bytes, base64
        Column("content_type", String(255), nullable=True),
    ]


def _sync_table(name: str, *columns: Column[object]) -> Table:
    table = Table(
        name,
        metadata,
        *_entity_columns(),
        *_attribution_columns(),
        *_sync_columns(),
        *columns,
    )
    # The sync hot path: live items of one scope in creation order, with their hashes, read
    # from the index alone.
    Index(
        f"ix_{name}_live_scope",
        table.c.scope_type,
        table.c.scope_id,
        table.c.created_at,
        table.c.id,
        table.c.content_hash,
        sqlite_where=table.c.deleted_at.is_(None),
        postgresql_where=table.c.deleted_at.is_(None),
    )
    return table


organizations = Table(
    "organizations",
    metadata,
    *_entity_columns(),
    Column("name", String(255), nullable=False),
    Column("parent_id", Integer, ForeignKey("organizations.id"), nullable=True, index=True),
)

users = Table(
    "users",
    metadata,
    *_entity_columns(),
    Column("email", String(320), nullable=False, index=True),
    Column("first_name", String(255), nullable=True),
    Column("last_name", String(255), nullable=True),
)

# A member's role in one organization and all its descendants: viewer (read and sync), editor
# (also write), admin (also manage members and tokens). See fieldsync.access.
memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("role", String(16), nullable=False, server_default="editor"),
    PrimaryKeyConstraint("user_id", "organization_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    # When the token last authenticated a request, to the minute (written at most once a
    # minute per token, best effort: never while that would make the request wait).
    Column("last_used_at", UTCDateTime, nullable=True),
)

# Requests per token per fixed one-minute window, counted by every worker process (PostgreSQL).
# Transient: windows older than the current one are deleted, `db copy` skips the table, and on
# PostgreSQL it is UNLOGGED (counters are worth no WAL; a crash merely empties them).
rate_limit_windows = Table(
    "rate_limit_windows",
    metadata,
    Column("token_id", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),  # Unix time, a multiple of 60
    Column("request_count", Integer, nullable=False),
    PrimaryKeyConstraint("token_id", "window_start"),
    info={"transient": True},
)

fields = _sync_table(
    "fields",
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("latitude", Double, nullable=True),
    Column("longitude", Double, nullable=True),
)

surveys = _sync_table(
    "surveys",
    Column("field_id", Integer, ForeignKey("fields.id"), nullable=False, index=True),
    Column("name", String(255), nullable=True),
    Column("start_time", UTCDateTime, nullable=True),
    Column("end_time", UTCDateTime, nullable=True),
    Column("notes", Text, nullable=True),
)

images = _sync_table(
    "images",
    Column("survey_id", Integer, ForeignKey("surveys.id"), nullable=False, index=True),
    Column("filename", String(1024), nullable=False),
    Column("latitude", Double, nullable=True),
    Column("longitude", Double, nullable=True),
    Column("altitude", Double, nullable=True),
    Column("captured_at", UTCDateTime, nullable=True),
    Column("size", BigInteger, nullable=True),
    *_blob_columns(),
)

mosaics = _sync_table(
    "mosaics",
    Column("survey_id", Integer, ForeignKey("surveys.id"), nullable=False, index=True),
    Column("name", String(255), nullable=True),
    Column("mosaic_type", String(32), nullable=False),
    Column("quality", String(16), nullable=False),
    Column("image_status", String(16), nullable=False),
    Column("captured_at", UTCDateTime, nullable=True),
    Column("area_value", Double, nullable=True),
    Column("area_unit", String(16), nullable=True),
    Column("is_from_sentera_sensor", Boolean, nullable=False),
    Column("message", Text, nullable=True),
    Column("released", Boolean, nullable=False),
)

mosaic_images = Table(
    "mosaic_images",
    metadata,
    Column("mosaic_id", Integer, ForeignKey("mosaics.id"), nullable=False),
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False, index=True),
    PrimaryKeyConstraint("mosaic_id", "image_id"),
)

cogs = _sync_table(
    "cogs",
    Column("mosaic_id", Integer, ForeignKey("mosaics.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("clipped", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("max_zoom", Integer, nullable=True),
)

# A feature set's owner (SURVEY, FIELD or ORGANIZATION) is its scope key.
feature_sets = _sync_table(
    "feature_sets",
    Column("name", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
)

logos = Table(
    "logos",
    metadata,
    *_entity_columns(),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(255), nullable=True),
)

# A file's owner (SURVEY, MOSAIC, FIELD, FEATURE_SET or LOGO) is its scope key.
files = _sync_table(
    "files",
    Column("filename", String(1024), nullable=False),
    Column("download_filename", String(1024), nullable=False),
    Column("file_type", String(32), nullable=False),
    Column("path", String(2048), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("version", Integer, nullable=True),
    *_blob_columns(),
)

flight_tasks = _sync_table(
    "flight_tasks",
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(255), nullable=True),
    Column("status", String(32), nullable=False),
    Column("field_id", Integer, ForeignKey("fields.id"), nullable=True, index=True),
    Column("survey_id", Integer, ForeignKey("surveys.id"), nullable=True, index=True),
    Column("notes", Text, nullable=True),
)

# Uploads created by `create_file_upload` / `create_multipart_file_upload`. The id is the
# `file_key` an upsert attaches; rows older than the upload lifetime that were never attached
# are removed by `fieldsync blobs gc`, together with bytes nothing references any more.
blob_uploads = Table(
    "blob_uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("multipart", Boolean, nullable=False),
    Column("filename", String(1024), nullable=False),
    Column("byte_size", BigInteger, nullable=True),
    Column("checksum", String(24), nullable=True),
    Column("content_type", String(255), nullable=True),
    # Where the bytes are written: the content key itself, or a staging key (multipart).
    Column("storage_key", String(1024), nullable=False),
    Column("store_upload_id", String(1024), nullable=True),  # an S3 multipart UploadId
    Column("blob_key", String(128), nullable=True),  # set once the bytes are complete
    Column("created_by_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("attached_at", UTCDateTime, nullable=True),
)

# The durable queue of COG generation (`fieldsync.processing.jobs`). A job is queued in the
# transaction that imports its mosaic; a worker claims it by taking a lease, renews the lease
# while it works and finishes it only while `attempts` still names its claim, so a worker that
# lost its lease (killed, or stalled past it) can never finish a job another worker retook.
cog_jobs = Table(
    "cog_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cog_id", Integer, ForeignKey("cogs.id"), nullable=False, index=True),
    Column("source_file_id", Integer, ForeignKey("files.id"), nullable=False),
    Column("mosaic_type", String(32), nullable=False),
    Column("clip_boundary", Text, nullable=True),  # GeoJSON geometry, WGS84
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=False),
    # queued → running → done | failed | cancelled (a running job whose lease expired is
    # claimed again, up to max_attempts)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", UTCDateTime, nullable=False),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("worker", String(255), nullable=True),  # who holds or last held the lease
    Column("last_error", Text, nullable=True),
    Column("output_file_id", Integer, ForeignKey("files.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_cog_jobs_state_run_after", "state", "run_after"),
)

# Server-wide secrets shared by every process of a deployment (the link signing key).
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per sync table: a value that changes, in the same transaction, with every statement
# that writes the table (set by triggers, migration 0006). A process may keep a scope's live
# (content_hash, id) rows while its table's value is the one it read with them
# (`fieldsync.sync.live_scans`). Transient: `db copy` skips it; the target has its own.
sync_revisions = Table(
    "sync_revisions",
    metadata,
    Column("table_name", String(64), primary_key=True),
    Column("revision", BigInteger, nullable=False),
    info={"transient": True},
)

item_versions = Table(
    "item_versions",
    metadata,
    Column("content_hash", LargeBinary(12), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("item_id", Integer, nullable=False),
    Column("scope_type", String(16), nullable=False),
    Column("scope_id", Integer, nullable=False),
    # What a client holding this hash was given: a deleted entry echoes it, so an item that
    # moved elsewhere (even to another tenant) shows only what its old readers already saw.
    Column("representation", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_item_versions_kind_item", "kind", "item_id"),
)


def data_tables() -> list[Table]:
    """Every table that holds deployment data, parents first (all but transient counters)."""
    return [table for table in metadata.sorted_tables if not table.info.get("transient")]
