"""GeoJSON of a mirror: images as points, fields as points (where they have a location)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fieldsync.client.mirror import Mirror

_IMAGE_PROPERTIES = (
    "sentera_id", "filename", "captured_at", "altitude", "survey_sentera_id", "local_path",
)  # fmt: skip
_FIELD_PROPERTIES = ("sentera_id", "name", "organization_sentera_id")


def feature_collection(mirror: Mirror) -> dict[str, Any]:
    features = [
        _point("image", row, _IMAGE_PROPERTIES)
        for row in mirror.rows("images", "latitude IS NOT NULL AND longitude IS NOT NULL")
    ]
    features += [
        _point("field", row, _FIELD_PROPERTIES)
        for row in mirror.rows("fields", "latitude IS NOT NULL AND longitude IS NOT NULL")
    ]
    return {"type": "FeatureCollection", "features": features}


def _point(kind: str, row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]},
        "properties": {"type": kind, **{name: row[name] for name in names}},
    }


def write_geojson(mirror: Mirror, out: Path) -> int:
    """Write the collection to `out` (whole or not at all); the number of features."""
    collection = feature_collection(mirror)
    partial = out.with_name(out.name + ".tmp")
    partial.write_text(json.dumps(collection), encoding="utf-8")
    os.replace(partial, out)
    return len(collection["features"])
