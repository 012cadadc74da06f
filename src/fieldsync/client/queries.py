"""The GraphQL documents the client sends, built from one description of what each synced type
holds (the same description gives the mirror its columns)."""

from __future__ import annotations

from dataclasses import dataclass

Selection = tuple["str | tuple[str, Selection]", ...]
"""Field names, and (object field, its selection) pairs for nested objects."""

_USER: Selection = ("sentera_id",)
_REF: Selection = ("sentera_id",)
COMMON: Selection = (
    "sentera_id",
    "content_hash",
    "action",
    "created_at",
    "updated_at",
    ("created_by", _USER),
    ("updated_by", _USER),
)


@dataclass(frozen=True)
class Kind:
    """One synced type: its GraphQL names, its fields, and the argument its scope takes."""

    name: str  # the mirror table: "images"
    typename: str  # the GraphQL type: "Image"
    sync_field: str  # "sync_images"
    scope_arguments: str  # the variable declarations of the scope
    scope_call: str  # the arguments passed to the sync field
    own: Selection
    parent: str  # the flattened column naming the parent of the scope: "survey_sentera_id"
    upsert_field: str
    upsert_parent: str  # "survey_sentera_id: ID!"
    upsert_items: str  # "images: [ImageImport!]!"

    @property
    def selection(self) -> Selection:
        return COMMON + self.own

    @property
    def sync_document(self) -> str:
        return (
            f"query Sync{self.typename}s({self.scope_arguments}, $content_hashes: [String!]!) "
            f"{{ page: {self.sync_field}({self.scope_call}, content_hashes: $content_hashes) {{ "
            "remaining_count deleted { sentera_id content_hash } "
            "failed { key message code reason details } "
            f"upserted {{ ... on {self.typename} {render(self.selection)} }} }} }}"
        )

    @property
    def upsert_document(self) -> str:
        parent_name = self.upsert_parent.split(":")[0]
        items_name = self.upsert_items.split(":")[0]
        return (
            f"mutation Upsert{self.typename}s(${self.upsert_parent}, ${self.upsert_items}) "
            f"{{ result: {self.upsert_field}({parent_name}: ${parent_name}, "
            f"{items_name}: ${items_name}) {{ "
            f"succeeded {{ ... on {self.typename} {render(self.selection)} }} "
            "failed { index item attributes { attribute key message details } } } }"
        )

    @property
    def delete_document(self) -> str:
        parent_name = self.upsert_parent.split(":")[0]
        return (
            f"mutation Delete{self.typename}s(${self.upsert_parent}, $sentera_ids: [ID!]!) "
            f"{{ result: delete_{self.name}({parent_name}: ${parent_name}, "
            "sentera_ids: $sentera_ids) { succeeded { sentera_id content_hash } "
            "failed { index item attributes { attribute key message details } } } }"
        )


def render(selection: Selection) -> str:
    """`{ a b c { d } }` for ("a", "b", ("c", ("d",)))."""
    parts = [
        name if isinstance(name, str) else f"{name[0]} {render(name[1])}" for name in selection
    ]
    return "{ " + " ".join(parts) + " }"


def columns(selection: Selection, prefix: str = "") -> list[str]:
    """The flattened column names of a selection: nested `survey { sentera_id }` becomes
    `survey_sentera_id`."""
    names: list[str] = []
    for entry in selection:
        if isinstance(entry, str):
            names.append(prefix + entry)
        else:
            names.extend(columns(entry[1], f"{prefix}{entry[0]}_"))
    return names


_OWNER: Selection = ("owner_type", "sentera_id")
_ORGANIZATION_SCOPE = (
    "$organization_sentera_id: ID!",
    "organization_sentera_id: $organization_sentera_id",
)
_SURVEY_SCOPE = ("$survey_sentera_id: ID!", "survey_sentera_id: $survey_sentera_id")
_FILE_OWNERS = ("$owners: [FileOwnerInput!]!", "owners: $owners")
_FEATURE_SET_OWNERS = ("$owners: [FeatureSetOwnerInput!]!", "owners: $owners")

