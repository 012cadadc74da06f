"""Tiles of a stored COG over real HTTP, on each blob store and database: known colours,
transparency, WEBP, TileJSON, caching (ETag, 304), and who may fetch them (token, signed
link, another tenant, nobody)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import rasterio
from PIL import Image

from fieldsync.processing.tiles import render_tile, tile_info
from fieldsync.tokens import create_token
from tests.blob_support import BlobEnv
from tests.builder import build_world
from tests.cog_support import (
    BLUE,
    EAST,
    NORTH,
    RED,
    SOUTH,
    WEST,
    attach_cog,
    halves_cog,
    make_cog,
    put_bytes,
    set_cog_status,
    tile_at,
    write_uint16_geotiff,
)

MID_LAT = (SOUTH + NORTH) / 2
WEST_QUARTER = WEST + (EAST - WEST) / 4
EAST_QUARTER = EAST - (EAST - WEST) / 4


@pytest.fixture(scope="module")
def cog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return halves_cog(tmp_path_factory.mktemp("cog"))


@dataclass
class TileEnv:
    env: BlobEnv
    token: str
    cog: str
    blob_key: str

    def tile_url(self, z: int, x: int, y: int, ext: str = "png") -> str:
        return f"{self.env.base}/tiles/{self.cog}/{z}/{x}/{y}.{ext}"

    def get(self, url: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.env.server.http.get(url, headers=headers)


@pytest.fixture
def tiles(blob_env: BlobEnv, cog_file: Path) -> Iterator[TileEnv]:
    key = put_bytes(blob_env.ctx, cog_file.read_bytes(), blob_env.base)
    attach_cog(blob_env.engine, blob_env.world.cog, blob_env.world.mosaic_file, key)
    token = create_token(blob_env.engine, blob_env.world.user)
    yield TileEnv(blob_env, token, blob_env.world.cog, key)


def pixels(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGBA")


def colours(image: Image.Image) -> set[tuple[int, ...]]:
    return {tuple(colour) for _count, colour in image.getcolors(256 * 256) or []}  # type: ignore[arg-type]


def close_to(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


def test_tile_inside_each_half_has_its_colour(tiles: TileEnv) -> None:
    red = pixels(tiles.get(tiles.tile_url(*tile_at(WEST_QUARTER, MID_LAT, 17)), tiles.token))
    blue = pixels(tiles.get(tiles.tile_url(*tile_at(EAST_QUARTER, MID_LAT, 17)), tiles.token))
    assert red.size == (256, 256)
    assert colours(red) == {(*RED, 255)}
    assert colours(blue) == {(*BLUE, 255)}


def test_tile_over_the_edge_is_transparent_outside_the_cog(tiles: TileEnv) -> None:
    z, x, y = tile_at(WEST, MID_LAT, 16)  # straddles the COG's west edge
    image = pixels(tiles.get(tiles.tile_url(z, x, y), tiles.token))
    alpha = {colour[3] for colour in colours(image)}
    assert alpha == {0, 255}
    assert {colour for colour in colours(image) if colour[3] == 255} == {(*RED, 255)}


def test_webp_tile(tiles: TileEnv) -> None:
    response = tiles.get(
        tiles.tile_url(*tile_at(EAST_QUARTER, MID_LAT, 17), ext="webp"), tiles.token
    )
    assert response.headers["content-type"] == "image/webp"
    assert response.content[8:12] == b"WEBP"
    image = pixels(response)
    assert all(close_to(colour, (*BLUE, 255)) for colour in colours(image))


def test_tile_outside_the_cog_is_404(tiles: TileEnv) -> None:
    z, x, y = tile_at(WEST - 1.0, MID_LAT, 14)
    response = tiles.get(tiles.tile_url(z, x, y), tiles.token)
    assert response.status_code == 404
    assert error_code(response) == "TILE_OUTSIDE_BOUNDS"


def test_etag_and_if_none_match(tiles: TileEnv) -> None:
    url = tiles.tile_url(*tile_at(WEST_QUARTER, MID_LAT, 17))
    first = tiles.get(url, tiles.token)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=60"
    again = tiles.get(url, tiles.token, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = tiles.get(tiles.tile_url(*tile_at(WEST_QUARTER, MID_LAT, 17), ext="webp"), tiles.token)
    assert other.headers["etag"] != etag
    stale = tiles.get(url, tiles.token, **{"If-None-Match": '"0000"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a/0/0.png", "whole numbers"),
        ("3/8/0.png", "from 0 to 7"),
        ("3/0/-1.png", "from 0 to 7"),
        ("31/0/0.png", "zoom 31"),
        ("3/0/0.jpg", "use .png or .webp"),
    ],
)
def test_bad_tile_address_is_400(tiles: TileEnv, path: str, message: str) -> None:
    response = tiles.get(f"{tiles.env.base}/tiles/{tiles.cog}/{path}", tiles.token)
    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"
    assert message in response.json()["errors"][0]["message"]


def test_another_tenant_gets_404_like_a_missing_cog(tiles: TileEnv) -> None:
    other = build_world(tiles.env.engine)
    stranger = create_token(tiles.env.engine, other.user)
    z, x, y = tile_at(WEST_QUARTER, MID_LAT, 17)
    nowhere = other.cog.replace("_CG_", "_CG_missing_")
    hidden = tiles.get(tiles.tile_url(z, x, y), stranger)
    missing = tiles.get(f"{tiles.env.base}/tiles/{nowhere}/{z}/{x}/{y}.png", stranger)
    for response, cog in ((hidden, tiles.cog), (missing, nowhere)):
        assert response.status_code == 404
        error = response.json()["errors"][0]
        assert error["message"] == f"cog {cog!r} not found"
        assert error["extensions"]["code"] == "NOT_FOUND"
    json_hidden = tiles.get(f"{tiles.env.base}/tiles/{tiles.cog}/tilejson.json", stranger)
    assert json_hidden.status_code == 404
    assert tiles.get(tiles.tile_url(z, x, y), tiles.token).status_code == 200


def test_no_credentials_401_and_bad_token_401(tiles: TileEnv) -> None:
    url = tiles.tile_url(*tile_at(WEST_QUARTER, MID_LAT, 17))
    assert tiles.get(url).status_code == 401
    bad = tiles.get(url, "fs_not-a-token")
    assert bad.status_code == 401
    assert error_code(bad) == "UNAUTHENTICATED"


def test_cog_not_success_is_404_with_its_status(tiles: TileEnv) -> None:
    set_cog_status(tiles.env.engine, tiles.cog, "PROCESSING")
    response = tiles.get(tiles.tile_url(*tile_at(WEST_QUARTER, MID_LAT, 17)), tiles.token)
    assert response.status_code == 404
    assert "status is PROCESSING" in response.json()["errors"][0]["message"]


def _signed_template(tiles: TileEnv) -> str:
    """The tile URL template of a signed map link's first layer."""
    answer = tiles.env.server.post(
        "query($id: ID!) { survey(sentera_id: $id) { map_url } }",
        tiles.token,
        {"id": tiles.env.world.survey},
    )
    map_url = answer.json()["data"]["survey"]["map_url"]
    page = tiles.env.server.http.get(map_url)
    assert page.status_code == 200
    found = re.search(r'<script id="map-data" type="application/json">(.*?)</script>', page.text)
    assert found is not None
    return str(json.loads(found.group(1))["layers"][0]["url"])


