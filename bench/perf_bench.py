"""The sync hot path side by side: FieldSync, the least work ("limit") and stock graphql-core.

Builds sync_bench.py's world (a survey of 100,000 images, one of 2,000 mosaics) plus a survey
of 300 images, and serves it three ways, each over HTTP on a free loopback port with uvicorn
and Starlette:

* FieldSync: `fieldsync serve --rate-limit 0`;
* limit: a tiny Starlette app doing one SQL query for a page's rows (or one indexed scan of the
  scope's (hash, id) rows and a set difference) and `orjson.dumps` of the stored
  representations, cut to the fields the bench's documents ask for;
* stock: the served SDL executed by plain graphql-core (`graphql_sync`, default resolvers)
  over the same rows preloaded as dicts, no database.

Each case is checked first: limit and stock must answer FieldSync's `data`, or are left out of
that case. Then the contenders are timed interleaved (FieldSync, limit, stock, FieldSync, …)
and one table of medians and ratios is printed.

    .venv/bin/python bench/perf_bench.py --quick            # small sizes, SQLite
    .venv/bin/python bench/perf_bench.py                    # 100,000 images, SQLite
    .venv/bin/python bench/perf_bench.py \
        --database-url postgresql://postgres@127.0.0.1:5432/fieldsync_perf
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg
import uvicorn
from graphql import (
    FieldNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    graphql_sync,
    parse,
)
from sqlalchemy import Engine, make_url, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ops_support import ServeProcess, free_port

import fieldsync.api
from fieldsync.changeset import apply_changeset
from fieldsync.model import kinds as k
from fieldsync.model.kinds import EntityKind, SyncInfo
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine, normalize_url
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token
from load_test import _wait_healthy, image, percentile
from pull_bench import SYNC_IMAGES as DOCUMENTED_LOOP_QUERY
from sync_bench import (
    FIELD,
    IMAGE_SURVEY,
    IMAGES_BY_VARIABLE,
    MOSAIC_PAGE_QUERY,
    MOSAIC_SURVEY,
    SUFFIX,
    USER,
    build_world,
    images_inline,
)

SMALL_SURVEY = f"bnchsml_CO_{SUFFIX}"
SMALL_IMAGES = 300
SMALL_ID_OFFSET = 9_000_000  # the small survey's image ids, clear of sync_bench's
CLIENTS = 16
CONCURRENCY_ROUND_SECONDS = 5.0
RSS_SAMPLE_SECONDS = 0.005
SCHEMA_PATH = Path(fieldsync.api.__file__).parent / "schema.graphql"
KINDS = {"sync_images": k.IMAGE, "sync_mosaics": k.MOSAIC}
INLINE_SURVEY = re.compile(r'survey_sentera_id:\s*"([^"]*)"')
INLINE_HASHES = re.compile(r"content_hashes:\s*\[([^\]]*)\]")
STRING_LITERAL = re.compile(r'"([^"\\]*)"')


@dataclass(frozen=True)
class Sizes:
    images: int
    mosaics: int
    repetitions: int
    inline_repetitions: int
    loop_repetitions: int
    small_repetitions: int
    concurrency_seconds: float


FULL = Sizes(100_000, 2_000, 7, 3, 3, 500, 20.0)
QUICK = Sizes(10_000, 500, 3, 2, 1, 20, 5.0)


# -- the world ---------------------------------------------------------------------------------


def build_small_survey(engine: Engine) -> None:
    """A survey of 300 images for the small calls, unless it is there."""
    with engine.connect() as conn:
        present = conn.execute(
            select(t.surveys.c.id).where(t.surveys.c.sentera_id == SMALL_SURVEY)
        ).first()
    if present:
        return
    survey = {"sentera_id": SMALL_SURVEY, "field_sentera_id": FIELD, "name": "small"}
    images = [
        image(f"{SMALL_ID_OFFSET + n:07d}_IM_{SUFFIX}", SMALL_SURVEY, f"S_{n:04d}.jpg")
        for n in range(SMALL_IMAGES)
    ]
    apply_changeset(
        engine, {"actor_sentera_id": USER, "upsert": {"surveys": [survey], "images": images}}
    )


def prepare_world(database_url: str, sizes: Sizes) -> tuple[float, str]:
    """The world's load time (0 when reused) and a token of its user."""
    engine = make_engine(database_url)
    upgrade(engine)
    seconds = build_world(engine, sizes.images, sizes.mosaics)
    started = time.perf_counter()
    build_small_survey(engine)
    token = create_token(engine, USER)
    engine.dispose()
    return seconds + (time.perf_counter() - started if seconds else 0.0), token