FIELDS = Kind(
    "fields", "Field", "sync_fields", *_ORGANIZATION_SCOPE,
    ("name", "latitude", "longitude", ("organization", _REF)),
    "organization_sentera_id", "upsert_fields", "organization_sentera_id: ID!",
    "fields: [FieldImport!]!",
)  # fmt: skip
SURVEYS = Kind(
    "surveys", "Survey", "sync_surveys",
    "$field_sentera_id: ID!", "field_sentera_id: $field_sentera_id",
    ("name", "start_time", "end_time", "notes", ("field", _REF)),
    "field_sentera_id", "upsert_surveys", "field_sentera_id: ID!", "surveys: [SurveyImport!]!",
)  # fmt: skip
MOSAICS = Kind(
    "mosaics", "Mosaic", "sync_mosaics", *_SURVEY_SCOPE,
    ("name", "mosaic_type", "quality", "image_status", "captured_at",
     ("area", ("value", "unit")), "is_from_sentera_sensor", "message", "released",
     ("survey", _REF)),
    "survey_sentera_id", "upsert_mosaics", "survey_sentera_id: ID!", "mosaics: [MosaicImport!]!",
)  # fmt: skip
IMAGES = Kind(
    "images", "Image", "sync_images", *_SURVEY_SCOPE,
    ("filename", "latitude", "longitude", "altitude", "captured_at", "size", "checksum", "url",
     ("survey", _REF)),
    "survey_sentera_id", "upsert_images", "survey_sentera_id: ID!", "images: [ImageImport!]!",
)  # fmt: skip
COGS = Kind(
    "cogs", "Cog", "sync_cogs", *_SURVEY_SCOPE,
    ("status", "clipped", "error", "max_zoom", ("mosaic", _REF), ("survey", _REF)),
    "survey_sentera_id", "upsert_cogs", "mosaic_sentera_id: ID!", "cogs: [CogImport!]!",
)  # fmt: skip
FILES = Kind(
    "files", "File", "sync_files", *_FILE_OWNERS,
    ("filename", "download_filename", "file_type", "path", "size", "version", "checksum", "url",
     ("file_owner", _OWNER)),
    "file_owner_sentera_id", "upsert_files", "owner: FileOwnerInput!", "files: [FileImport!]!",
)  # fmt: skip
FEATURE_SETS = Kind(
    "feature_sets", "FeatureSet", "sync_feature_sets", *_FEATURE_SET_OWNERS,
    ("name", "type", "status", ("feature_set_owner", _OWNER)),
    "feature_set_owner_sentera_id", "upsert_feature_sets", "owner: FeatureSetOwnerInput!",
    "feature_sets: [FeatureSetImport!]!",
)  # fmt: skip
FLIGHT_TASKS = Kind(
    "flight_tasks", "FlightTask", "sync_flight_tasks",
    "$organization_sentera_id: ID!, $include_descendant_organizations: Boolean",
    "organization_sentera_id: $organization_sentera_id, "
    "include_descendant_organizations: $include_descendant_organizations",
    ("name", "notes", "status", ("organization", _REF), ("field", _REF), ("survey", _REF)),
    "organization_sentera_id", "upsert_flight_tasks", "organization_sentera_id: ID!",
    "flight_tasks: [FlightTaskImport!]!",
)  # fmt: skip

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (FIELDS, SURVEYS, MOSAICS, IMAGES, COGS, FILES, FEATURE_SETS, FLIGHT_TASKS)
}

ORGANIZATIONS_PAGE = 100
ORGANIZATIONS = """
query Organizations($page: Int!, $page_size: Int!) {
  organizations(pagination: {page: $page, page_size: $page_size}) {
    total_count
    results { sentera_id name parent_organization_id logos { sentera_id name } }
  }
}"""

ME = "query Me { me { sentera_id first_name last_name email } }"

CREATE_UPLOAD = """
mutation CreateUpload($filename: String!, $byte_size: BigInt!, $checksum: String!,
                      $content_type: String!) {
  upload: create_file_upload(filename: $filename, byte_size: $byte_size, checksum: $checksum,
                             content_type: $content_type) { id upload_url headers }
}"""

CREATE_MULTIPART_UPLOAD = """
mutation CreateMultipartUpload($filename: String!, $content_type: String!, $byte_size: BigInt,
                               $checksum: String) {
  upload: create_multipart_file_upload(filename: $filename, content_type: $content_type,
                                       byte_size: $byte_size, checksum: $checksum) {
    id s3_key upload_id
  }
}"""

PREPARE_PART = """
mutation PreparePart($part_number: Int!, $s3_key: String!, $upload_id: String!) {
  part: prepare_multipart_file_upload_part(part_number: $part_number, s3_key: $s3_key,
                                           upload_id: $upload_id) { url }
}"""

COMPLETE_MULTIPART_UPLOAD = """
mutation CompleteMultipartUpload($parts: [MultipartFileUploadPartInput!]!, $s3_key: String!,
                                 $upload_id: String!) {
  upload: complete_multipart_file_upload(parts: $parts, s3_key: $s3_key, upload_id: $upload_id) {
    id
  }
}"""
