"""The long fuzzing run, by hand: the generator of tests/test_fuzz.py for N minutes.

Starts `fieldsync serve --demo` on SQLite in a temporary directory, on a free loopback port,
reads the demo token from its banner, then sends generated queries (schemathesis' GraphQL
mode, with hostile envelopes) with the token and, one round in four, without one, until the
time is up. Prints requests, statuses and every distinct bad response; exits 1 if there was one.

    .venv/bin/python bench/fuzz.py --minutes 10
    .venv/bin/python bench/fuzz.py --minutes 2 --url http://127.0.0.1:8000/graphql \\
        --token fst_… --database-url sqlite:///./fieldsync.db      # an already running server
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import FuzzReport, FuzzTarget, fuzz, live_ids
from tests.ops_support import free_port

from fieldsync.storage.database import make_engine

EXAMPLES_PER_ROUND = 200
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")
_TOKEN_LINE = re.compile(r"^Token \(no expiry\): (\S+)$", re.MULTILINE)


@contextmanager
def demo_server(workdir: Path) -> Iterator[tuple[str, str, str]]:
    """A `fieldsync serve --demo` process: (graphql url, token, database url); stopped after."""
    database_url = f"sqlite:///{workdir}/fieldsync.db"
    port = free_port()
    log = workdir / "server.log"
    # No rate limit: the fuzzer sends far more than a device would, and every request should
    # reach the parser and the resolvers rather than a 429.
    command = [sys.executable, "-m", "fieldsync", "serve", "--demo", "--rate-limit", "0"]
    command += ["--database-url", database_url, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as output:
        # Everything goes to the log file, which is never left unread (a full pipe would block
        # the server's access log).
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # In the temporary directory: the uploaded bytes (./fieldsync-blobs) go there too.
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=workdir
        )
        try:
            token = _read_token(log, process)
            _wait_healthy(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}/graphql", token, database_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _read_token(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = _TOKEN_LINE.search(log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise SystemExit(f"the demo server printed no token:\n{log.read_text(errors='replace')}")


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer {url}")


def run(url: str, token: str, database_url: str, minutes: float, seed: int) -> FuzzReport:
    """Fuzzing rounds of fresh seeds until the time is up."""
    engine = make_engine(database_url)
    ids = live_ids(engine)
    engine.dispose()
    report = FuzzReport()
    stop_at = time.monotonic() + minutes * 60
    round_number = 0
    while time.monotonic() < stop_at:
        as_token = None if round_number % 4 == 3 else token
        target = FuzzTarget(url, as_token, ids)
        fuzz(
            target,
            report,
            max_examples=EXAMPLES_PER_ROUND,
            seed=seed + round_number,
            stop_at=stop_at,
        )
        round_number += 1
        print(
            f"round {round_number}: {report.requests} requests, {len(report.findings)} bad",
            flush=True,
        )
    return report


def server_exceptions(log: Path) -> dict[str, int]:
    """Exception lines of the server's tracebacks, counted (each appears twice per error:
    once from the app's handler, once from uvicorn)."""
    counts: dict[str, int] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if _EXCEPTION_LINE.match(line):
            counts[line[:160]] = counts.get(line[:160], 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="fuzz this running server instead of starting a demo")
    parser.add_argument("--token", help="bearer token for --url")
    parser.add_argument("--database-url", help="the database of --url (to find live ids)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.url:
        if not (args.token and args.database_url):
            parser.error("--url needs --token and --database-url")
        report = run(args.url, args.token, args.database_url, args.minutes, args.seed)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as workdir,
            demo_server(Path(workdir)) as (url, token, database_url),
        ):
            report = run(url, token, database_url, args.minutes, args.seed)
            print(f"server exceptions logged: {server_exceptions(Path(workdir) / 'server.log')}")
    elapsed = time.monotonic() - started
    print(f"duration {elapsed:.0f} s, {report.requests / elapsed:.1f} requests/s")
    print(report.summary())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
