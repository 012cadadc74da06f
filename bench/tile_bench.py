"""Latency of COG tiles over HTTP next to rendering the same tiles in process.

Stores the COG given by `--cog` as a world's COG (SQLite and a local blob store in a
temporary directory), serves it with `fieldsync serve --rate-limit 0` on a free loopback
port, and requests `--tiles` random tiles (zoom levels the COG has data for, within its
bounds; PNG) one after another with a token. The baseline renders the very same tiles with
`fieldsync.processing.tiles.render_tile` on the file in this process: the difference is the
HTTP, authorization, lookup and blob-store share.

    .venv/bin/python bench/tile_bench.py --cog survey-cog.tif
    .venv/bin/python bench/tile_bench.py --cog survey-cog.tif --tiles 200 --seed 7
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import morecantile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.builder import build_world
from tests.cog_support import attach_cog, put_bytes
from tests.ops_support import ServeProcess

from fieldsync.blobs.context import BlobSettings, blob_context
from fieldsync.processing.tiles import render_tile, tile_info
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token

Tile = tuple[int, int, int]


def random_tiles(cog: Path, count: int, seed: int) -> list[Tile]:
    """`count` tiles drawn at random among those covering the COG at its zoom levels."""
    info = tile_info(str(cog))
    tms = morecantile.tms.get("WebMercatorQuad")
    zooms = list(range(info.minzoom, info.maxzoom + 1))
    candidates = [(t.z, t.x, t.y) for t in tms.tiles(*info.bounds, zooms=zooms)]
    chooser = random.Random(seed)
    return [chooser.choice(candidates) for _ in range(count)]


def timed(tiles: list[Tile], fetch: Callable[[Tile], object]) -> list[float]:
    """Milliseconds of each call."""
    times = []
    for tile in tiles:
        started = time.perf_counter()
        fetch(tile)
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{name:<22} p50 {statistics.median(ordered):8.2f} ms   p99 {p99:8.2f} ms"


def serve_cog(workdir: Path, cog: Path) -> tuple[ServeProcess, str, str]:
    """A server over a fresh world whose COG is `cog`; the server, a token and the COG id."""
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    store_url = f"file://{workdir / 'blobs'}"
    engine = make_engine(database_url)
    upgrade(engine)
    world = build_world(engine)
    server = ServeProcess(workdir, database_url, "--rate-limit", "0", "--blob-store", store_url)
    key = put_bytes(
        blob_context(engine, BlobSettings(store_url=store_url)), cog.read_bytes(), server.base
    )
    attach_cog(engine, world.cog, world.mosaic_file, key)
    return server, create_token(engine, world.user), world.cog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cog", type=Path, required=True, help="a COG (GeoTIFF) file")
    parser.add_argument("--tiles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tiles = random_tiles(args.cog, args.tiles, args.seed)
    print(f"{len(tiles)} random tiles of {args.cog} ({len(set(tiles))} distinct)")
    in_process = timed(tiles, lambda t: render_tile(str(args.cog), *t, "png"))
    with tempfile.TemporaryDirectory() as workdir:
        server, token, cog = serve_cog(Path(workdir), args.cog)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.base, headers=headers, timeout=60) as http:

                def fetch(tile: Tile) -> None:
                    z, x, y = tile
                    answer = http.get(f"/tiles/{cog}/{z}/{x}/{y}.png")
                    assert answer.status_code in (200, 404), answer.text

                over_http = timed(tiles, fetch)
        finally:
            server.stop()
    print(summary("rio-tiler in process", in_process))
    print(summary("FieldSync over HTTP", over_http))


if __name__ == "__main__":
    main()
