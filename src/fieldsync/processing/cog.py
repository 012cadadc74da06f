"""Making a cloud-optimized GeoTIFF from a mosaic, with rasterio and rio-cogeo on GDAL.

The COG is rio-cogeo's web-optimized one: warped to Web Mercator on the WebMercatorQuad grid
at the zoom level just finer than the source's pixels (`max_zoom`), 512-pixel internal tiles,
internal overviews down to one tile. rio-cogeo copies window by window through a WarpedVRT into
a temporary file on disk (never the whole raster in memory) and GDAL's cache is bounded, so a
mosaic larger than RAM is processed in bounded memory.

Compression follows the data: three 8-bit bands are imagery a web map draws, so JPEG (YCbCr,
small) with alpha or nodata kept as an internal mask; every other 8-bit raster, and 16/32-bit
integers, are DEFLATE with the horizontal predictor; floating point is DEFLATE with the
floating-point predictor. Both are lossless: reflectance and index values survive exactly.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import morecantile
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds, transform_geom
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from fieldsync.errors import FieldSyncError

log = logging.getLogger("fieldsync.processing")

GDAL_CACHE_BYTES = 256 * 1024 * 1024
UNSUPPORTED_DTYPES = ("complex_int16", "complex64", "complex128", "cint16", "cint32")
SUPPORTED_DTYPES = "uint8, int8, uint16, int16, uint32, int32, float32 or float64"
RGB_TYPES = ("RGB",)
MULTIBAND_TYPES = ("MULTISPECTRAL",)
GRAYSCALE_ERROR = (
    "Failed to ungrayscale input image: Expected number of bands to be in (2, 4), but found {}"
)
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
CLIP_NODATA_FLOAT = float("nan")
"""Outside a clip boundary, a source without nodata or alpha gets nodata: NaN for floating
point, 0 for 16/32-bit integers (8-bit gets a mask)."""

Progress = Callable[[float], None]


class CogInputError(FieldSyncError):
    """The source cannot be made into a COG; the message is shown to the user as the COG's
    `error`, so it says what is wrong and what to do."""

    code = "COG_INPUT"


@dataclass(frozen=True, slots=True)
class CogResult:
    max_zoom: int
    min_zoom: int
    clipped: bool
    bounds: tuple[float, float, float, float]
    """WGS84 west, south, east, north."""
    band_count: int
    dtype: str


def create_cog(
    source: Path,
    destination: Path,
    *,
    mosaic_type: str,
    clip_boundary: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> CogResult:
    """Write the COG of `source` to `destination` (only on success); CogInputError when the
    source cannot be one."""
    partial = destination.with_name(destination.name + ".partial")
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), ExitStack() as stack:
            dataset = stack.enter_context(_open(source))
            _check(dataset, mosaic_type)
            readable = dataset
            if clip_boundary is not None:
                readable = stack.enter_context(_clipped(dataset, clip_boundary))
            _translate(readable, partial, _profile(dataset), progress)
        result = _describe(partial, clip_boundary is not None)
        os.replace(partial, destination)
        return result
    except RasterioError as exc:
        raise CogInputError(_unreadable(exc)) from None
    finally:
        partial.unlink(missing_ok=True)


def _open(source: Path) -> Any:
    try:
        with warnings.catch_warnings():  # no georeference is reported by _check, clearly
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(source)
    except RasterioError:
        raise CogInputError(
            "The file is not a GeoTIFF FieldSync can read (not a TIFF, or corrupt): export "
            "the mosaic as a GeoTIFF and import it again"
        ) from None


def _unreadable(exc: RasterioError) -> str:
    detail = re.sub(r"\s+", " ", str(exc))[:160]
    return (
        "The GeoTIFF could not be read to the end (truncated or corrupt: "
        f"{detail}): upload the file again"
    )


def _check(dataset: Any, mosaic_type: str) -> None:
    if dataset.crs is None or dataset.transform.is_identity:
        raise CogInputError(
            "The GeoTIFF has no georeference (no coordinate reference system or geotransform): "
            "export the mosaic as a GeoTIFF with its CRS"
        )
    dtype = dataset.dtypes[0]
    if dtype in UNSUPPORTED_DTYPES or dtype.startswith("complex"):
        raise CogInputError(
            f"The GeoTIFF holds {dtype} data, which FieldSync does not support: export it as "
            f"{SUPPORTED_DTYPES}"
        )
    _check_bands(_visible_band_count(dataset), dataset.count, mosaic_type)


def _visible_band_count(dataset: Any) -> int:
    alpha = rasterio.enums.ColorInterp.alpha
    return sum(1 for interp in dataset.colorinterp if interp is not alpha)


def _check_bands(visible: int, count: int, mosaic_type: str) -> None:
    if mosaic_type in RGB_TYPES:
        if count == 1:
            raise CogInputError(GRAYSCALE_ERROR.format(count))
        if visible != 3:
            raise CogInputError(
                f"An RGB mosaic needs 3 colour bands (and perhaps an alpha band), but the "
                f"GeoTIFF has {count} bands, {visible} of them colour: import it with the "
                "mosaic_type that matches its bands (e.g. MULTISPECTRAL)"
            )
    elif mosaic_type in MULTIBAND_TYPES and count < 2:
        raise CogInputError(
            f"A MULTISPECTRAL mosaic needs at least 2 bands, but the GeoTIFF has {count}: "
            "import a single band as an index type such as NDVI"
        )


def _profile(dataset: Any) -> dict[str, Any]:
    """Creation options by data type (see the module docstring)."""
    dtype = dataset.dtypes[0]
    if dtype == "uint8" and _visible_band_count(dataset) == 3:
        profile = dict(cog_profiles.get("jpeg"))  # type: ignore[no-untyped-call]
        profile["jpeg_quality"] = 90  # GDAL GTiff JPEG_QUALITY (default 75)
        return profile
    profile = dict(cog_profiles.get("deflate"))  # type: ignore[no-untyped-call]
    profile["predictor"] = 3 if dtype.startswith("float") else 2
    return profile


def _translate(
    readable: Any, destination: Path, profile: dict[str, Any], progress: Progress | None
) -> None:
    # An 8-bit alpha band becomes the internal mask (a COG's bands are the data bands); so
    # does nodata under JPEG, whose lossy values cannot carry it. GDAL reads no mask from a
    # 16-bit or float alpha band, so there the alpha band stays a band.
    eight_bit = readable.dtypes[0] == "uint8"
    has_alpha = _visible_band_count(readable) != readable.count
    masked = eight_bit and (
        has_alpha or (profile["compress"] == "JPEG" and readable.nodata is not None)
    )
    indexes = None
    if masked and has_alpha:
        alpha = rasterio.enums.ColorInterp.alpha
        pairs = zip(readable.indexes, readable.colorinterp, strict=True)
        indexes = [index for index, interp in pairs if interp is not alpha]
    cog_translate(
        readable,
        str(destination),
        profile,
        indexes=indexes,
        add_mask=masked,
        tms=WEB_MERCATOR,
        in_memory=False,
        quiet=False,
        progress_out=cast(TextIO, _ProgressLog(progress)),
        config={"GDAL_CACHEMAX": GDAL_CACHE_BYTES, "GDAL_TIFF_INTERNAL_MASK": True},
    )


class _ProgressLog:
    """A text stream for rio-cogeo's progress bar: logs it every 10 % and reports it."""

    _PERCENT = re.compile(r"(\d{1,3})%")

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._logged = -10

    def write(self, text: str) -> int:
        for match in self._PERCENT.finditer(text):
            percent = int(match.group(1))
            if self._progress is not None:
                self._progress(percent / 100)
            if percent >= self._logged + 10:
                self._logged = percent - percent % 10
                log.info("COG: %s %% of the windows copied", percent)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        """True, so that click's progress bar writes every step and not just its label."""
        return True


