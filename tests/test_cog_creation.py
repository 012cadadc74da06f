"""create_cog end to end on real GeoTIFFs through GDAL: every way to a valid COG and every way
to a clear CogInputError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform, transform_bounds
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from fieldsync.processing.clip_boundary import InvalidClipBoundary, parse_clip_boundary
from fieldsync.processing.cog import CogInputError, CogResult, create_cog
from tests.geotiffs import truncate_file, write_garbage, write_geotiff

SAMPLES = [(100, 100), (200, 180), (300, 230), (50, 470), (400, 300)]  # (row, col): no wrap near


def _cog_values(cog: Path, source: Path, row: int, col: int) -> tuple[list[float], list[float]]:
    """The source's values at a pixel centre and the COG's values at the same place."""
    with rasterio.open(source) as src, rasterio.open(cog) as dst:
        x, y = src.transform @ (col + 0.5, row + 0.5)
        xs, ys = transform(src.crs, dst.crs, [x], [y])
        dst_row, dst_col = dst.index(xs[0], ys[0])
        window = Window(dst_col, dst_row, 1, 1)
        expected = src.read(window=Window(col, row, 1, 1))[:, 0, 0].tolist()
        found = dst.read(window=window)[:, 0, 0].tolist()
        return expected[: len(found)], found


def _assert_valid_cog(cog: Path, result: CogResult) -> None:
    valid, errors, _ = cog_validate(str(cog), quiet=True)
    assert valid, errors
    with rasterio.open(cog) as dataset:
        assert dataset.crs.to_epsg() == 3857
        assert dataset.overviews(1)
        assert dataset.block_shapes[0] in ((256, 256), (512, 512))
        assert (dataset.count, dataset.dtypes[0]) == (result.band_count, result.dtype)
    assert result.min_zoom < result.max_zoom


def _assert_pixels(cog: Path, source: Path, tolerance: float) -> None:
    for row, col in SAMPLES:
        expected, found = _cog_values(cog, source, row, col)
        assert np.allclose(expected, found, atol=tolerance), (row, col, expected, found)


@pytest.mark.parametrize(
    ("options", "mosaic_type", "tolerance"),
    [
        ({}, "RGB", 12),  # JPEG: lossy, a nearest-neighbour step of the gradient at most
        ({"alpha": True}, "RGB", 12),
        ({"bands": 5, "dtype": "uint16"}, "MULTISPECTRAL", 4),  # DEFLATE: exact but resampling
        ({"bands": 1, "dtype": "float32", "nodata": -9999.0}, "NDVI", 0.004),
        ({"crs": "EPSG:4326"}, "RGB", 12),
    ],
    ids=["rgb", "rgba", "multispectral-uint16", "ndvi-float32", "wgs84-source"],
)
def test_valid_cog_with_source_pixels(
    tmp_path: Path, options: dict[str, Any], mosaic_type: str, tolerance: float
) -> None:
    source = write_geotiff(tmp_path / "m.tif", **options)
    destination = tmp_path / "m.cog.tif"
    fractions: list[float] = []
    result = create_cog(source, destination, mosaic_type=mosaic_type, progress=fractions.append)
    _assert_valid_cog(destination, result)
    _assert_pixels(destination, source, tolerance)
    assert not result.clipped and result.max_zoom >= 20  # 5 cm a pixel
    assert fractions and fractions[-1] == 1.0
    with rasterio.open(source) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert result.bounds[0] <= west + 1e-5 and result.bounds[2] >= east - 1e-5
    assert result.bounds[1] <= south + 1e-5 and result.bounds[3] >= north - 1e-5
    assert -94 < result.bounds[0] < -93 and 41 < result.bounds[1] < 43  # Iowa


def test_alpha_and_nodata_survive(tmp_path: Path) -> None:
    rgba = write_geotiff(tmp_path / "rgba.tif", alpha=True)
    create_cog(rgba, tmp_path / "rgba.cog.tif", mosaic_type="RGB")
    with rasterio.open(rgba) as src, rasterio.open(tmp_path / "rgba.cog.tif") as cog:
        x, y = transform(src.crs, cog.crs, *[[v] for v in src.transform @ (10.5, 200.5)])
        row, col = cog.index(x[0], y[0])
        assert cog.dataset_mask(window=Window(col, row, 1, 1))[0, 0] == 0
        x, y = transform(src.crs, cog.crs, *[[v] for v in src.transform @ (300.5, 200.5)])
        row, col = cog.index(x[0], y[0])
        assert cog.dataset_mask(window=Window(col, row, 1, 1))[0, 0] == 255
    ndvi = write_geotiff(tmp_path / "ndvi.tif", bands=1, dtype="float32", nodata=-9999.0)
    create_cog(ndvi, tmp_path / "ndvi.cog.tif", mosaic_type="NDVI")
    with rasterio.open(tmp_path / "ndvi.cog.tif") as cog:
        assert cog.nodata == -9999.0


def test_clip_boundary_makes_outside_pixels_transparent(tmp_path: Path) -> None:
    source = write_geotiff(tmp_path / "m.tif")
    with rasterio.open(source) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    middle = (west + east) / 2
    pad = 1e-4  # ~10 m: a boundary drawn around the field, not a degree-wide chord
    ring = [[middle, south - pad], [east + pad, south - pad], [east + pad, north + pad]]
    ring.append([middle, north + pad])
    boundary = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }
    destination = tmp_path / "clipped.tif"
    result = create_cog(
        source, destination, mosaic_type="RGB", clip_boundary=parse_clip_boundary(boundary)
    )
    assert result.clipped
    _assert_valid_cog(destination, result)
    with rasterio.open(source) as src, rasterio.open(destination) as cog:
        for src_col, visible in ((60, 0), (450, 255)):
            x, y = transform(src.crs, cog.crs, *[[v] for v in src.transform @ (src_col, 256)])
            row, col = cog.index(x[0], y[0])
            assert cog.dataset_mask(window=Window(col, row, 1, 1))[0, 0] == visible
    expected, found = _cog_values(destination, source, 256, 450)
    assert np.allclose(expected, found, atol=12)


def test_clip_boundary_outside_the_mosaic_is_refused(tmp_path: Path) -> None:
    source = write_geotiff(tmp_path / "m.tif")
    ring = [[10.0, 50.0], [10.1, 50.0], [10.1, 50.1], [10.0, 50.1], [10.0, 50.0]]
    destination = tmp_path / "out.tif"
    with pytest.raises(CogInputError, match="does not overlap the mosaic"):
        create_cog(
            source,
            destination,
            mosaic_type="RGB",
            clip_boundary={"type": "Polygon", "coordinates": [ring]},
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]


@pytest.mark.parametrize(
    ("make", "mosaic_type", "message"),
    [
        (
            lambda p: write_geotiff(p, bands=1),
            "RGB",
            "^Failed to ungrayscale input image: Expected number of bands to be in \\(2, 4\\), "
            "but found 1$",
        ),
        (lambda p: write_geotiff(p, bands=5), "RGB", "RGB mosaic needs 3 colour bands"),
        (lambda p: write_geotiff(p, bands=1), "MULTISPECTRAL", "at least 2 bands"),
        (lambda p: write_geotiff(p, crs=None), "NDVI", "no georeference.*with its CRS"),
        (lambda p: write_garbage(p), "RGB", "not a TIFF, or corrupt"),
        (
            lambda p: truncate_file(write_geotiff(p, width=1024, height=1024), 0.4),
            "RGB",
            "truncated or corrupt|not a TIFF, or corrupt",
        ),
        (
            lambda p: write_geotiff(p, bands=1, dtype="complex64"),
            "NDVI",
            "complex64 data.*uint8, int8, uint16",
        ),
    ],
    ids=[
        "rgb-one-band",
        "rgb-five-bands",
        "ms-one-band",
        "no-crs",
        "garbage",
        "truncated",
        "complex",
    ],
)
def test_unusable_source_is_a_clear_error(
    tmp_path: Path, make: Any, mosaic_type: str, message: str
) -> None:
    source = make(tmp_path / "m.tif")
    with pytest.raises(CogInputError, match=message):
        create_cog(source, tmp_path / "out.tif", mosaic_type=mosaic_type)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "closed"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [500000, 0], [1, 1], [0, 0]]]},
            "EPSG:4326",
        ),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "got 'str'"),
    ],
)
def test_bad_clip_boundary_is_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidClipBoundary, match=message):
        parse_clip_boundary(value)
