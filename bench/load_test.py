"""Load test, by hand: sync clients against `fieldsync serve --workers 2` on PostgreSQL while
writers apply changesets. Loopback only; every loop is bounded in time and count.

Creates its own PostgreSQL database (createdb; dropped at the end), loads a world of surveys,
images, mosaics, files and flight tasks, starts the server on a free 127.0.0.1 port, then for
`--duration` seconds runs `--clients` sync clients (sync_images / sync_mosaics / sync_files /
sync_flight_tasks of random scopes, each holding its hashes between calls, the documented loop)
and `--writers` threads applying changesets (creates, updates, moves, deletes). Then the writers
stop and every client syncs every scope once more: it must hold exactly the live rows of the
database. Prints requests, statuses, latency percentiles, throughput and the server processes'
memory; exits 1 on a server error, a failed convergence or a writer error.

    .venv/bin/python bench/load_test.py                          # 50 clients, 5 minutes
    .venv/bin/python bench/load_test.py --duration 60 --clients 20
"""

from __future__ import annotations

import argparse
import itertools
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import httpx
import psutil
from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ops_support import free_port

from fieldsync.changeset import ChangesetError, apply_changeset
from fieldsync.hashing import encode_hash
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token

PG_HOST = "127.0.0.1"
PG_USER = "postgres"
SUFFIX = "Load_FS_load_0a1b2c3_240601_120000"
ORG = f"loadorg_OR_{SUFFIX}"
USER = f"loadusr_US_{SUFFIX}"
FIELDS = 2
SURVEYS_PER_FIELD = 3
IMAGES_PER_SURVEY = 150
LINKED_IMAGES = 10
MOSAICS_PER_SURVEY = 3
FILES_PER_SURVEY = 5
FLIGHT_TASKS = 20
MAX_PAGES_PER_SYNC = 50
MAX_RETRIES = 10
MAX_RETRY_AFTER = 5.0
WRITER_PAUSE = 0.3
RSS_SAMPLE_SECONDS = 5.0

SYNC_QUERY = """
query LoadSync($hashes: [String!]!, $survey: ID!) {
  %s(content_hashes: $hashes, survey_sentera_id: $survey) { ...page }
}
"""
FILES_QUERY = """
query LoadSyncFiles($hashes: [String!]!, $owners: [FileOwnerInput!]!) {
  sync_files(content_hashes: $hashes, owners: $owners) { ...page }
}
"""
TASKS_QUERY = """
query LoadSyncTasks($hashes: [String!]!, $org: ID!) {
  sync_flight_tasks(content_hashes: $hashes, organization_sentera_id: $org) { ...page }
}
"""
PAGE_FRAGMENT = """
fragment page on SyncResult {
  remaining_count
  deleted { sentera_id content_hash }
  upserted { sentera_id content_hash }
  failed { key }
}
"""


_serial = itertools.count(1)


def new_id(code: str) -> str:
    """A new sentera_id, unique within the run (each run has a database of its own)."""
    return f"{next(_serial):07d}_{code}_{SUFFIX}"


# -- the world and the writers ---------------------------------------------------------------


@dataclass
class SurveyState:
    """What a writer knows of one survey: its ids, and which images mosaics link."""

    sentera_id: str
    linked: list[str]
    free: list[str]
    mosaics: list[str]
    files: list[str]


@dataclass
class World:
    surveys: list[SurveyState]
    flight_tasks: list[str]


def image(sentera_id: str, survey: str, filename: str) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "survey_sentera_id": survey,
        "filename": filename,
        "latitude": 45.3,
        "longitude": -93.5,
        "captured_at": "2024-06-01T14:03:11Z",
    }


def survey_file(sentera_id: str, survey: str, filename: str) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "owner_type": "SURVEY",
        "owner_sentera_id": survey,
        "filename": filename,
        "file_type": "OTHER",
    }