@contextmanager
def postgres_database(database_url: str) -> Iterator[None]:
    """Create the PostgreSQL database of the URL for the run; drop it at the end."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise SystemExit("the PostgreSQL URL needs a database name, e.g. …/fieldsync_perf")
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.DuplicateDatabase:
        raise SystemExit(
            f"database {name} exists already; drop it (dropdb -h {url.host} -U {url.username} "
            f"{name}) or name another"
        ) from None
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL at {url.host}:{url.port}: {exc}") from None
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sync_info(kind: EntityKind) -> SyncInfo:
    assert kind.sync is not None, kind.name
    return kind.sync


# -- what a document asks for ------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One bench document as the limit serves it: the sync field, its arguments, the keys of
    its result and of each upserted item, in the document's order."""

    field_name: str
    kind: EntityKind
    survey_variable: str | None
    hashes_variable: str | None
    result_keys: tuple[str, ...]
    item_keys: tuple[str, ...]


def _selected_names(selection_set: SelectionSetNode | None) -> list[str]:
    names: list[str] = []
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            names.append(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names.extend(_selected_names(selection.selection_set))
    return names


def plan_of(document: str) -> Plan:
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    sync_field = operation.selection_set.selections[0]
    assert isinstance(sync_field, FieldNode) and sync_field.selection_set is not None
    variables = {
        argument.name.value: argument.value.name.value
        for argument in sync_field.arguments or ()
        if isinstance(argument.value, VariableNode)
    }
    upserted = next(
        node
        for node in sync_field.selection_set.selections
        if isinstance(node, FieldNode) and node.name.value == "upserted"
    )
    return Plan(
        sync_field.name.value,
        KINDS[sync_field.name.value],
        variables.get("survey_sentera_id"),
        variables.get("content_hashes"),
        tuple(_selected_names(sync_field.selection_set)),
        tuple(_selected_names(upserted.selection_set)),
    )


INLINE_PLAN = plan_of(images_inline([]))
PLANS = {
    doc: plan_of(doc) for doc in (MOSAIC_PAGE_QUERY, IMAGES_BY_VARIABLE, DOCUMENTED_LOOP_QUERY)
}


def encoded_hashes(raw: Sequence[bytes]) -> list[str]:
    """Each 12-byte hash as its 16 characters of base64, with one encoding call for all."""
    text = base64.b64encode(b"".join(raw)).decode("ascii")
    return [text[n : n + 16] for n in range(0, len(text), 16)]


def project(record: dict[str, Any], content_hash: str, plan: Plan) -> dict[str, Any]:
    type_name = sync_info(plan.kind).graphql_type
    special = {"content_hash": content_hash, "__typename": type_name}
    return {key: special[key] if key in special else record.get(key) for key in plan.item_keys}


def sync_result(plan: Plan, upserted: list[dict[str, Any]], remaining: int) -> bytes:
    values: dict[str, Any] = {
        "remaining_count": remaining,
        "upserted": upserted,
        "deleted": [],
        "failed": None,
    }
    result = {key: values[key] for key in plan.result_keys}
    return orjson.dumps({"data": {plan.field_name: result}})


# -- the limit: the least work that gives the same JSON ----------------------------------------


class Limit:
    """One SQL query for a first page; otherwise one scan of (hash, id) and a set difference,
    then the page's representations by id. It serves only what the bench sends: no token
    check, and a client must hold only live hashes (no deleted entries to compute)."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.postgres = self.engine.dialect.name == "postgresql"
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.surveys.c.sentera_id, t.surveys.c.id)).all()
        self.surveys = {sentera_id: survey_id for sentera_id, survey_id in rows}

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def answer(self, body: dict[str, Any]) -> bytes:
        query: str = body["query"]
        variables: dict[str, Any] = body.get("variables") or {}
        plan = PLANS.get(query)
        if plan is None:
            plan = INLINE_PLAN
            survey = INLINE_SURVEY.findall(query)[0]
            hashes = STRING_LITERAL.findall(INLINE_HASHES.findall(query)[0])
        else:
            survey = variables[plan.survey_variable or ""]
            hashes = variables[plan.hashes_variable or ""]
        with self.engine.connect() as conn:
            if hashes:
                return self._difference(conn, plan, self.surveys[survey], hashes)
            return self._first_page(conn, plan, self.surveys[survey])

    def _first_page(self, conn: Any, plan: Plan, survey_id: int) -> bytes:
        page_size = sync_info(plan.kind).page_size
        rows = conn.exec_driver_sql(
            self._sql(
                f"SELECT content_hash, representation, count(*) OVER () FROM {plan.kind.table} "
                "WHERE scope_type = 'SURVEY' AND scope_id = ? AND deleted_at IS NULL "
                "ORDER BY created_at, id LIMIT ?"
            ),
            (survey_id, page_size),
        ).all()
        hashes = encoded_hashes([row[0] for row in rows])
        upserted = [
            project(orjson.loads(row[1]), h, plan) for row, h in zip(rows, hashes, strict=True)
        ]
        total = rows[0][2] if rows else 0
        return sync_result(plan, upserted, total - len(upserted))

    def _difference(self, conn: Any, plan: Plan, survey_id: int, held: list[str]) -> bytes:
        page_size = sync_info(plan.kind).page_size
        live = conn.exec_driver_sql(
            self._sql(
                f"SELECT content_hash, id FROM {plan.kind.table} "
                "WHERE scope_type = 'SURVEY' AND scope_id = ? AND deleted_at IS NULL "
                "ORDER BY created_at, id"
            ),
            (survey_id,),
        ).all()
        held_set = set(held)
        hashes = encoded_hashes([row[0] for row in live])
        candidates = [row[1] for row, h in zip(live, hashes, strict=True) if h not in held_set]
        if len(live) - len(candidates) != len(held_set):
            raise ValueError("the client holds hashes of no live item: deleted entries are due")
        page = candidates[:page_size]
        upserted = [project(record, h, plan) for record, h in self._records(conn, plan, page)]
        return sync_result(plan, upserted, len(candidates) - len(upserted))

    def _records(self, conn: Any, plan: Plan, ids: list[int]) -> list[tuple[dict[str, Any], str]]:
        """The page's representations and hashes by id, in the order of `ids`."""
        if not ids:
            return []
        parameters: tuple[Any, ...]
        if self.postgres:
            where, parameters = "id = ANY(%s)", (ids,)
        else:
            where, parameters = f"id IN ({','.join('?' * len(ids))})", tuple(ids)
        rows = conn.exec_driver_sql(
            f"SELECT id, content_hash, representation FROM {plan.kind.table} WHERE {where}",
            parameters,
        ).all()
        hashes = encoded_hashes([row[1] for row in rows])
        by_id = {row[0]: (row[2], h) for row, h in zip(rows, hashes, strict=True)}
        return [(orjson.loads(by_id[i][0]), by_id[i][1]) for i in ids]


# -- stock: plain graphql-core over rows preloaded as dicts ------------------------------------


class Stock:
    """The served SDL and graphql-core's default resolvers; the sync fields are callables of
    the root value over every survey's live items, read once at start."""

    def __init__(self, database_url: str) -> None:
        self.schema: GraphQLSchema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
        engine = make_engine(database_url)
        with engine.connect() as conn:
            surveys = dict(conn.execute(select(t.surveys.c.id, t.surveys.c.sentera_id)).all())
            self.items = {name: self._load(conn, kind, surveys) for name, kind in KINDS.items()}
        engine.dispose()
        self.root = {name: self._resolver(name) for name in KINDS}

    @staticmethod
    def _load(
        conn: Any, kind: EntityKind, surveys: dict[int, str]
    ) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        table = kind.table
        rows = conn.execute(
            select(table.c.scope_id, table.c.content_hash, table.c.representation)
            .where(table.c.scope_type == "SURVEY", table.c.deleted_at.is_(None))
            .order_by(table.c.scope_id, table.c.created_at, table.c.id)
        ).all()
        by_survey: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        type_name = sync_info(kind).graphql_type
        for row, content_hash in zip(rows, encoded_hashes([row[1] for row in rows]), strict=True):
            record = orjson.loads(row[2])
            record["content_hash"] = content_hash
            record["__typename"] = type_name
            by_survey.setdefault(surveys[row[0]], []).append((content_hash, record))
        return by_survey

    def _resolver(self, name: str) -> Callable[..., dict[str, Any]]:
        page_size = sync_info(KINDS[name]).page_size

        def resolve(
            _info: Any, survey_sentera_id: str, content_hashes: list[str]
        ) -> dict[str, Any]:
            held = set(content_hashes)
            items = self.items[name].get(survey_sentera_id, [])
            candidates = [record for h, record in items if h not in held]
            upserted = candidates[:page_size]
            remaining = len(candidates) - len(upserted)
            return {"upserted": upserted, "deleted": [], "remaining_count": remaining}

        return resolve

    def answer(self, body: dict[str, Any]) -> bytes:
        result = graphql_sync(
            self.schema,
            body["query"],
            root_value=self.root,
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        response: dict[str, Any] = {"data": result.data}
        if result.errors:
            response["errors"] = [error.formatted for error in result.errors]
        return orjson.dumps(response)


def contender_app(answer: Callable[[dict[str, Any]], bytes]) -> Starlette:
    async def graphql(request: Request) -> Response:
        body = orjson.loads(await request.body())
        content = await run_in_threadpool(answer, body)
        return Response(content, media_type="application/json")

    async def healthz(_request: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)]
    )


