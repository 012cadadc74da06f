"""Schema-driven fuzzing of a live `/graphql` endpoint, shared by tests/test_fuzz.py and
bench/fuzz.py.

Queries come from schemathesis' GraphQL mode (valid documents, and invalid ones in its negative
mode) built from the shipped SDL. Some `*sentera_id` arguments are swapped for ids that exist in
the database, so the fuzzer reaches past "not found" into the resolvers. Every response must be
a well-formed GraphQL answer: no HTTP 5xx (but 503 with `Retry-After`), a JSON object with `data`
and/or `errors`, every error with an `extensions.code`, none `INTERNAL_SERVER_ERROR`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine, select

import fieldsync.api
from fieldsync.model.kinds import ALL_KINDS

SCHEMA_PATH = Path(fieldsync.api.__file__).with_name("schema.graphql")
IDS_PER_KIND = 8
REAL_ID_PROBABILITY = 0.7
_ID_ARGUMENT = re.compile(r'(\b\w*sentera_id\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d+)')


@dataclass(frozen=True, slots=True)
class Finding:
    """One response that broke the contract, with the request that produced it."""

    problem: str
    status: int
    query: str
    body: str
    features: str = "plain"

    @property
    def kind(self) -> str:
        """What distinct failures are grouped by: the HTTP status and the problem."""
        return f"HTTP {self.status}: {self.problem}"


@dataclass
class FuzzReport:
    """Counts and findings of one fuzzing run."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def record(self, status: int, finding: Finding | None) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if finding is not None:
            self.findings.append(finding)

    def distinct(self) -> dict[str, Finding]:
        """The first (shortest query kept) finding of each distinct kind."""
        first: dict[str, Finding] = {}
        for finding in self.findings:
            kept = first.get(finding.kind)
            if kept is None or len(finding.query) < len(kept.query):
                first[finding.kind] = finding
        return first

    def summary(self) -> str:
        lines = [
            f"{self.requests} requests, statuses {dict(sorted(self.statuses.items()))}, "
            f"{len(self.findings)} bad responses, {len(self.distinct())} distinct"
        ]
        by_features: dict[str, int] = {}
        for finding in self.findings:
            by_features[finding.features] = by_features.get(finding.features, 0) + 1
        if by_features:
            lines.append(f"bad responses by envelope: {dict(sorted(by_features.items()))}")
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        for kind, finding in sorted(self.distinct().items()):
            lines.append(
                f"- {kind}: {counts[kind]} times, e.g. ({finding.features})\n"
                f"  request: {finding.query!r}\n  body: {finding.body[:300]}"
            )
        return "\n".join(lines)


def load_schema() -> Any:
    """The schemathesis GraphQL schema of the shipped SDL."""
    return schemathesis.graphql.from_path(SCHEMA_PATH)


def query_strategy(schema: Any) -> st.SearchStrategy[str]:
    """Query documents of every root field, valid and (schemathesis' negative mode) invalid."""
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    return cases.map(lambda case: str(case.body))


def live_ids(engine: Engine, per_kind: int = IDS_PER_KIND) -> list[str]:
    """A few sentera_ids of every kind that are live in the database."""
    ids: list[str] = []
    with engine.connect() as conn:
        for kind in ALL_KINDS:
            table = kind.table
            rows = conn.execute(
                select(table.c.sentera_id)
                .where(table.c.deleted_at.is_(None))
                .order_by(table.c.id)
                .limit(per_kind)
            )
            ids.extend(str(sentera_id) for (sentera_id,) in rows)
    return ids


def with_real_ids(query: str, ids: Sequence[str], rng: random.Random) -> str:
    """Replace some `*sentera_id: …` argument values by real ids (any kind, on purpose)."""
    if not ids:
        return query

    def swap(match: re.Match[str]) -> str:
        if rng.random() >= REAL_ID_PROBABILITY:
            return match.group(0)
        return match.group(1) + json.dumps(rng.choice(ids))

    return _ID_ARGUMENT.sub(swap, query)


def contract_problem(status: int, text: str, retry_after: str | None = None) -> str | None:
    """Why a response breaks the GraphQL error contract, or None when it keeps it.

    A 503 with `Retry-After` is the documented answer to overload, not a server error."""
    if status >= 500 and not (status == 503 and retry_after):
        return "server error status"
    try:
        body = json.loads(text)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return "JSON without 'data' or 'errors'"
    errors = body.get("errors") or []
    if not isinstance(errors, list):
        return "'errors' is not a list"
    codes = [_code_of(error) for error in errors]
    if any(code is None for code in codes):
        return "error without extensions.code"
    if "INTERNAL_SERVER_ERROR" in codes:
        return "INTERNAL_SERVER_ERROR in the errors"
    if status == 200 and "data" not in body:
        return "HTTP 200 without 'data'"
    return None


