"""Timings of `fieldsync pull` against a real `fieldsync serve`, next to a plain client.

Builds a world on SQLite in a temporary directory: one survey of 100,000 images (no bytes,
loaded with the changeset loader, as sync_bench.py does) and one of 2,000 files of 1 MiB of
random bytes (uploaded through the API: create_file_upload, the signed PUT, upsert_files with
`file_key`). Serves it with `fieldsync serve --rate-limit 0` on a free loopback port, then runs
the `fieldsync pull` CLI as a subprocess and reads its `--json` summary:

* a. the image survey with `--no-download`;
* b. the file survey with its bytes (`--jobs 4`, the default);
* c. everything again, nothing changed.

The baselines run in the same process against the same server: the documented sync loop of
docs/sync.md written plainly with httpx (one request per page carrying every hash held, JSON
kept in memory), and a sequential httpx download of every file's link. Wall times include the
pull's process start; its own `seconds` is shown beside them.

    .venv/bin/python bench/pull_bench.py                          # 100,000 images, 2,000 files
    .venv/bin/python bench/pull_bench.py --images 5000 --files 50
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.client_support import client_environment
from tests.ops_support import ServeProcess

from fieldsync.changeset import apply_changeset
from fieldsync.client import FieldSyncClient
from fieldsync.client.uploads import upload_file
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token
from sync_bench import FIELD, IMAGE_SURVEY, SUFFIX, USER
from sync_bench import build_world as build_image_world

FILE_SURVEY = f"bnchfil_CO_{SUFFIX}"
FILE_BYTES = 1024 * 1024
UPSERT_BATCH = 1_000
SERVE_OPTIONS = ("--rate-limit", "0")
MiB = 1024 * 1024

# The sample loop's query of docs/sync.md.
SYNC_IMAGES = """
query SyncSurveyImages($survey_sentera_id: ID!, $content_hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey_sentera_id, content_hashes: $content_hashes) {
    remaining_count
    upserted {
      sentera_id
      content_hash
      ... on Image { filename latitude longitude altitude captured_at }
    }
    deleted { sentera_id content_hash }
    failed { key message details }
  }
}"""
SYNC_FILES = """
query SyncFiles($owners: [FileOwnerInput!]!, $content_hashes: [String!]!) {
  sync_files(owners: $owners, content_hashes: $content_hashes) {
    remaining_count
    upserted {
      sentera_id
      content_hash
      ... on File { filename size checksum url }
    }
    deleted { sentera_id content_hash }
    failed { key message details }
  }
}"""
FILE_OWNERS = [{"owner_type": "SURVEY", "sentera_id": FILE_SURVEY}]

Held = dict[str, dict[str, Any]]


@dataclass
class Measurement:
    """One timed run: wall time, requests, bytes up and down (request and response bodies)."""

    label: str
    seconds: float = 0.0
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    own_seconds: float | None = None  # the pull's own `seconds`, without the process start


# -- the world ---------------------------------------------------------------------------------


def build_world(database_url: str, images: int) -> tuple[float, str]:
    """The image survey (sync_bench's world, without mosaics) and an empty file survey; the
    load time and a token of the world's user."""
    engine = make_engine(database_url)
    upgrade(engine)
    seconds = build_image_world(engine, images, 0)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": USER,
            "upsert": {
                "surveys": [{"sentera_id": FILE_SURVEY, "field_sentera_id": FIELD, "name": "files"}]
            },
        },
    )
    token = create_token(engine, USER)
    engine.dispose()
    return seconds, token


def upload_files(server: str, token: str, count: int, scratch: Path) -> float:
    """`count` files of random bytes into the file survey through the API; seconds taken."""
    started = time.perf_counter()
    scratch.mkdir()
    with FieldSyncClient(server, token) as client:
        for start in range(0, count, UPSERT_BATCH):
            records = [
                {"filename": path.name, "file_type": "OTHER", "file_key": key}
                for path, key in (
                    _upload_random(client, scratch / f"file_{n:05d}.bin")
                    for n in range(start, min(start + UPSERT_BATCH, count))
                )
            ]
            result = client.upsert_files(("SURVEY", FILE_SURVEY), records)
            if result.failed:
                raise SystemExit(f"upsert_files refused files: {result.failed[:3]}")
    scratch.rmdir()
    return time.perf_counter() - started