def serve_contender(name: str, database_url: str, port: int) -> None:
    answerer = Limit(database_url) if name == "limit" else Stock(database_url)
    uvicorn.run(
        contender_app(answerer.answer),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


class ContenderProcess:
    """The limit or the stock server: this script in a subprocess of its own."""

    def __init__(self, name: str, database_url: str, scratch: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = scratch / f"{name}.log"
        command = [sys.executable, __file__, "--serve-contender", name, "--port", str(self.port)]
        command += ["--database-url", database_url]
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _wait_healthy(self.base + "/healthz", self.process)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the contenders as the bench's client sees them --------------------------------------------


@dataclass
class Contender:
    name: str
    base: str
    token: str
    pid: int
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = self.client()

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=600)

    def post(self, body: bytes, http: httpx.Client | None = None) -> bytes:
        response = (http or self.http).post("/graphql", content=body)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status_code}: {response.text[:300]}")
        return response.content


def request_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables} if variables else {"query": query})


def data_of(content: bytes) -> Any:
    body = orjson.loads(content)
    if body.get("errors"):
        raise RuntimeError(f"errors: {orjson.dumps(body['errors'])[:300]!r}")
    return body["data"]


class PeakRss:
    """The largest resident set of a process and its children while the block runs."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        total = 0
        for process in [self.root, *self.root.children(recursive=True)]:
            with suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the cases -------------------------------------------------------------------------------


@dataclass
class Case:
    """One measured unit (`run`, returning the answer's data) and how often to time it."""

    label: str
    run: Callable[[Contender], Any]
    repetitions: int
    unit: str = "ms"
    note: str = ""
    body: bytes = b""


def one_call(label: str, body: bytes, repetitions: int, note: str = "") -> Case:
    return Case(
        label, lambda contender: data_of(contender.post(body)), repetitions, note=note, body=body
    )


def documented_loop(survey: str) -> Callable[[Contender], Any]:
    """The loop of docs/sync.md until remaining_count is 0: every hash held, and the number
    of items of each page."""

    def run(contender: Contender) -> Any:
        held: dict[str, str] = {}
        pages = []
        while True:
            variables = {"survey_sentera_id": survey, "content_hashes": list(held.values())}
            page = data_of(contender.post(request_body(DOCUMENTED_LOOP_QUERY, variables)))
            result = page["sync_images"]
            for item in result["upserted"]:
                held[item["sentera_id"]] = item["content_hash"]
            pages.append(len(result["upserted"]))
            if result["remaining_count"] == 0:
                return {"held": held, "pages": pages}

    return run


def live_hashes(database_url: str, survey: str) -> list[str]:
    """The current hashes of a survey's live images, as a client that synced holds them."""
    images, surveys = t.images, t.surveys
    engine = make_engine(database_url)
    with engine.connect() as conn:
        raw = conn.scalars(
            select(images.c.content_hash)
            .join(surveys, surveys.c.id == images.c.scope_id)
            .where(
                images.c.scope_type == "SURVEY",
                surveys.c.sentera_id == survey,
                images.c.deleted_at.is_(None),
            )
        ).all()
    engine.dispose()
    return encoded_hashes(raw)


Samples = dict[str, list[float]]


def checked(case: Case, contenders: list[Contender]) -> tuple[list[Contender], Samples]:
    """The contenders whose answer is FieldSync's (the first contender's), loudly; this first
    round, in turns like the others, gives each kept contender its first sample."""
    samples: Samples = {}
    started = time.perf_counter()
    expected = case.run(contenders[0])
    samples[contenders[0].name] = [time.perf_counter() - started]
    kept = [contenders[0]]
    for contender in contenders[1:]:
        started = time.perf_counter()
        try:
            answer = case.run(contender)
        except (RuntimeError, httpx.HTTPError, KeyError) as exc:
            print(f"!!! MISMATCH in {case.label!r}: {contender.name} failed: {exc}", flush=True)
            continue
        elapsed = time.perf_counter() - started
        if answer != expected:
            print(
                f"!!! MISMATCH in {case.label!r}: {contender.name}'s data differs from "
                f"FieldSync's; left out of this case",
                flush=True,
            )
            continue
        kept.append(contender)
        samples[contender.name] = [elapsed]
    return kept, samples


def interleaved(case: Case, contenders: list[Contender], samples: Samples) -> dict[str, float]:
    """Median seconds of each contender over `case.repetitions` rounds in turns, the rounds
    already in `samples` included."""
    for _ in range(case.repetitions - 1):
        for contender in contenders:
            started = time.perf_counter()
            case.run(contender)
            samples[contender.name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_with_rss(
    case: Case, contenders: list[Contender], samples: Samples, fieldsync_pid: int
) -> tuple[dict[str, float], str]:
    """`interleaved`, and a note of the FieldSync server's peak RSS while it runs."""
    rss = PeakRss(fieldsync_pid)
    before = rss.current()
    with rss:
        medians = interleaved(case, contenders, samples)
    note = (
        f"FieldSync server peak RSS, {case.label}: {rss.peak / 2**20:,.0f} MiB "
        f"({before / 2**20:,.0f} MiB before; request body {len(case.body) / 2**20:.1f} MiB)"
    )
    return medians, note


@dataclass
class Throughput:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def hammer(contender: Contender, body: bytes, seconds: float, into: Throughput) -> None:
    """CLIENTS threads, each with its own connection, sending `body` for `seconds`."""
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with contender.client() as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    contender.post(body, http)
                except (RuntimeError, httpx.HTTPError):
                    with lock:
                        into.failures += 1
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    into.requests += 1
                    into.latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    into.seconds += time.monotonic() - started


def concurrency(
    contenders: list[Contender], body: bytes, total_seconds: float
) -> dict[str, Throughput]:
    rounds = max(1, round(total_seconds / CONCURRENCY_ROUND_SECONDS))
    results = {c.name: Throughput() for c in contenders}
    for _ in range(rounds):
        for contender in contenders:
            hammer(contender, body, total_seconds / rounds, results[contender.name])
    return results


# -- the run and its table ---------------------------------------------------------------------

NAMES = ("FieldSync", "limit", "stock")


@dataclass
class Row:
    label: str
    values: dict[str, str]
    ratios: dict[str, str]
    note: str


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def row_of(case: Case, medians: dict[str, float]) -> Row:
    scale = 1000.0 if case.unit == "ms" else 1.0
    values = {name: f"{medians[name] * scale:,.1f}" if name in medians else "-" for name in NAMES}
    own = medians.get("FieldSync")
    ratios = {
        "limit": _ratio(own, medians.get("limit")),
        "stock": _ratio(own, medians.get("stock")),
    }
    return Row(f"{case.label} ({case.unit})", values, ratios, case.note)


def throughput_row(label: str, results: dict[str, Throughput]) -> Row:
    def cell(name: str) -> str:
        if name not in results:
            return "-"
        run = results[name]
        p99 = percentile(run.latencies, 0.99) * 1000 if run.latencies else float("nan")
        failed = f", {run.failures} failed" if run.failures else ""
        return f"{run.per_second:,.0f}/s p99 {p99:,.0f}{failed}"

    own = results["FieldSync"].per_second
    ratios = {
        name: _ratio(own, results[name].per_second) if name in results else "-"
        for name in ("limit", "stock")
    }
    return Row(label, {name: cell(name) for name in NAMES}, ratios, "req/s; p99 in ms")


def print_table(rows: list[Row], backend: str) -> None:
    header = ["case", *NAMES, "FieldSync/limit", "FieldSync/stock", "notes"]
    table = [header] + [
        [r.label, *(r.values[n] for n in NAMES), r.ratios["limit"], r.ratios["stock"], r.note]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print(f"\n{backend}: medians, contenders timed in turns")
    for n, line in enumerate(table):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:-1], strict=True)
        ]
        print("  ".join([*cells, line[-1]]))
        if n == 0:
            print("  ".join("-" * width for width in widths))