def test_signed_link_fetches_tiles_without_a_token(tiles: TileEnv) -> None:
    template = _signed_template(tiles)
    z, x, y = tile_at(EAST_QUARTER, MID_LAT, 17)
    url = tiles.env.base + template.format(z=z, x=x, y=y)
    response = tiles.get(url)
    assert colours(pixels(response)) == {(*BLUE, 255)}
    max_age = int(response.headers["cache-control"].split("max-age=")[1])
    assert response.headers["cache-control"].startswith("private")
    assert 3500 < max_age <= 3600
    query = dict(parse_qsl(urlsplit(url).query))
    tampered = url.replace(query["expires"], str(int(query["expires"]) + 1))
    assert tiles.get(tampered).status_code == 403
    other_cog = url.replace(tiles.cog, build_world(tiles.env.engine).cog)
    assert tiles.get(other_cog).status_code == 403


def test_tilejson_by_token_and_by_signed_link(tiles: TileEnv) -> None:
    by_token = tiles.get(f"{tiles.env.base}/tiles/{tiles.cog}/tilejson.json", tiles.token)
    assert by_token.status_code == 200
    doc = by_token.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == [f"{tiles.env.base}/tiles/{tiles.cog}/{{z}}/{{x}}/{{y}}.png"]
    west, south, east, north = doc["bounds"]
    assert west <= WEST < EAST <= east and south <= SOUTH < NORTH <= north
    assert east - west < 0.05 and north - south < 0.05
    assert doc["minzoom"] <= doc["maxzoom"] == 16
    query = urlsplit(_signed_template(tiles)).query
    signed = tiles.get(f"{tiles.env.base}/tiles/{tiles.cog}/tilejson.json?{query}")
    assert signed.status_code == 200
    template = signed.json()["tiles"][0]
    assert template.endswith(f".png?{query}")
    z, x, y = tile_at(WEST_QUARTER, MID_LAT, 17)
    tile = tiles.get(template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y)))
    assert colours(pixels(tile)) == {(*RED, 255)}


def test_raster_location_reads_the_stored_bytes(tiles: TileEnv, cog_file: Path) -> None:
    """Local: the blob's file; S3: a presigned /vsicurl/ URL that GDAL reads in ranges."""
    where = tiles.env.ctx.store.raster_location(tiles.blob_key)
    if tiles.env.kind == "s3":
        assert where.path.startswith("/vsicurl/http")
    with (
        rasterio.Env(**where.gdal_options),
        rasterio.open(where.path) as stored,
        rasterio.open(cog_file) as original,
    ):
        assert stored.read().tobytes() == original.read().tobytes()


def test_sixteen_bit_data_is_stretched_to_its_min_and_max(tmp_path: Path) -> None:
    write_uint16_geotiff(tmp_path / "u16.tif")
    cog = str(make_cog(tmp_path / "u16.tif", tmp_path / "u16-cog.tif"))
    assert tile_info(cog).maxzoom == 16
    west = render_tile(cog, *tile_at(WEST_QUARTER, MID_LAT, 17), "png")
    east = render_tile(cog, *tile_at(EAST_QUARTER, MID_LAT, 17), "png")
    assert west is not None and east is not None
    west_image = Image.open(io.BytesIO(west)).convert("LA")
    east_image = Image.open(io.BytesIO(east)).convert("LA")
    assert {c for _n, c in west_image.getcolors() or []} == {(0, 255)}
    assert {c for _n, c in east_image.getcolors() or []} == {(255, 255)}
    assert render_tile(cog, 3, 0, 0, "png") is None