def _code_of(error: Any) -> str | None:
    if not isinstance(error, dict):
        return None
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) and code else None


@dataclass(frozen=True, slots=True)
class Envelope:
    """How a generated query is wrapped into an HTTP request: mostly as clients do, sometimes
    with hostile extras (odd operation names, variables with lone surrogates, deep nesting)."""

    method: str = "POST"
    operation_name: str | None = None
    variables: Any = None
    nesting: int = 0
    id_variable: Any = None
    """When set, the query's first id argument is sent as variable `$id` with this value."""

    def prepare(self, query: str) -> tuple[str, Any]:
        """The query text and the variables to send with it."""
        if self.id_variable is None or not query.startswith("{"):
            return query, self.variables
        hoisted, count = _ID_ARGUMENT.subn(r"\1$id", query, count=1)
        if not count:
            return query, self.variables
        variables = dict(self.variables or {})
        variables["id"] = self.id_variable
        return "query Fuzz($id: ID!) " + hoisted, variables

    def request(self, url: str, query: str, headers: dict[str, str]) -> httpx.Request:
        query, variables = self.prepare(query)
        payload: dict[str, Any] = {"query": query}
        if self.operation_name is not None:
            payload["operationName"] = self.operation_name
        if variables is not None:
            payload["variables"] = variables
        if self.method == "GET":
            params = {
                key: value if isinstance(value, str) else json.dumps(value)
                for key, value in payload.items()
            }
            # Lone surrogates go out as the (invalid) UTF-8 bytes they would have.
            encoded = urlencode(params, encoding="utf-8", errors="surrogatepass")
            return httpx.Request("GET", f"{url}?{encoded}", headers=headers)
        body = json.dumps(payload)
        if self.nesting:
            body = body[:-1] + ', "extra": ' + "[" * self.nesting + "]" * self.nesting + "}"
        return httpx.Request(
            "POST", url, content=body.encode(), headers={**headers, **_JSON_CONTENT}
        )

    def features(self) -> str:
        """The hostile extras this envelope carries, e.g. "GET, nesting 100000"."""
        tags = [self.method] if self.method != "POST" else []
        if self.operation_name is not None:
            tags.append("operationName" + _surrogate_tag(self.operation_name))
        if self.variables is not None:
            tags.append("variables" + _surrogate_tag(self.variables))
        if self.id_variable is not None:
            tags.append("$id" + _surrogate_tag(self.id_variable))
        if self.nesting:
            tags.append(f"nesting {self.nesting}")
        return ", ".join(tags) or "plain"

    def describe(self, query: str) -> str:
        extras = {
            "method": self.method if self.method != "POST" else None,
            "operationName": self.operation_name,
            "variables": self.prepare(query)[1],
            "nesting": self.nesting or None,
        }
        shown = {key: value for key, value in extras.items() if value is not None}
        return f"{query} {json.dumps(shown)}" if shown else query


def _surrogate_tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " with a lone surrogate" if any("\ud800" <= c <= "\udfff" for c in text) else ""


_JSON_CONTENT = {"Content-Type": "application/json"}
# Any code point, lone surrogates included (json.dumps writes them as \ud800 escapes).
_ANY_TEXT = st.text(st.characters(codec=None), max_size=12) | st.sampled_from(
    ["\ud800", "a\udfff", "\x00", "\n", "AAAAAAAAAAAAAAAA\n"]
)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def envelope_strategy() -> st.SearchStrategy[Envelope]:
    """Plain POSTs most of the time, hostile envelopes the rest."""
    hostile = st.builds(
        Envelope,
        method=st.sampled_from(["POST", "GET"]),
        operation_name=st.none() | _ANY_TEXT,
        variables=st.none() | st.dictionaries(_ANY_TEXT, _JSON_VALUES, max_size=4),
        nesting=st.sampled_from([0, 0, 0, 50, 100_000]),
        id_variable=st.none() | _JSON_VALUES,
    )
    return st.one_of(st.just(Envelope()), st.just(Envelope()), hostile)


