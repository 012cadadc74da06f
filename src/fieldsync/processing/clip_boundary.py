"""The `clip_boundary` of an import: a GeoJSON Polygon or MultiPolygon in WGS84, checked up
front so a bad one is refused by the mutation rather than failing the COG later."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

POLYGON_TYPES = ("Polygon", "MultiPolygon")
MIN_RING_POSITIONS = 4


class InvalidClipBoundary(ValueError):
    """The value is not a polygon FieldSync can clip with; the message says what to fix."""


def parse_clip_boundary(value: Any) -> dict[str, Any]:
    """The geometry of a Polygon, a MultiPolygon, or a Feature of one (WGS84 longitude and
    latitude), as a plain GeoJSON geometry dict."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in POLYGON_TYPES:
        found = value.get("type") if isinstance(value, dict) else type(value).__name__
        raise InvalidClipBoundary(
            f"expected a GeoJSON Polygon or MultiPolygon (or a Feature of one), got {found!r}"
        )
    coordinates = value.get("coordinates")
    polygons = [coordinates] if value["type"] == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise InvalidClipBoundary(f"a {value['type']} needs a non-empty coordinates list")
    for polygon in polygons:
        _check_polygon(polygon)
    return {"type": value["type"], "coordinates": coordinates}


def _check_polygon(polygon: Any) -> None:
    if not isinstance(polygon, list) or not polygon:
        raise InvalidClipBoundary("a polygon is a non-empty list of linear rings")
    for ring in polygon:
        _check_ring(ring)


def _check_ring(ring: Any) -> None:
    if not isinstance(ring, list) or len(ring) < MIN_RING_POSITIONS:
        raise InvalidClipBoundary(
            f"a linear ring needs at least {MIN_RING_POSITIONS} positions, the last equal to "
            "the first"
        )
    positions = [_position(point) for point in ring]
    if positions[0] != positions[-1]:
        raise InvalidClipBoundary("a linear ring must be closed: repeat its first position last")


def _position(point: Any) -> tuple[float, float]:
    if (
        not isinstance(point, Sequence)
        or isinstance(point, str)
        or len(point) < 2
        or not all(_is_number(c) for c in point[:2])
    ):
        raise InvalidClipBoundary(f"a position is [longitude, latitude]; got {point!r}"[:200])
    longitude, latitude = float(point[0]), float(point[1])
    if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
        raise InvalidClipBoundary(
            f"position [{longitude}, {latitude}] is not WGS84 longitude/latitude: clip_boundary "
            "must be in EPSG:4326"
        )
    return longitude, latitude


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