def build_world(engine: Engine) -> World:
    """Load the starting world in one changeset."""
    upsert: dict[str, list[dict[str, Any]]] = {
        "organizations": [{"sentera_id": ORG, "name": "Load Test Farms"}],
        "users": [
            {
                "sentera_id": USER,
                "email": "load@example.test",
                "first_name": "Load",
                "last_name": "Test",
                "organization_sentera_ids": [ORG],
            }
        ],
        "fields": [],
        "surveys": [],
        "images": [],
        "mosaics": [],
        "files": [],
        "flight_tasks": [],
    }
    surveys: list[SurveyState] = []
    for _ in range(FIELDS):
        field_id = new_id("AS")
        upsert["fields"].append(
            {"sentera_id": field_id, "organization_sentera_id": ORG, "name": "Field"}
        )
        for _ in range(SURVEYS_PER_FIELD):
            state = _new_survey(field_id, upsert)
            surveys.append(state)
    tasks = [new_id("TA") for _ in range(FLIGHT_TASKS)]
    upsert["flight_tasks"] = [
        {"sentera_id": task, "organization_sentera_id": ORG, "status": "OPEN", "name": "Scout"}
        for task in tasks
    ]
    apply_changeset(engine, {"actor_sentera_id": USER, "upsert": upsert})
    return World(surveys, tasks)


def _new_survey(field_id: str, upsert: dict[str, list[dict[str, Any]]]) -> SurveyState:
    survey = new_id("CO")
    upsert["surveys"].append(
        {
            "sentera_id": survey,
            "field_sentera_id": field_id,
            "name": "Flight",
            "start_time": "2024-06-01T14:00:00Z",
            "end_time": "2024-06-01T14:40:00Z",
        }
    )
    images = [new_id("IM") for _ in range(IMAGES_PER_SURVEY)]
    upsert["images"] += [image(sid, survey, f"IMG_{n:04d}.jpg") for n, sid in enumerate(images)]
    mosaics = [new_id("MO") for _ in range(MOSAICS_PER_SURVEY)]
    upsert["mosaics"] += [
        {
            "sentera_id": mosaic,
            "survey_sentera_id": survey,
            "name": "Mosaic",
            "mosaic_type": "RGB",
            "quality": "FULL",
            "image_sentera_ids": images[:LINKED_IMAGES],
        }
        for mosaic in mosaics
    ]
    files = [new_id("FI") for _ in range(FILES_PER_SURVEY)]
    upsert["files"] += [survey_file(sid, survey, f"f{n}.txt") for n, sid in enumerate(files)]
    return SurveyState(survey, images[:LINKED_IMAGES], images[LINKED_IMAGES:], mosaics, files)


Change: TypeAlias = tuple[dict[str, list[dict[str, Any]]], list[str]]
"""The upsert part and the delete list of one changeset."""