SURVEY_PLACEHOLDER = "SURVEY_ID"
_SURVEY = '{ survey(sentera_id: "SURVEY_ID") { sentera_id } }'
_FILES = (
    '{ sync_files(owners: [{owner_type: SURVEY, sentera_id: "SURVEY_ID"}], content_hashes: [])'
    " { failed { key details } } }"
)
_HASHES = (
    'query Hashes($hashes: [String!]!) { sync_images(survey_sentera_id: "SURVEY_ID", '
    "content_hashes: $hashes) { remaining_count failed { key details } } }"
)
SEEDS: tuple[tuple[str, Envelope], ...] = (
    (_SURVEY, Envelope()),
    (_SURVEY, Envelope(nesting=100_000)),
    (_SURVEY, Envelope(operation_name="\ud800")),
    (_SURVEY, Envelope(variables={"x": "\ud800"})),
    (_SURVEY, Envelope(id_variable="\ud800")),
    (_SURVEY, Envelope(id_variable=[[["x"]]])),
    (_SURVEY, Envelope(method="GET", operation_name="\ud800")),
    (_FILES, Envelope(id_variable="\ud800")),
    (_HASHES, Envelope(variables={"hashes": ["\ud800", "AAAAAAAAAAAAAAAA\n"]})),
)
"""Sent before the generated ones in every run: each hostile envelope, and lone surrogates
where the server echoes input back (owner ids, content hashes), whatever the generator draws."""


def seed_requests(ids: Sequence[str]) -> list[tuple[str, Envelope]]:
    """The seeds, aimed at a real survey when there is one."""
    survey = next((sentera_id for sentera_id in ids if "_CO_" in sentera_id), "none")
    return [(query.replace(SURVEY_PLACEHOLDER, survey), envelope) for query, envelope in SEEDS]


def send(
    client: httpx.Client, url: str, query: str, token: str | None, envelope: Envelope
) -> tuple[int, Finding | None]:
    """Send one query: the HTTP status (0 without an answer) and a Finding when the answer
    breaks the contract."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    described = envelope.describe(query)
    try:
        response = _send_once_more_if_dropped(client, envelope.request(url, query, headers))
    except httpx.HTTPError as exc:
        dropped = f"no response ({type(exc).__name__})"
        return 0, Finding(dropped, 0, described, str(exc), envelope.features())
    problem = contract_problem(
        response.status_code, response.text, response.headers.get("retry-after")
    )
    if problem is None:
        return response.status_code, None
    finding = Finding(problem, response.status_code, described, response.text, envelope.features())
    return response.status_code, finding


def _send_once_more_if_dropped(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send; when the connection breaks, once more on a new connection. The server may close
    a kept-alive connection after an error, which the previous request already recorded."""
    try:
        return client.send(request)
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
        with httpx.Client(timeout=client.timeout) as fresh:
            return fresh.send(request)


@dataclass(frozen=True, slots=True)
class FuzzTarget:
    """Where to send queries, as whom, and which ids exist there."""

    url: str
    token: str | None
    ids: Sequence[str]
    timeout: float = 60.0


def fuzz(
    target: FuzzTarget,
    report: FuzzReport,
    *,
    max_examples: int,
    seed: int | None = None,
    stop_at: float | None = None,
) -> None:
    """Send the seed envelopes and up to `max_examples` generated queries to the target,
    recording every answer.

    Failures are recorded, not raised, so one run lists every distinct failure (and Hypothesis
    spends no time shrinking). With `seed`, the run is the same every time; past `stop_at`
    (a `time.monotonic()` value) the remaining examples are skipped.
    """
    strategy = st.tuples(
        query_strategy(load_schema()), envelope_strategy(), st.randoms(use_true_random=False)
    )
    with httpx.Client(timeout=target.timeout) as client:

        def one(drawn: tuple[str, Envelope, random.Random]) -> None:
            if stop_at is not None and time.monotonic() > stop_at:
                return
            generated, envelope, rng = drawn
            query = with_real_ids(generated, target.ids, rng)
            report.record(*send(client, target.url, query, target.token, envelope))

        for query, envelope in seed_requests(target.ids):
            report.record(*send(client, target.url, query, target.token, envelope))
        _run_examples(one, strategy, max_examples=max_examples, seed=seed)


def _run_examples(
    check: Callable[[Any], None],
    strategy: st.SearchStrategy[Any],
    *,
    max_examples: int,
    seed: int | None,
) -> None:
    configured = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    test = configured(given(strategy)(check))
    if seed is not None:
        test = with_seed(seed)(test)
    test()


class ServerExceptions(logging.Handler):
    """Collects the exceptions an in-process server logs, by type and first message line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            key = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            self.seen[key] = self.seen.get(key, 0) + 1

    def __enter__(self) -> ServerExceptions:
        logging.getLogger("fieldsync").addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger("fieldsync").removeHandler(self)