def _upload_random(client: FieldSyncClient, path: Path) -> tuple[Path, str]:
    path.write_bytes(os.urandom(FILE_BYTES))
    key = upload_file(client, path, content_type="application/octet-stream")
    path.unlink()
    return path, key


# -- fieldsync pull ----------------------------------------------------------------------------


def pull_command(server: str, token: str, directory: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "fieldsync", "pull", "--server", server, "--token", token,
        "--to", str(directory), "--json", *options,
    ]  # fmt: skip


def run_pull(label: str, command: list[str]) -> tuple[Measurement, dict[str, Any]]:
    """The CLI run to its end: wall time and its summary's counts."""
    started = time.perf_counter()
    done = subprocess.run(command, env=client_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label}: pull exited {done.returncode}\n{done.stderr}{done.stdout}")
    summary: dict[str, Any] = json.loads(done.stdout)
    measured = Measurement(
        label,
        seconds,
        summary["requests"],
        summary["bytes_sent"],
        summary["bytes_received"],
        summary["seconds"],
    )
    print(f"{label.split('.')[0]}: " + shlex.join(command).replace(token_of(command), "$TOKEN"))
    return measured, summary


def token_of(command: list[str]) -> str:
    return command[command.index("--token") + 1]


def expect(label: str, summary: dict[str, Any], kind: str, created: int, bytes_: int) -> None:
    """Stop unless the pull created `created` items of `kind` and fetched `bytes_` of them."""
    got = summary["types"][kind]
    if (got["created"], got["updated"], got["bytes"]) != (created, 0, bytes_):
        raise SystemExit(f"{label}: expected {created} {kind} ({bytes_} bytes), got {got}")


# -- the plain client --------------------------------------------------------------------------


class PlainClient:
    """httpx and nothing else, counting what it sends and receives like the pull does."""

    def __init__(self, server: str, token: str, measurement: Measurement) -> None:
        self.endpoint = server + "/graphql"
        self.http = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"})
        self.measurement = measurement

    def __enter__(self) -> PlainClient:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.measurement.seconds = time.perf_counter() - self.started
        self.http.close()

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {"Content-Type": "application/json"}
        response = self.http.post(self.endpoint, content=body, headers=headers)
        self._count(len(body), len(response.content))
        answer: dict[str, Any] = response.json()
        if response.status_code != 200 or answer.get("errors"):
            raise SystemExit(f"{self.endpoint} answered {response.status_code}: {answer}")
        return answer

    def download(self, url: str, target: Path) -> None:
        received = 0
        with self.http.stream("GET", url) as response, target.open("wb") as sink:
            response.raise_for_status()
            for chunk in response.iter_bytes(MiB):
                sink.write(chunk)
                received += len(chunk)
        self._count(0, received)

    def _count(self, sent: int, received: int) -> None:
        self.measurement.requests += 1
        self.measurement.bytes_sent += sent
        self.measurement.bytes_received += received


def plain_sync(
    client: PlainClient, query: str, field: str, scope: dict[str, Any], held: Held
) -> None:
    """The loop of docs/sync.md: every held hash sent with each page, until none remain."""
    while True:
        hashes = [item["content_hash"] for item in held.values()]
        answer = client.graphql(query, {**scope, "content_hashes": hashes})
        page = answer["data"][field]
        for item in page["deleted"]:
            if held.get(item["sentera_id"], {}).get("content_hash") == item["content_hash"]:
                del held[item["sentera_id"]]
        for item in page["upserted"]:
            held[item["sentera_id"]] = item
        if page["failed"]:
            raise SystemExit(f"{field} failed: {page['failed']}")
        if page["remaining_count"] == 0:
            return


def sync_images(client: PlainClient, held: Held) -> None:
    plain_sync(client, SYNC_IMAGES, "sync_images", {"survey_sentera_id": IMAGE_SURVEY}, held)


def sync_files(client: PlainClient, held: Held) -> None:
    plain_sync(client, SYNC_FILES, "sync_files", {"owners": FILE_OWNERS}, held)


def baseline(
    label: str, server: str, token: str, run: Callable[[PlainClient], None]
) -> Measurement:
    measured = Measurement(label)
    with PlainClient(server, token, measured) as client:
        run(client)
    return measured


def download_all(client: PlainClient, files: Held, directory: Path) -> None:
    """Each file's link fetched in turn, to a file of its own."""
    directory.mkdir()
    for sentera_id, item in files.items():
        client.download(item["url"], directory / sentera_id)


