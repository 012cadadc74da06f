"""HTTP for COG tiles, their TileJSON, and a survey's map page.

GET /tiles/{cog}/{z}/{x}/{y}.png|.webp   200 image, 304 (If-None-Match), 400 bad z/x/y,
                                         401 no credentials, 403 bad link, 404 missing,
                                         unreadable, not SUCCESS or outside the COG
GET /tiles/{cog}/tilejson.json           TileJSON 3.0.0 (tile URLs signed when the request
                                         was)
GET /map/{survey}                        an HTML map of the survey's COGs and images
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fieldsync.api.execution import error_body
from fieldsync.api.tile_access import (
    Grant,
    Refused,
    grant_of,
    located,
    not_found,
    scope_path,
    signed_query,
)
from fieldsync.blobs.context import BlobContext
from fieldsync.blobs.store import RasterLocation
from fieldsync.ids import TypeCode
from fieldsync.processing.tiles import TileFormat, TileInfo, render_tile, tile_info
from fieldsync.storage.tiles import (
    CogSource,
    cog_source,
    survey_cog_sources,
    survey_image_points,
)

MAX_ZOOM = 30
MEDIA_TYPES: dict[str, TileFormat] = {"png": "png", "webp": "webp"}
LEAFLET_PATH = "/map/static/leaflet"
MAP_HTML = Path(__file__).with_name("map.html").read_text(encoding="utf-8")
Blobs = Callable[[], BlobContext]


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_body(message, code), status_code=status)


def parse_tile(z: str, x: str, y: str, extension: str) -> tuple[int, int, int, TileFormat]:
    """Integers z (0..30), x and y (0..2^z-1) and the format; else a clear 400."""
    if extension not in MEDIA_TYPES:
        raise Refused(400, f"tile format {extension!r}: use .png or .webp", "BAD_REQUEST")
    try:
        zoom, column, row = int(z), int(x), int(y)
    except ValueError:
        raise Refused(
            400, "z, x and y must be whole numbers: /tiles/COG/z/x/y.png", "BAD_REQUEST"
        ) from None
    if not 0 <= zoom <= MAX_ZOOM:
        raise Refused(400, f"zoom {zoom} is not from 0 to {MAX_ZOOM}", "BAD_REQUEST")
    last = 2**zoom - 1
    if not (0 <= column <= last and 0 <= row <= last):
        raise Refused(400, f"at zoom {zoom}, x and y must be from 0 to {last}", "BAD_REQUEST")
    return zoom, column, row, MEDIA_TYPES[extension]


def _ready_cog(engine: Engine, grant: Grant, cog_sentera_id: str) -> CogSource:
    """The readable COG's source with stored bytes; 404 when missing, unreadable or not
    made yet (the same answer, so nothing leaks)."""
    with engine.connect() as conn:
        if located(conn, grant, TypeCode.COG, cog_sentera_id) is None:
            raise not_found("cog", cog_sentera_id)
        source = cog_source(conn, cog_sentera_id)
    if source is None:
        raise not_found("cog", cog_sentera_id)
    if source.status != "SUCCESS" or source.blob_key is None:
        raise Refused(
            404,
            f"cog {cog_sentera_id!r} has no tiles: its status is {source.status} "
            "(tiles are served once it is SUCCESS)",
            "NOT_FOUND",
        )
    return source


def _etag(blob_key: str, z: int, x: int, y: int, image_format: str) -> str:
    digest = hashlib.sha256(f"{blob_key}/{z}/{x}/{y}.{image_format}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def _matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return etag in [tag.strip() for tag in given.split(",")] or given.strip() == "*"


async def get_tile(request: Request, engine: Engine, blobs: Blobs) -> Response:
    params = request.path_params
    z, x, y, image_format = parse_tile(params["z"], params["x"], params["y"], params["format"])
    cog = params["cog"]
    context = blobs()
    grant = grant_of(request, context.signer, scope_path("tiles", cog))
    source = await run_in_threadpool(_ready_cog, engine, grant, cog)
    assert source.blob_key is not None
    etag = _etag(source.blob_key, z, x, y, image_format)
    headers = {"ETag": etag, "Cache-Control": grant.cache_control(), "Vary": "Authorization"}
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    where = context.store.raster_location(source.blob_key)
    body = await run_in_threadpool(
        render_tile, where.path, z, x, y, image_format, where.gdal_options
    )
    if body is None:
        raise Refused(404, f"tile {z}/{x}/{y} lies outside cog {cog!r}", "TILE_OUTSIDE_BOUNDS")
    return Response(body, headers=headers, media_type=f"image/{image_format}")


def _info(location: RasterLocation) -> TileInfo:
    return tile_info(location.path, location.gdal_options)


def tile_url_template(base: str, cog: str, query: str, image_format: str = "png") -> str:
    url = f"{base}/tiles/{cog}/{{z}}/{{x}}/{{y}}.{image_format}"
    return f"{url}?{query}" if query else url


def tilejson(info: TileInfo, template: str, name: str) -> dict[str, Any]:
    west, south, east, north = info.bounds
    return {
        "tilejson": "3.0.0",
        "name": name,
        "tiles": [template],
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, info.minzoom],
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
    }


async def get_tilejson(request: Request, engine: Engine, blobs: Blobs) -> Response:
    cog = request.path_params["cog"]
    context = blobs()
    scope = scope_path("tiles", cog)
    grant = grant_of(request, context.signer, scope)
    source = await run_in_threadpool(_ready_cog, engine, grant, cog)
    assert source.blob_key is not None
    info = await run_in_threadpool(_info, context.store.raster_location(source.blob_key))
    query = signed_query(context.signer, scope, grant, context.settings.link_seconds)
    base = context.base_url(str(request.base_url))
    template = tile_url_template(base, cog, query if grant.signed else "")
    headers = {"Cache-Control": grant.cache_control(), "Vary": "Authorization"}
    return JSONResponse(tilejson(info, template, cog), headers=headers)


def _map_data(engine: Engine, context: BlobContext, grant: Grant, survey: str) -> dict[str, Any]:
    """The layers (COG tile URLs, signed, with bounds) and image points of the map page."""
    with engine.connect() as conn:
        found = located(conn, grant, TypeCode.SURVEY, survey)
        if found is None:
            raise not_found("survey", survey)
        sources = survey_cog_sources(conn, found.id)
        points = survey_image_points(conn, found.id)
    layers = []
    for source in sources:
        if source.status != "SUCCESS" or source.blob_key is None:
            continue
        info = _info(context.store.raster_location(source.blob_key))
        scope = scope_path("tiles", source.sentera_id)
        query = signed_query(context.signer, scope, grant, context.settings.link_seconds)
        template = tile_url_template("", source.sentera_id, query)
        layers.append({"cog": source.sentera_id, "url": template, **_layer_zoom(info)})
    return {
        "layers": layers,
        "points": [{"name": p.filename, "lat": p.latitude, "lon": p.longitude} for p in points],
    }


def _layer_zoom(info: TileInfo) -> dict[str, Any]:
    west, south, east, north = info.bounds
    return {
        "bounds": [[south, west], [north, east]],
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
    }


async def get_map(request: Request, engine: Engine, blobs: Blobs) -> Response:
    survey = request.path_params["survey"]
    context = blobs()
    grant = grant_of(request, context.signer, scope_path("map", survey))
    data = await run_in_threadpool(_map_data, engine, context, grant, survey)
    page = MAP_HTML.replace("{{title}}", html.escape(f"Survey {survey}")).replace(
        "{{static}}", LEAFLET_PATH
    )
    payload = json.dumps(data).replace("<", "\\u003c")
    page = page.replace("{{data}}", payload)
    return HTMLResponse(page, headers={"Cache-Control": "private, no-store"})


Endpoint = Callable[[Request, Engine, Blobs], Awaitable[Response]]


def _handler(endpoint: Endpoint, engine: Engine, blobs: Blobs) -> Callable[..., Any]:
    async def handle(request: Request) -> Response:
        try:
            return await endpoint(request, engine, blobs)
        except Refused as exc:
            return _error(exc.status, str(exc), exc.code)

    return handle


def tile_routes(engine: Engine, blobs: Blobs) -> list[Route]:
    """The tile, TileJSON and map routes (the Leaflet files are mounted by the app)."""
    return [
        Route("/tiles/{cog}/tilejson.json", _handler(get_tilejson, engine, blobs)),
        Route("/tiles/{cog}/{z}/{x}/{y}.{format}", _handler(get_tile, engine, blobs)),
        Route("/map/{survey}", _handler(get_map, engine, blobs)),
    ]