@dataclass
class Bodies:
    """The request bodies of the cases, and what the client holds in them."""

    held: list[str]
    small: list[str]
    mosaic: bytes
    variable: bytes
    inline: bytes
    small_call: bytes


def bodies_of(database_url: str) -> Bodies:
    held = live_hashes(database_url, IMAGE_SURVEY)
    small = live_hashes(database_url, SMALL_SURVEY)
    return Bodies(
        held,
        small,
        request_body(MOSAIC_PAGE_QUERY, {"survey": MOSAIC_SURVEY, "hashes": []}),
        request_body(IMAGES_BY_VARIABLE, {"survey": IMAGE_SURVEY, "hashes": held}),
        request_body(images_inline(held)),
        request_body(IMAGES_BY_VARIABLE, {"survey": SMALL_SURVEY, "hashes": small}),
    )


def cases_of(bodies: Bodies, sizes: Sizes, page_bytes: int) -> list[Case]:
    """Cases 1 to 5 (the sixth, concurrency, reuses the fifth's body)."""
    n = len(bodies.held)
    return [
        one_call(
            f"first page of {sizes.mosaics:,} mosaics, seed example's fields",
            bodies.mosaic,
            sizes.repetitions,
            note=f"response {page_bytes / 1e6:.2f} MB",
        ),
        one_call(
            f"no-change call, {n:,} hashes as a variable",
            bodies.variable,
            sizes.repetitions,
            note=f"request {len(bodies.variable) / 1e6:.2f} MB",
        ),
        one_call(
            f"the same, {n:,} hashes inline",
            bodies.inline,
            sizes.inline_repetitions,
            note=f"request {len(bodies.inline) / 1e6:.2f} MB",
        ),
        Case(
            f"initial sync of {n:,} images, documented loop",
            documented_loop(IMAGE_SURVEY),
            sizes.loop_repetitions,
            unit="s",
            note=f"{-(-n // sync_info(k.IMAGE).page_size)} calls",
        ),
        one_call(
            f"small no-change call ({len(bodies.small)} held), one at a time",
            bodies.small_call,
            sizes.small_repetitions,
        ),
    ]