# -- the run -----------------------------------------------------------------------------------


def measure(arguments: argparse.Namespace, scratch: Path) -> list[tuple[Measurement, Measurement]]:
    database_url = f"sqlite:///{scratch}/fieldsync.db"
    load_seconds, token = build_world(database_url, arguments.images)
    print(
        f"world: {arguments.images:,} images loaded with apply_changeset (the changeset loader, "
        f"20,000 a changeset) in {load_seconds:.1f} s"
    )
    print(
        "serve: --rate-limit 0; the default of 600 requests a minute per token would hold back "
        "the uploads below and the back-to-back runs, timing the limit instead of the pull"
    )
    server = ServeProcess(scratch, database_url, *SERVE_OPTIONS)
    try:
        upload_seconds = upload_files(server.base, token, arguments.files, scratch / "upload")
        print(
            f"world: {arguments.files:,} files of {FILE_BYTES // MiB} MiB of random bytes uploaded "
            f"(create_file_upload, PUT, upsert_files with file_key, {UPSERT_BATCH:,} a call) "
            f"in {upload_seconds:.1f} s"
        )
        pairs = compare(server.base, token, arguments, scratch)
    finally:
        server.stop()
    tracebacks = server.stderr().count("Traceback")
    print(f"server log: {tracebacks} tracebacks")
    return pairs


def compare(
    server: str, token: str, arguments: argparse.Namespace, scratch: Path
) -> list[tuple[Measurement, Measurement]]:
    """Each pull and its baseline, in the order: baseline, then pull."""
    mirror = scratch / "mirror"
    images: Held = {}
    files: Held = {}

    base_a = baseline("plain sync loop, images", server, token, lambda c: sync_images(c, images))
    pull_a, summary = run_pull(
        "a. pull --survey IMAGES --no-download",
        pull_command(server, token, mirror, "--survey", IMAGE_SURVEY, "--no-download"),
    )
    expect(pull_a.label, summary, "images", arguments.images, 0)

    def fetch_files(client: PlainClient) -> None:
        sync_files(client, files)
        download_all(client, files, scratch / "baseline-files")

    base_b = baseline("plain sync + sequential GETs, files", server, token, fetch_files)
    pull_b, summary = run_pull(
        "b. pull --survey FILES (--jobs 4)",
        pull_command(server, token, mirror, "--survey", FILE_SURVEY),
    )
    expect(pull_b.label, summary, "files", arguments.files, arguments.files * FILE_BYTES)

    def no_change(client: PlainClient) -> None:
        sync_images(client, images)
        sync_files(client, files)

    base_c = baseline("plain loop, no change, both surveys", server, token, no_change)
    pull_c, summary = run_pull(
        "c. pull, no change, everything", pull_command(server, token, mirror)
    )
    for kind in ("images", "files"):
        expect(pull_c.label, summary, kind, 0, 0)
    return [(pull_a, base_a), (pull_b, base_b), (pull_c, base_c)]


def print_table(pairs: list[tuple[Measurement, Measurement]]) -> None:
    print(f"{'':<38} {'wall s':>8} {'(own s)':>8} {'requests':>9} {'MiB up':>9} {'MiB down':>9}")
    for pull, base in pairs:
        for row in (pull, base):
            own = "" if row.own_seconds is None else f"({row.own_seconds:.2f})"
            print(
                f"{row.label:<38} {row.seconds:>8.2f} {own:>8} {row.requests:>9,} "
                f"{row.bytes_sent / MiB:>9.2f} {row.bytes_received / MiB:>9.2f}"
            )
        print(
            f"{'  pull / baseline (wall)':<38} {_ratio(pull.seconds, base.seconds):>8} {'':>8} "
            f"{_ratio(pull.requests, base.requests):>9} "
            f"{_ratio(pull.bytes_sent, base.bytes_sent):>9} "
            f"{_ratio(pull.bytes_received, base.bytes_received):>9}"
        )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100_000, help="images of the survey")
    parser.add_argument("--files", type=int, default=2_000, help="files of 1 MiB")
    arguments = parser.parse_args()
    if arguments.images < 1 or arguments.files < 1:
        parser.error("--images and --files must be at least 1")
    with tempfile.TemporaryDirectory(prefix="fieldsync-pull-bench-") as scratch:
        pairs = measure(arguments, Path(scratch))
    print_table(pairs)
    print("command: " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))


if __name__ == "__main__":
    main()
