"""FieldSync's `create_cog` against `rio cogeo create` with the same options, on the same RGB
uint8 mosaic: wall time and peak resident memory of each, run in its own process, interleaved
A B A B so that a warm or cold disk cache favours neither.

    .venv/bin/python bench/cog_bench.py --workdir /tmp/cog-bench --size 4000
    .venv/bin/python bench/cog_bench.py --workdir /tmp/cog-bench            # 20,000 x 20,000

The source (tiled, JPEG-compressed, UTM 15N at 3 cm a pixel) is written one block row at a
time, so generating it takes bounded memory too; it is kept in --workdir and reused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from fieldsync.processing.cog import GDAL_CACHE_BYTES

BLOCK = 512
POLL_SECONDS = 0.05
RIO_COGEO_OPTIONS = [
    "--cog-profile",
    "jpeg",
    "--co",
    "JPEG_QUALITY=90",
    "--web-optimized",
    "--no-in-memory",
    "--threads",
    "1",
    "--config",
    "GDAL_TIFF_INTERNAL_MASK=TRUE",
    "--quiet",
]


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    seconds: float
    peak_rss_bytes: int


def write_source(path: Path, size: int) -> Path:
    """A size x size RGB mosaic of smooth gradients, written block row by block row."""
    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32615",
        "transform": from_origin(432_000.0, 4_650_000.0, 0.03, 0.03),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "jpeg",
        "photometric": "ycbcr",
        "BIGTIFF": "IF_SAFER",
    }
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        rasterio.open(partial, "w", **profile) as out,
    ):
        for top in range(0, size, BLOCK):
            height = min(BLOCK, size - top)
            rows, cols = np.mgrid[top : top + height, 0:size]
            bands = [(cols // 7 + rows // 11 + 60 * b) % 256 for b in range(3)]
            out.write(np.stack(bands).astype("uint8"), window=Window(0, top, size, height))
    partial.rename(path)
    return path


def measure(name: str, command: list[str]) -> Run:
    """Wall time of the command, and the peak RSS of its process tree sampled every 50 ms.
    GDAL's cache is bounded as create_cog bounds it (rio's --config cannot pass it)."""
    environment = {**os.environ, "GDAL_CACHEMAX": str(GDAL_CACHE_BYTES)}
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, env=environment)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit status {process.returncode}")
    return Run(name, seconds, peak)


def fieldsync_command(source: Path, destination: Path) -> list[str]:
    return [sys.executable, __file__, "create-cog", str(source), str(destination)]


def rio_cogeo_command(source: Path, destination: Path) -> list[str]:
    rio = Path(sys.executable).with_name("rio")
    return [str(rio), "cogeo", "create", str(source), str(destination), *RIO_COGEO_OPTIONS]


def report(runs: list[Run]) -> None:
    by_name: dict[str, list[Run]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)
    print(f"{'':12} {'median s':>10} {'peak RSS MiB':>14}")
    medians: dict[str, tuple[float, float]] = {}
    for name, group in by_name.items():
        seconds = statistics.median(r.seconds for r in group)
        rss = max(r.peak_rss_bytes for r in group) / 2**20
        medians[name] = (seconds, rss)
        print(f"{name:12} {seconds:10.2f} {rss:14.1f}")
    (fs_s, fs_rss), (rio_s, rio_rss) = medians["fieldsync"], medians["rio cogeo"]
    print(f"{'ratio':12} {fs_s / rio_s:10.3f} {fs_rss / rio_rss:14.3f}   (FieldSync / rio cogeo)")


def create_cog_main(source: str, destination: str) -> None:
    from fieldsync.processing.cog import create_cog

    create_cog(Path(source), Path(destination), mosaic_type="RGB")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "create-cog":
        create_cog_main(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--size", type=int, default=20_000, help="width and height in pixels")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--keep-cog",
        action="store_true",
        help="keep FieldSync's last COG in --workdir (cog-fieldsync.tif), e.g. for tile_bench.py",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = write_source(args.workdir / f"mosaic-{args.size}.tif", args.size)
    print(f"source {source} ({source.stat().st_size / 2**20:.1f} MiB)")
    runs: list[Run] = []
    for round_number in range(args.rounds):
        for name, command in (("fieldsync", fieldsync_command), ("rio cogeo", rio_cogeo_command)):
            destination = args.workdir / f"cog-{name.replace(' ', '-')}.tif"
            destination.unlink(missing_ok=True)
            run = measure(name, command(source, destination))
            print(
                f"round {round_number + 1} {name:10} {run.seconds:8.2f} s "
                f"{run.peak_rss_bytes / 2**20:8.1f} MiB"
            )
            runs.append(run)
            last = round_number == args.rounds - 1
            if not (args.keep_cog and last and name == "fieldsync"):
                destination.unlink(missing_ok=True)
    report(runs)


if __name__ == "__main__":
    main()