def measure_cases(
    contenders: list[Contender], sizes: Sizes, database_url: str
) -> tuple[list[Row], list[str]]:
    fieldsync = contenders[0]
    bodies = bodies_of(database_url)
    page_bytes = len(fieldsync.post(bodies.mosaic))
    cases = cases_of(bodies, sizes, page_bytes)
    rows: list[Row] = []
    notes: list[str] = []
    for case in cases:
        print(f"... {case.label}", flush=True)
        kept, samples = checked(case, contenders)
        if case.body in (bodies.variable, bodies.inline):
            medians, note = interleaved_with_rss(case, kept, samples, fieldsync.pid)
            notes.append(note)
        else:
            medians = interleaved(case, kept, samples)
        rows.append(row_of(case, medians))
    label = f"{CLIENTS} concurrent clients, small calls, {sizes.concurrency_seconds:.0f} s"
    print(f"... {label}", flush=True)
    kept, _ = checked(cases[-1], contenders)
    rows.append(
        throughput_row(label, concurrency(kept, bodies.small_call, sizes.concurrency_seconds))
    )
    return rows, notes


def run(database_url: str, sizes: Sizes, scratch: Path) -> None:
    load_seconds, token = prepare_world(database_url, sizes)
    backend = normalize_url(database_url).get_backend_name()
    print(
        f"world on {backend}: " + (f"loaded in {load_seconds:.1f} s" if load_seconds else "reused")
    )
    fieldsync = ServeProcess(scratch, database_url, "--rate-limit", "0")
    others = [ContenderProcess(name, database_url, scratch) for name in ("limit", "stock")]
    try:
        contenders = [Contender("FieldSync", fieldsync.base, token, fieldsync.process.pid)]
        contenders += [
            Contender(name, other.base, token, other.process.pid)
            for name, other in zip(("limit", "stock"), others, strict=True)
        ]
        rows, notes = measure_cases(contenders, sizes, database_url)
    finally:
        fieldsync.stop()
        for other in others:
            other.stop()
    print_table(rows, backend)
    for note in notes:
        print(note)
    for name, log in [
        ("FieldSync", fieldsync.stderr()),
        *((o.log.name, o.stderr()) for o in others),
    ]:
        if "Traceback" in log:
            print(f"{name} server log has {log.count('Traceback')} tracebacks")
    print("command: " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="PostgreSQL URL of a database to create and drop")
    parser.add_argument("--quick", action="store_true", help="10,000 images, 500 mosaics, 5 s")
    parser.add_argument("--serve-contender", choices=("limit", "stock"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_contender:
        serve_contender(args.serve_contender, args.database_url, args.port)
        return
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="fieldsync-perf-") as scratch:
        if args.database_url is None:
            run(f"sqlite:///{scratch}/fieldsync.db", sizes, Path(scratch))
        elif normalize_url(args.database_url).get_backend_name() != "postgresql":
            parser.error("--database-url takes a PostgreSQL URL; SQLite is the default")
        else:
            with postgres_database(args.database_url):
                run(args.database_url, sizes, Path(scratch))


if __name__ == "__main__":
    main()