class Writer:
    """Applies random changesets to the surveys and flight tasks it alone owns."""

    def __init__(self, engine: Engine, surveys: list[SurveyState], tasks: list[str]) -> None:
        self.engine = engine
        self.surveys = surveys
        self.tasks = tasks
        self.rng = random.Random(len(surveys) * 7919 + len(tasks))
        self.applied: Counter[str] = Counter()
        self.errors: list[str] = []

    def run(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            name, document = self._next_changeset()
            try:
                apply_changeset(self.engine, document)
                self.applied[name] += 1
            except ChangesetError as exc:
                self.errors.append(f"{name}: {'; '.join(map(str, exc.issues))}")
            time.sleep(WRITER_PAUSE)

    def _next_changeset(self) -> tuple[str, dict[str, Any]]:
        survey = self.rng.choice(self.surveys)
        ops: list[Callable[[SurveyState], Change]] = [
            self._create_images,
            self._update_images,
            self._update_mosaic,
            self._files,
        ]
        if len(self.surveys) > 1:
            ops.append(self._move_images)
        if len(survey.free) > 20:
            ops.append(self._delete_images)
        if self.tasks:
            ops.append(self._update_tasks)
        op = self.rng.choice(ops)
        name = op.__name__.lstrip("_")
        upsert, delete = op(survey)
        return name, {"actor_sentera_id": USER, "upsert": upsert, "delete": delete}

    def _create_images(self, survey: SurveyState) -> Change:
        created = [new_id("IM") for _ in range(self.rng.randint(1, 20))]
        survey.free += created
        return {"images": [image(sid, survey.sentera_id, "new.jpg") for sid in created]}, []

    def _update_images(self, survey: SurveyState) -> Change:
        chosen = self.rng.sample(survey.linked + survey.free, 5)
        name = f"edit{self.rng.randint(0, 10**6)}.jpg"
        return {"images": [{"sentera_id": sid, "filename": name} for sid in chosen]}, []

    def _move_images(self, survey: SurveyState) -> Change:
        target = self.rng.choice([s for s in self.surveys if s is not survey])
        moved = self.rng.sample(survey.free, min(5, len(survey.free)))
        for sid in moved:
            survey.free.remove(sid)
        target.free += moved
        records = [{"sentera_id": sid, "survey_sentera_id": target.sentera_id} for sid in moved]
        return {"images": records}, []

    def _delete_images(self, survey: SurveyState) -> Change:
        doomed = self.rng.sample(survey.free, 5)
        for sid in doomed:
            survey.free.remove(sid)
        return {}, doomed

    def _update_mosaic(self, survey: SurveyState) -> Change:
        mosaic = self.rng.choice(survey.mosaics)
        return {"mosaics": [{"sentera_id": mosaic, "name": f"M{self.rng.randint(0, 999)}"}]}, []

    def _files(self, survey: SurveyState) -> Change:
        if survey.files and self.rng.random() < 0.3:
            return {}, [survey.files.pop(self.rng.randrange(len(survey.files)))]
        created = new_id("FI")
        survey.files.append(created)
        return {"files": [survey_file(created, survey.sentera_id, "new.txt")]}, []

    def _update_tasks(self, _survey: SurveyState) -> Change:
        task = self.rng.choice(self.tasks)
        status = self.rng.choice(["OPEN", "IN_PROGRESS", "COMPLETED"])
        return {"flight_tasks": [{"sentera_id": task, "status": status}]}, []


# -- the sync clients ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncScope:
    """One sync query over one scope."""

    query: str
    variables: dict[str, Any]
    table: Any
    scope_type: str
    scope_sentera_id: str

    @property
    def key(self) -> str:
        return f"{self.table.name}:{self.scope_sentera_id}"


def scopes_of(world: World) -> list[SyncScope]:
    scopes = [SyncScope(TASKS_QUERY, {"org": ORG}, t.flight_tasks, "ORGANIZATION", ORG)]
    for survey in world.surveys:
        sid = survey.sentera_id
        scopes.append(
            SyncScope(SYNC_QUERY % "sync_images", {"survey": sid}, t.images, "SURVEY", sid)
        )
        scopes.append(
            SyncScope(SYNC_QUERY % "sync_mosaics", {"survey": sid}, t.mosaics, "SURVEY", sid)
        )
        owners = [{"owner_type": "SURVEY", "sentera_id": sid}]
        scopes.append(SyncScope(FILES_QUERY, {"owners": owners}, t.files, "SURVEY", sid))
    return scopes


@dataclass
class Stats:
    """Shared counters of every client; appends and Counter updates under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, status: int, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)
            if error is not None and len(self.errors) < 50:
                self.errors.append(error)


class Client:
    """One sync client: its own connection, holding {sentera_id: hash} per scope."""

    def __init__(self, url: str, token: str, stats: Stats, seed: int) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"})
        self.stats = stats
        self.rng = random.Random(seed)
        self.held: dict[str, dict[str, str]] = {}

    def run(self, scopes: list[SyncScope], stop_at: float) -> None:
        while time.monotonic() < stop_at:
            self.sync(self.rng.choice(scopes), stop_at)

    def sync(self, scope: SyncScope, stop_at: float | None = None) -> bool:
        """The documented loop, until remaining_count is 0 (True) or a bound is hit."""
        held = self.held.setdefault(scope.key, {})
        for _ in range(MAX_PAGES_PER_SYNC):
            if stop_at is not None and time.monotonic() > stop_at:
                return False
            page = self._call(scope, list(held.values()))
            if page is None:
                return False
            for entry in page["deleted"]:
                if held.get(entry["sentera_id"]) == entry["content_hash"]:
                    del held[entry["sentera_id"]]
            for item in page["upserted"]:
                held[item["sentera_id"]] = item["content_hash"]
            if page["remaining_count"] == 0:
                return True
        return False

    def _call(self, scope: SyncScope, hashes: list[str]) -> dict[str, Any] | None:
        body = {
            "query": scope.query + PAGE_FRAGMENT,
            "variables": {**scope.variables, "hashes": hashes},
        }
        for _ in range(MAX_RETRIES):
            started = time.perf_counter()
            try:
                response = self.http.post(self.url, json=body)
            except httpx.HTTPError as exc:
                self.stats.record(0, time.perf_counter() - started, f"no response: {exc!r}")
                return None
            elapsed = time.perf_counter() - started
            if response.status_code in (429, 503):
                self.stats.record(response.status_code, elapsed)
                time.sleep(_retry_after(response))
                continue
            return self._page(response, elapsed)
        return None

    def _page(self, response: httpx.Response, elapsed: float) -> dict[str, Any] | None:
        status = response.status_code
        try:
            data = response.json()["data"]
            page: dict[str, Any] = next(iter(data.values()))
        except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
            self.stats.record(status, elapsed, f"HTTP {status}: {response.text[:200]}")
            return None
        error = None if status == 200 else f"HTTP {status}: {response.text[:200]}"
        self.stats.record(status, elapsed, error)
        return page

    def close(self) -> None:
        self.http.close()


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), MAX_RETRY_AFTER)
    except ValueError:
        return 1.0


def live_rows(engine: Engine, scope: SyncScope) -> dict[str, str]:
    """The scope's live items in the database: {sentera_id: content hash}."""
    table = scope.table
    owner_table = t.organizations if scope.scope_type == "ORGANIZATION" else t.surveys
    with engine.connect() as conn:
        owner_id = conn.execute(
            select(owner_table.c.id).where(owner_table.c.sentera_id == scope.scope_sentera_id)
        ).scalar_one()
        rows = conn.execute(
            select(table.c.sentera_id, table.c.content_hash).where(
                table.c.scope_type == scope.scope_type,
                table.c.scope_id == owner_id,
                table.c.deleted_at.is_(None),
            )
        )
        return {sid: encode_hash(raw) for sid, raw in rows}


# -- the server, its database and its memory -------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"fieldsync_load_{secrets.token_hex(4)}"
    subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, name], check=True)
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:5432/{name}"
    finally:
        subprocess.run(
            ["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=False
        )


@contextmanager
def server(database_url: str, workers: int, log: Path) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    command = [sys.executable, "-m", "fieldsync", "serve", "--database-url", database_url]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning"]
    with log.open("w") as output:
        # In the work directory: uploaded bytes (./fieldsync-blobs) go there too.
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
            yield f"http://127.0.0.1:{port}/graphql", psutil.Process(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not become healthy at {url}")


class MemorySampler:
    """Total RSS of the server and its worker processes, every few seconds."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            total = 0
            for process in [self.root, *self.root.children(recursive=True)]:
                with suppress(psutil.Error):
                    total += process.memory_info().rss
            self.samples.append((time.monotonic() - started, total))
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def first_and_last(self, window: float) -> tuple[float, float]:
        """Mean RSS in MiB of the first and of the last `window` seconds."""
        end = self.samples[-1][0]
        first = [rss for at, rss in self.samples if at <= window]
        last = [rss for at, rss in self.samples if at >= end - window]
        return statistics.mean(first) / 2**20, statistics.mean(last) / 2**20


# -- the run ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Outcome:
    stats: Stats
    seconds: float
    converged: int
    diverged: list[str]
    writes: Counter[str]
    write_errors: list[str]
    memory: tuple[float, float]
    samples: int
    live_items: int


def run_load(args: argparse.Namespace, database_url: str, workdir: Path) -> Outcome:
    engine = make_engine(database_url)
    upgrade(engine)
    world = build_world(engine)
    # One token per client, as real clients have: a per-token rate limit throttles each alone.
    tokens = [create_token(engine, USER) for _ in range(args.clients)]
    scopes = scopes_of(world)
    with server(database_url, args.workers, workdir / "server.log") as (url, root):
        with MemorySampler(root) as memory:
            stats = Stats()
            clients = [Client(url, token, stats, seed) for seed, token in enumerate(tokens)]
            writers = [
                Writer(
                    engine, world.surveys[i :: args.writers], world.flight_tasks[i :: args.writers]
                )
                for i in range(args.writers)
            ]
            started = time.monotonic()
            stop_at = started + args.duration
            threads = [threading.Thread(target=w.run, args=(stop_at,)) for w in writers]
            threads += [threading.Thread(target=c.run, args=(scopes, stop_at)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - started
            converged, diverged, live_items = converge(engine, clients, scopes)
        window = min(60.0, args.duration / 3)
        outcome = Outcome(
            stats,
            seconds,
            converged,
            diverged,
            sum((w.applied for w in writers), Counter()),
            [e for w in writers for e in w.errors],
            memory.first_and_last(window),
            len(memory.samples),
            live_items,
        )
    for client in clients:
        client.close()
    engine.dispose()
    return outcome


def converge(
    engine: Engine, clients: list[Client], scopes: list[SyncScope]
) -> tuple[int, list[str], int]:
    """Every client syncs every scope once more; it must hold exactly the live rows."""
    expected = {scope.key: live_rows(engine, scope) for scope in scopes}
    diverged: list[str] = []

    def finish(client: Client) -> None:
        for scope in scopes:
            if not client.sync(scope) or client.held[scope.key] != expected[scope.key]:
                diverged.append(f"client {id(client):x} {scope.key}")

    threads = [threading.Thread(target=finish, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    converged = sum(
        all(client.held.get(scope.key) == expected[scope.key] for scope in scopes)
        for client in clients
    )
    return converged, diverged, sum(len(rows) for rows in expected.values())


def memory_growth(outcome: Outcome) -> float:
    first, last = outcome.memory
    return last / first - 1


def print_report(outcome: Outcome, args: argparse.Namespace) -> None:
    stats = outcome.stats
    requests = sum(stats.statuses.values())
    ms = [value * 1000 for value in stats.latencies]
    first, last = outcome.memory
    print(
        f"{args.clients} clients, {args.writers} writers, {args.workers} workers, "
        f"{outcome.seconds:.0f} s of load"
    )
    print(
        f"requests {requests}, {requests / outcome.seconds:.1f}/s; statuses {dict(stats.statuses)}"
    )
    print(f"429 {stats.statuses[429]}, 503 {stats.statuses[503]} (retried after Retry-After)")
    print(
        f"latency ms p50 {percentile(ms, 0.5):.1f}, p95 {percentile(ms, 0.95):.1f}, "
        f"p99 {percentile(ms, 0.99):.1f}, max {max(ms):.1f}"
    )
    print(
        f"changesets applied {sum(outcome.writes.values())} {dict(outcome.writes)}, "
        f"writer errors {len(outcome.write_errors)}"
    )
    print(
        f"server RSS (all processes) first {first:.1f} MiB, last {last:.1f} MiB, "
        f"{memory_growth(outcome):+.1%} ({outcome.samples} samples)"
    )
    print(
        f"converged clients {outcome.converged}/{args.clients} "
        f"(each holds the {outcome.live_items} live items of the scopes)"
    )
    for line in stats.errors[:10] + outcome.write_errors[:10] + outcome.diverged[:10]:
        print(f"  {line}")


def passed(outcome: Outcome, args: argparse.Namespace, tracebacks: int) -> bool:
    """Only 200, 429 and 503 answers, every write applied, every client converged, memory
    flat, no traceback in the server's log."""
    unexpected = set(outcome.stats.statuses) - {200, 429, 503}
    return not (
        unexpected
        or outcome.diverged
        or outcome.write_errors
        or outcome.converged != args.clients
        or memory_growth(outcome) > args.max_rss_growth
        or tracebacks
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.25,
        help="fail when the server's memory at the end exceeds the start by more (0.25: 25%%)",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fieldsync-load-") as workdir,
        postgres_database() as url,
    ):
        outcome = run_load(args, url, Path(workdir))
        print_report(outcome, args)
        log = (Path(workdir) / "server.log").read_text(errors="replace")
        tracebacks = log.count("Traceback")
        print(f"server log: {tracebacks} tracebacks, {len(log.splitlines())} lines")
    return 0 if passed(outcome, args, tracebacks) else 1


if __name__ == "__main__":
    sys.exit(main())
