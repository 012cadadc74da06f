"""The enumerations of the changeset format and the GraphQL schema."""

from __future__ import annotations

COG_STATUS = ("PENDING", "PROCESSING", "SUCCESS", "FAIL")
MOSAIC_TYPE = (
    "RGB",
    "MULTISPECTRAL",
    "NDVI",
    "NDRE",
    "THERMAL",
    "ELEVATION",
    "WEED_DETECTION",
    "CUSTOM_INDEXED",
)
MOSAIC_QUALITY = ("FULL", "PREVIEW")
MOSAIC_IMAGE_STATUS = ("AVAILABLE", "PROCESSING", "FAILED")
AREA_UNIT = ("ACRE", "HECTARE", "SQUARE_METER", "SQUARE_FOOT")
FILE_OWNER_TYPE = ("SURVEY", "MOSAIC", "FIELD", "FEATURE_SET", "LOGO")
FILE_TYPE = (
    "DOCUMENT",
    "FLIGHT_LOG",
    "UAV_METADATA",
    "IMAGE",
    "MOSAIC",
    "COG",
    "GEOJSON",
    "SHAPEFILE",
    "OTHER",
)
TASK_STATUS = (
    "OPEN",
    "IN_PROGRESS",
    "WAITING_FOR_UPLOAD",
    "FLIGHT_COMPLETED",
    "COMPLETED",
    "FAILED",
    "CANCELED",
)
FEATURE_SET_TYPE = (
    "FLIGHT_LOG",
    "FLIGHT_PLAN",
    "FLIGHT_TASK",
    "GROUND_CONTROL_POINTS",
    "GROUND_SCOUTING",
    "MF_PLANT_COUNT",
    "PLOT_LAYOUT",
    "POINT_PERCENT",
    "SPRAYER_OFFSET",
    "SV_PLANT_COUNT",
    "TASSEL_COUNT",
    "UNKNOWN",
    "WEEDS_GROUND_TRUTH",
)
FEATURE_SET_STATUS = ("PROCESSING", "SUCCESS", "FAIL", "NO_CONTENT")
FEATURE_SET_OWNER_TYPE = ("SURVEY", "FIELD", "ORGANIZATION")

# A member's role in an organization (and its descendants); each includes the ones before it.
ROLES = ("viewer", "editor", "admin")
WRITE_ROLES = ("editor", "admin")
DEFAULT_ROLE = "editor"
