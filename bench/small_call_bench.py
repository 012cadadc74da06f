"""The small no-change call, many rounds: FieldSync, the limit and optionally a second FieldSync.

perf_bench.py times case 5 (a no-change `sync_images` call holding the 300 hashes of a small
survey) in 50 rounds among six cases, which is too few to tell a change of some 5 % from the
machine's noise. This script times only that call, in as many rounds as asked, interleaved,
with the server's CPU time per call, and can run a second FieldSync from another source tree
(a `git worktree` of an earlier commit, say) in the same run, so a change is measured against
what it changes and not against another run:

    .venv/bin/python bench/small_call_bench.py
    git worktree add /tmp/fieldsync-before <commit>
    .venv/bin/python bench/small_call_bench.py --against /tmp/fieldsync-before/src \\
        --database-url postgresql://postgres@127.0.0.1:5432/fieldsync_small

The world is perf_bench.py's small survey plus 2,000 images and 50 mosaics elsewhere
(`--images` makes that larger); both FieldSync servers migrate and serve the same database.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ops_support import ServeProcess

from perf_bench import (
    Contender,
    ContenderProcess,
    Sizes,
    bodies_of,
    postgres_database,
    prepare_world,
)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def serve_from(scratch: Path, database_url: str, source: str | None) -> ServeProcess:
    """`fieldsync serve`, importing the package from `source` when given."""
    env = {"PYTHONPATH": source} if source else None
    return ServeProcess(scratch, database_url, "--rate-limit", "0", env=env)


def measure(contenders: list[Contender], body: bytes, rounds: int) -> None:
    for contender in contenders:  # warm: documents parsed, scans kept, pools filled
        for _ in range(200):
            contender.post(body)
    seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu_before = {c.name: cpu_seconds(c.pid) for c in contenders}
    for _ in range(rounds):
        for contender in contenders:
            started = time.perf_counter()
            contender.post(body)
            seconds[contender.name].append(time.perf_counter() - started)
    limit = statistics.median(seconds["limit"])
    print(f"{'contender':<22} {'median ms':>10} {'server CPU ms':>14} {'ratio to limit':>15}")
    for contender in contenders:
        median = statistics.median(seconds[contender.name])
        cpu = (cpu_seconds(contender.pid) - cpu_before[contender.name]) / rounds
        ratio = median / limit
        print(f"{contender.name:<22} {median * 1e3:>10.3f} {cpu * 1e3:>14.3f} {ratio:>14.2f}x")


def run(database_url: str, scratch: Path, args: argparse.Namespace) -> None:
    _, token = prepare_world(database_url, Sizes(args.images, 50, 1, 1, 1, 1, 1.0))
    servers = [serve_from(scratch, database_url, None)]
    if args.against:
        servers.append(serve_from(scratch, database_url, args.against))
    limit = ContenderProcess("limit", database_url, scratch)
    try:
        names = ["FieldSync", f"FieldSync {Path(args.against).parent.name}" if args.against else ""]
        contenders = [
            Contender(name, server.base, token, server.process.pid)
            for name, server in zip(names, servers, strict=False)
        ]
        contenders.append(Contender("limit", limit.base, token, limit.process.pid))
        measure(contenders, bodies_of(database_url).small_call, args.rounds)
    finally:
        for server in servers:
            server.stop()
        limit.stop()
    print("command: " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="PostgreSQL URL of a database to create and drop")
    parser.add_argument("--rounds", type=int, default=1500, help="calls per contender")
    parser.add_argument("--images", type=int, default=2000, help="images outside the survey")
    parser.add_argument("--against", help="the src directory of a second FieldSync to time")
    args = parser.parse_args()
    if args.against and not (Path(args.against) / "fieldsync").is_dir():
        parser.error(f"--against {args.against}: no fieldsync package there")
    with tempfile.TemporaryDirectory(prefix="fieldsync-small-") as scratch:
        database: AbstractContextManager[None] = nullcontext()
        url = f"sqlite:///{scratch}/fieldsync.db"
        if args.database_url:
            database, url = postgres_database(args.database_url), args.database_url
        with database:
            run(url, Path(scratch), args)


if __name__ == "__main__":
    main()
