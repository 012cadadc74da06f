"""Entity kinds: what each changeset record may hold and how it maps onto the tables.

One `EntityKind` per type of the data model. The changeset loader validates records against
`attributes`; the sync engine reads `sync` (page size, GraphQL type) for the kinds that sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Table

from fieldsync.ids import TypeCode
from fieldsync.model import enums
from fieldsync.storage import tables as t


class ValueType(Enum):
    TEXT = "string"
    FLOAT = "number"
    INT = "integer"
    BOOL = "boolean"
    DATETIME = "ISO-8601 timestamp"
    ENUM = "enum"
    REF = "sentera_id"
    REF_LIST = "list of sentera_ids"
    AREA = "area object"
    MEMBERSHIPS = "list of memberships"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One key of a changeset record."""

    key: str
    value_type: ValueType
    column: str | None = None
    required: bool = False
    nullable: bool = True
    choices: tuple[str, ...] = ()
    refs: tuple[TypeCode, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: object = None
    internal: bool = False
    """Set by the server (e.g. the stored bytes of a file), never given in a record."""

    @property
    def target(self) -> str:
        """The column this key is stored in."""
        return self.column or self.key


@dataclass(frozen=True, slots=True)
class SyncInfo:
    graphql_type: str
    page_size: int
    scope_type: str | None
    """The fixed scope type of the kind, or None when the owner's type is the scope type."""


@dataclass(frozen=True, slots=True)
class EntityKind:
    name: str
    changeset_key: str
    code: TypeCode
    table: Table
    attributes: tuple[Attribute, ...]
    graphql_type: str
    sync: SyncInfo | None = None

    def attribute(self, key: str) -> Attribute | None:
        for attribute in self.attributes:
            if attribute.key == key:
                return attribute
        return None

    @property
    def given_attributes(self) -> tuple[Attribute, ...]:
        """The attributes a changeset record or an upsert input may give."""
        return tuple(attribute for attribute in self.attributes if not attribute.internal)


V = ValueType
OWNER_CODES: dict[str, TypeCode] = {
    "SURVEY": TypeCode.SURVEY,
    "MOSAIC": TypeCode.MOSAIC,
    "FIELD": TypeCode.FIELD,
    "FEATURE_SET": TypeCode.FEATURE_SET,
    "LOGO": TypeCode.LOGO,
    "ORGANIZATION": TypeCode.ORGANIZATION,
}

# The stored bytes of an image or file, set when an upload is attached (fieldsync.blobs).
_BLOB_ATTRIBUTES = (
    Attribute("blob_key", V.TEXT, internal=True),
    Attribute("checksum", V.TEXT, internal=True),
    Attribute("content_type", V.TEXT, internal=True),
)

ORGANIZATION = EntityKind(
    "organization",
    "organizations",
    TypeCode.ORGANIZATION,
    t.organizations,
    (
        Attribute("name", V.TEXT, required=True, nullable=False),
        Attribute("parent_sentera_id", V.REF, column="parent_id", refs=(TypeCode.ORGANIZATION,)),
    ),
    "Organization",
)
USER = EntityKind(
    "user",
    "users",
    TypeCode.USER,
    t.users,
    (
        Attribute("email", V.TEXT, required=True, nullable=False),
        Attribute("first_name", V.TEXT),
        Attribute("last_name", V.TEXT),
        # A user is created with one of these two (checked by the planner): plain ids make the
        # user an editor of each; memberships name a role per organization.
        Attribute(
            "organization_sentera_ids",
            V.REF_LIST,
            nullable=False,
            refs=(TypeCode.ORGANIZATION,),
        ),
        Attribute("memberships", V.MEMBERSHIPS, nullable=False, refs=(TypeCode.ORGANIZATION,)),
    ),
    "User",
)
FIELD = EntityKind(
    "field",
    "fields",
    TypeCode.FIELD,
    t.fields,
    (
        Attribute(
            "organization_sentera_id",
            V.REF,
            column="organization_id",
            required=True,
            nullable=False,
            refs=(TypeCode.ORGANIZATION,),
        ),
        Attribute("name", V.TEXT, required=True, nullable=False),
        Attribute("latitude", V.FLOAT, minimum=-90, maximum=90),
        Attribute("longitude", V.FLOAT, minimum=-180, maximum=180),
    ),
    "Field",
    SyncInfo("Field", 300, "ORGANIZATION"),
)
SURVEY = EntityKind(
    "survey",
    "surveys",
    TypeCode.SURVEY,
    t.surveys,
    (
        Attribute(
            "field_sentera_id",
            V.REF,
            column="field_id",
            required=True,
            nullable=False,
            refs=(TypeCode.FIELD,),
        ),
        Attribute("name", V.TEXT),
        Attribute("start_time", V.DATETIME),
        Attribute("end_time", V.DATETIME),
        Attribute("notes", V.TEXT),
    ),
    "Survey",
    SyncInfo("Survey", 2000, "FIELD"),
)
IMAGE = EntityKind(
    "image",
    "images",
    TypeCode.IMAGE,
    t.images,
    (
        Attribute(
            "survey_sentera_id",
            V.REF,
            column="survey_id",
            required=True,
            nullable=False,
            refs=(TypeCode.SURVEY,),
        ),
        Attribute("filename", V.TEXT, required=True, nullable=False),
        Attribute("latitude", V.FLOAT, minimum=-90, maximum=90),
        Attribute("longitude", V.FLOAT, minimum=-180, maximum=180),
        Attribute("altitude", V.FLOAT),
        Attribute("captured_at", V.DATETIME),
        Attribute("size", V.INT, minimum=0),
        *_BLOB_ATTRIBUTES,
    ),
    "Image",
    SyncInfo("Image", 1000, "SURVEY"),
)
MOSAIC = EntityKind(
    "mosaic",
    "mosaics",
    TypeCode.MOSAIC,
    t.mosaics,
    (
        Attribute(
            "survey_sentera_id",
            V.REF,
            column="survey_id",
            required=True,
            nullable=False,
            refs=(TypeCode.SURVEY,),
        ),
        Attribute("name", V.TEXT),
        Attribute("mosaic_type", V.ENUM, required=True, nullable=False, choices=enums.MOSAIC_TYPE),
        Attribute("quality", V.ENUM, required=True, nullable=False, choices=enums.MOSAIC_QUALITY),
        Attribute(
            "image_status",
            V.ENUM,
            nullable=False,
            choices=enums.MOSAIC_IMAGE_STATUS,
            default="AVAILABLE",
        ),
        Attribute("captured_at", V.DATETIME),
        Attribute("area", V.AREA),
        Attribute("is_from_sentera_sensor", V.BOOL, nullable=False, default=False),
        Attribute("message", V.TEXT),
        Attribute("released", V.BOOL, nullable=False, default=False),
        Attribute("image_sentera_ids", V.REF_LIST, nullable=False, refs=(TypeCode.IMAGE,)),
    ),
    "Mosaic",
    SyncInfo("Mosaic", 2000, "SURVEY"),
)
COG = EntityKind(
    "cog",
    "cogs",
    TypeCode.COG,
    t.cogs,
    (
        Attribute(
            "mosaic_sentera_id",
            V.REF,
            column="mosaic_id",
            required=True,
            nullable=False,
            refs=(TypeCode.MOSAIC,),
        ),
        Attribute("status", V.ENUM, required=True, nullable=False, choices=enums.COG_STATUS),
        Attribute("clipped", V.BOOL, nullable=False, default=False),
        Attribute("error", V.TEXT),
        Attribute("max_zoom", V.INT, minimum=0, maximum=30),
    ),
    "Cog",
    SyncInfo("Cog", 1000, "SURVEY"),
)
FEATURE_SET = EntityKind(
    "feature_set",
    "feature_sets",
    TypeCode.FEATURE_SET,
    t.feature_sets,
    (
        Attribute(
            "owner_type",
            V.ENUM,
            column="scope_type",
            required=True,
            nullable=False,
            choices=enums.FEATURE_SET_OWNER_TYPE,
        ),
        Attribute(
            "owner_sentera_id",
            V.REF,
            column="scope_id",
            required=True,
            nullable=False,
            refs=(TypeCode.SURVEY, TypeCode.FIELD, TypeCode.ORGANIZATION),
        ),
        Attribute("name", V.TEXT, required=True, nullable=False),
        Attribute("type", V.ENUM, required=True, nullable=False, choices=enums.FEATURE_SET_TYPE),
        Attribute(
            "status", V.ENUM, nullable=False, choices=enums.FEATURE_SET_STATUS, default="SUCCESS"
        ),
    ),
    "FeatureSet",
    SyncInfo("FeatureSet", 2000, None),
)
LOGO = EntityKind(
    "logo",
    "logos",
    TypeCode.LOGO,
    t.logos,
    (
        Attribute(
            "organization_sentera_id",
            V.REF,
            column="organization_id",
            required=True,
            nullable=False,
            refs=(TypeCode.ORGANIZATION,),
        ),
        Attribute("name", V.TEXT),
    ),
    "Logo",
)
FILE = EntityKind(
    "file",
    "files",
    TypeCode.FILE,
    t.files,
    (
        Attribute(
            "owner_type",
            V.ENUM,
            column="scope_type",
            required=True,
            nullable=False,
            choices=enums.FILE_OWNER_TYPE,
        ),
        Attribute(
            "owner_sentera_id",
            V.REF,
            column="scope_id",
            required=True,
            nullable=False,
            refs=(
                TypeCode.SURVEY,
                TypeCode.MOSAIC,
                TypeCode.FIELD,
                TypeCode.FEATURE_SET,
                TypeCode.LOGO,
            ),
        ),
        Attribute("filename", V.TEXT, required=True, nullable=False),
        Attribute("download_filename", V.TEXT, nullable=False),
        Attribute("file_type", V.ENUM, required=True, nullable=False, choices=enums.FILE_TYPE),
        Attribute("path", V.TEXT),
        Attribute("size", V.INT, minimum=0),
        Attribute("version", V.INT, minimum=0),
        *_BLOB_ATTRIBUTES,
    ),
    "File",
    SyncInfo("File", 2000, None),
)
FLIGHT_TASK = EntityKind(
    "flight_task",
    "flight_tasks",
    TypeCode.FLIGHT_TASK,
    t.flight_tasks,
    (
        Attribute(
            "organization_sentera_id",
            V.REF,
            column="organization_id",
            required=True,
            nullable=False,
            refs=(TypeCode.ORGANIZATION,),
        ),
        Attribute("status", V.ENUM, required=True, nullable=False, choices=enums.TASK_STATUS),
        Attribute("name", V.TEXT),
        Attribute("field_sentera_id", V.REF, column="field_id", refs=(TypeCode.FIELD,)),
        Attribute("survey_sentera_id", V.REF, column="survey_id", refs=(TypeCode.SURVEY,)),
        Attribute("notes", V.TEXT),
    ),
    "FlightTask",
    SyncInfo("FlightTask", 2000, "ORGANIZATION"),
)

# Changeset order: every parent kind comes before its children.
ALL_KINDS: tuple[EntityKind, ...] = (
    ORGANIZATION,
    USER,
    FIELD,
    SURVEY,
    IMAGE,
    MOSAIC,
    COG,
    FEATURE_SET,
    LOGO,
    FILE,
    FLIGHT_TASK,
)
KIND_BY_CODE: dict[TypeCode, EntityKind] = {kind.code: kind for kind in ALL_KINDS}
KIND_BY_CHANGESET_KEY: dict[str, EntityKind] = {kind.changeset_key: kind for kind in ALL_KINDS}
SYNC_KINDS: tuple[EntityKind, ...] = tuple(kind for kind in ALL_KINDS if kind.sync is not None)

# Keys every record may carry besides its kind's attributes.
COMMON_KEYS = ("sentera_id", "created_at", "created_by_sentera_id", "updated_by_sentera_id")
