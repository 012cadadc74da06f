"""Test COGs of known content, stored as a world's COG: GeoTIFFs written with rasterio,
made COGs with rio-cogeo, their bytes PUT to the blob store through its own upload links,
and the files and cog_jobs rows pointing at them."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import morecantile
import numpy as np
import rasterio
from rasterio.transform import from_bounds
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from sqlalchemy import Engine, insert, select, update

from fieldsync.blobs.context import BlobContext
from fieldsync.storage import tables as t
from fieldsync.storage.database import write_transaction

WEST, SOUTH, EAST, NORTH = 10.0, 50.0, 10.01, 50.01
"""The test COG's extent (WGS84): its west half is red, its east half blue."""
RED = (255, 0, 0)
BLUE = (0, 0, 255)
SIZE = 512
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


@dataclass(frozen=True)
class StoredCog:
    blob_key: str
    path: Path


def write_halves_geotiff(path: Path) -> None:
    """An RGBA GeoTIFF in EPSG:4326: west half red, east half blue, fully opaque."""
    data = np.zeros((4, SIZE, SIZE), dtype="uint8")
    half = SIZE // 2
    data[0, :, :half] = 255
    data[2, :, half:] = 255
    data[3] = 255
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 4,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_bounds(WEST, SOUTH, EAST, NORTH, SIZE, SIZE),
        "photometric": "RGB",
        "alpha": "YES",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def write_uint16_geotiff(path: Path) -> None:
    """One 16-bit band: 1000 in the west half, 5000 in the east (nodata 0 nowhere)."""
    data = np.full((1, SIZE, SIZE), 1000, dtype="uint16")
    data[0, :, SIZE // 2 :] = 5000
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:4326",
        "nodata": 0,
        "transform": from_bounds(WEST, SOUTH, EAST, NORTH, SIZE, SIZE),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def make_cog(source: Path, target: Path) -> Path:
    """`source` as a web-optimized COG (deflate, internal overviews)."""
    profile = cog_profiles.get("deflate")  # type: ignore[no-untyped-call]
    cog_translate(source, target, profile, tms=WEB_MERCATOR, quiet=True)
    return target


def halves_cog(directory: Path) -> Path:
    write_halves_geotiff(directory / "halves.tif")
    return make_cog(directory / "halves.tif", directory / "halves-cog.tif")


def put_bytes(ctx: BlobContext, data: bytes, base_url: str) -> str:
    """PUT `data` to the store through its own upload link; its content key."""
    md5 = hashlib.md5(data)
    checksum = base64.b64encode(md5.digest()).decode()
    key = f"{md5.hexdigest()}-{len(data)}"
    target = ctx.store.presign_put(key, len(data), checksum, "image/tiff", base_url)
    response = httpx.put(target.url, content=data, headers=target.headers)
    assert response.status_code == 200, response.text
    return key


def attach_cog(engine: Engine, cog: str, mosaic_file: str, blob_key: str) -> None:
    """Make `blob_key` the bytes of the file `mosaic_file` and record a done job of `cog`
    that produced that file."""
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        file_id = conn.execute(
            update(t.files)
            .where(t.files.c.sentera_id == mosaic_file)
            .values(blob_key=blob_key, file_type="COG", content_type="image/tiff")
            .returning(t.files.c.id)
        ).scalar_one()
        cog_id, actor = conn.execute(
            select(t.cogs.c.id, t.cogs.c.created_by_id).where(t.cogs.c.sentera_id == cog)
        ).one()
        conn.execute(
            insert(t.cog_jobs).values(
                cog_id=cog_id,
                source_file_id=file_id,
                mosaic_type="RGB",
                actor_id=actor,
                state="done",
                attempts=1,
                max_attempts=3,
                run_after=now,
                output_file_id=file_id,
                created_at=now,
                updated_at=now,
                finished_at=now,
            )
        )


def set_cog_status(engine: Engine, cog: str, status: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(t.cogs).where(t.cogs.c.sentera_id == cog).values(status=status))


def place_images(engine: Engine, survey: str, lon: float, lat: float) -> None:
    """Move the survey's images to one position (inside the test COG)."""
    with write_transaction(engine) as conn:
        survey_id = conn.execute(
            select(t.surveys.c.id).where(t.surveys.c.sentera_id == survey)
        ).scalar_one()
        conn.execute(
            update(t.images)
            .where(t.images.c.survey_id == survey_id)
            .values(latitude=lat, longitude=lon)
        )


def tile_at(lon: float, lat: float, zoom: int) -> tuple[int, int, int]:
    tile = WEB_MERCATOR.tile(lon, lat, zoom)
    return tile.z, tile.x, tile.y
