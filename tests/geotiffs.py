"""GeoTIFFs the processing tests make: deterministic pixels a test can predict, at a plausible
place (Iowa farmland, UTM zone 15N, 5 cm a pixel by default), and broken files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

UTM_15N = "EPSG:32615"
ORIGIN = (432_000.0, 4_650_000.0)  # near Ames, Iowa
PIXEL_METRES = 0.05


def default_transform(crs: str | None, pixel: float = PIXEL_METRES) -> Affine:
    if crs == "EPSG:4326":
        degrees: Affine = from_origin(-93.82, 41.99, pixel / 111_000, pixel / 111_000)
        return degrees
    metres: Affine = from_origin(*ORIGIN, pixel, pixel)
    return metres


PATTERNS = ("gradient", "constant")


def pixels(
    bands: int, height: int, width: int, dtype: str, kind: str = "gradient"
) -> np.ndarray[Any, Any]:
    """With "gradient", band b at (row, col) holds (col + 2*row + 40*b) modulo the type's range
    (a float band holds that over 1000, like an index); with "constant", band b holds
    100 + 40*b everywhere (over 1000 for floats). Either way any pixel's value is known."""
    if kind not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {kind!r}")
    rows, cols = np.mgrid[0:height, 0:width]
    if kind == "constant":
        rows, cols = np.full_like(rows, 50), np.zeros_like(cols)
    stack = np.stack([(cols + 2 * rows + 40 * b) for b in range(bands)])
    if np.dtype(dtype).kind in "fc":
        return (stack % 1000 / 1000).astype(dtype)
    top = min(int(np.iinfo(dtype).max), 60_000)
    return (stack % top).astype(dtype)


def write_geotiff(
    path: Path,
    *,
    width: int = 512,
    height: int = 512,
    bands: int = 3,
    dtype: str = "uint8",
    crs: str | None = UTM_15N,
    transform: Affine | None = None,
    nodata: float | None = None,
    alpha: bool = False,
    pattern: str = "gradient",
) -> Path:
    """A tiled GeoTIFF of `pixels` in the given `pattern`; with `alpha`, one more band
    (opaque but for the left tenth of the columns); with `crs=None`, no georeference."""
    data = pixels(bands, height, width, dtype, pattern)
    count = bands + (1 if alpha else 0)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    if crs is not None:
        profile |= {"crs": crs, "transform": transform or default_transform(crs)}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data, indexes=list(range(1, bands + 1)))
        if alpha:
            mask = np.full((height, width), np.iinfo(dtype).max, dtype=dtype)
            mask[:, : width // 10] = 0
            dataset.write(mask, count)
            interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue][:bands]
            dataset.colorinterp = [*interp, ColorInterp.alpha]
    return path


def truncate_file(path: Path, keep_fraction: float) -> Path:
    """Cut the file to its first `keep_fraction` of bytes, as an interrupted copy leaves it."""
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep_fraction)])
    return path


def write_garbage(path: Path, size: int = 20_000) -> Path:
    path.write_bytes(bytes((i * 7919) % 251 for i in range(size)))
    return path
