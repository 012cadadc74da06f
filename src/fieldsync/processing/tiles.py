"""Rendering web-mercator tiles of a COG to PNG or WEBP, and its TileJSON facts.

Pure: given a GDAL-readable location (and the GDAL options to reach it), no HTTP and no SQL.
Transparency comes from the COG's mask (alpha band or nodata). 8-bit data is shown as is;
other data types are stretched per band from the COG's own min/max, read from its smallest
overview, so every tile of one COG uses the same stretch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import rasterio
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

TileFormat = Literal["png", "webp"]
_DRIVERS: dict[TileFormat, str] = {"png": "PNG", "webp": "WEBP"}
TILE_SIZE = 256
STATISTICS_SIZE = 256
"""The longest side of the overview the display stretch is computed from."""


@dataclass(frozen=True, slots=True)
class TileInfo:
    """What a TileJSON needs: bounds in WGS84 (west, south, east, north) and zoom range."""

    bounds: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int


def _display_bands(dataset: Any) -> tuple[int, ...]:
    """The first three bands that are not alpha (red, green, blue), or the first band."""
    colour = [
        index
        for index in range(1, int(dataset.count) + 1)
        if dataset.colorinterp[index - 1].name != "alpha"
    ]
    return tuple(colour[:3]) if len(colour) >= 3 else tuple(colour[:1])


def _stretch(reader: Reader, bands: tuple[int, ...]) -> list[tuple[float, float]] | None:
    """Per-band (min, max) for data that is not 8-bit, else None (shown unscaled)."""
    if reader.dataset is None or reader.dataset.dtypes[bands[0] - 1] == "uint8":
        return None
    stats = reader.statistics(indexes=bands, max_size=STATISTICS_SIZE)
    ranges = []
    for band in stats.values():
        low, high = float(band.min), float(band.max)
        ranges.append((low, high if high > low else low + 1.0))
    return ranges


def render_tile(
    location: str,
    z: int,
    x: int,
    y: int,
    image_format: TileFormat,
    gdal_options: Mapping[str, str] | None = None,
) -> bytes | None:
    """The tile z/x/y of the COG at `location` as PNG or WEBP bytes, or None when the tile
    lies wholly outside the COG's bounds."""
    with rasterio.Env(**dict(gdal_options or {})), Reader(location) as reader:
        bands = _display_bands(reader.dataset)
        try:
            image = reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=bands)
        except TileOutsideBounds:
            return None
        ranges = _stretch(reader, bands)
        if ranges is not None:
            image.rescale(in_range=ranges)
        rendered: bytes = image.render(img_format=_DRIVERS[image_format])
        return rendered


def tile_info(location: str, gdal_options: Mapping[str, str] | None = None) -> TileInfo:
    """The COG's bounds in WGS84 and the zoom levels it has data for."""
    with rasterio.Env(**dict(gdal_options or {})), Reader(location) as reader:
        west, south, east, north = reader.get_geographic_bounds(reader.tms.rasterio_geographic_crs)
        return TileInfo(
            (float(west), float(south), float(east), float(north)),
            int(reader.minzoom),
            int(reader.maxzoom),
        )