def _describe(cog: Path, clipped: bool) -> CogResult:
    with rasterio.open(cog) as dataset:
        resolution = max(abs(dataset.res[0]), abs(dataset.res[1]))
        max_zoom = WEB_MERCATOR.zoom_for_res(resolution)
        overviews = len(dataset.overviews(1))
        west, south, east, north = transform_bounds(dataset.crs, "EPSG:4326", *dataset.bounds)
        return CogResult(
            max_zoom=max_zoom,
            min_zoom=max(0, max_zoom - overviews),
            clipped=clipped,
            bounds=(west, south, east, north),
            band_count=dataset.count,
            dtype=dataset.dtypes[0],
        )


def _clipped(dataset: Any, boundary: Mapping[str, Any]) -> Any:
    """The source seen through a warp whose cutline is the boundary: pixels outside it become
    nodata (or transparent). CogInputError when the boundary misses the raster."""
    geometry = transform_geom("EPSG:4326", dataset.crs, dict(boundary))
    _check_overlap(dataset, geometry)
    inverse = ~dataset.transform
    pixel_polygons = [
        [[inverse * (x, y) for x, y, *_ in ring] for ring in polygon]
        for polygon in _polygons(geometry)
    ]
    options: dict[str, Any] = {"cutline": _wkt(pixel_polygons)}
    if dataset.nodata is None and _visible_band_count(dataset) == dataset.count:
        if dataset.dtypes[0] == "uint8":
            options["add_alpha"] = True  # becomes the mask
        else:  # no mask from a 16-bit alpha (see _translate): outside becomes nodata
            options["nodata"] = CLIP_NODATA_FLOAT if "float" in dataset.dtypes[0] else 0
    return WarpedVRT(dataset, **options)


def _polygons(geometry: Mapping[str, Any]) -> list[Any]:
    coordinates = geometry["coordinates"]
    return [coordinates] if geometry["type"] == "Polygon" else list(coordinates)


def _check_overlap(dataset: Any, geometry: Mapping[str, Any]) -> None:
    xs = [p[0] for polygon in _polygons(geometry) for ring in polygon for p in ring]
    ys = [p[1] for polygon in _polygons(geometry) for ring in polygon for p in ring]
    left, bottom, right, top = dataset.bounds
    if max(xs) <= left or min(xs) >= right or max(ys) <= bottom or min(ys) >= top:
        raise CogInputError(
            "clip_boundary does not overlap the mosaic: check that it is in WGS84 "
            "longitude/latitude and covers the surveyed area"
        )


def _wkt(polygons: list[list[list[tuple[float, float]]]]) -> str:
    def ring(points: list[tuple[float, float]]) -> str:
        return "(" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in points) + ")"

    parts = ["(" + ", ".join(ring(r) for r in polygon) + ")" for polygon in polygons]
    return "MULTIPOLYGON (" + ", ".join(parts) + ")"
