"""The five source documents' example queries, sent verbatim through the HTTP app.

Each example query is read from its seed file at test time (`tests/fixtures/seeds/*.txt`, copies
of the source documents kept in the repository) together with its documented response. Over
the seed world (`seed_world.py`, whose ids match the examples) every query must answer 200
without errors, in exactly the documented shape, with the documented page sizes, and a client
looping on it (sync-semantics.md §3) must end up holding exactly the live scope. Every request
runs on both execution paths (the fast path and graphql-core's standard execution), which must
answer alike.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, build_schema
from sqlalchemy import Engine

from fieldsync.api.schema import schema_sdl
from fieldsync.tokens import create_token
from tests import seed_world as sw
from tests.conftest import DEFAULT_BODY_LIMIT, InProcessServer, ServerClient

HASH_RE = re.compile(r"^[A-Za-z0-9+/]{16}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MARKER = "Try this example in GraphiQL"


SEEDS_DIR = Path(__file__).resolve().parent / "fixtures" / "seeds"
"""The five source documents, copied into the repository so a fresh clone tests itself."""


@dataclass(frozen=True)
class SeedExample:
    name: str
    """The query the page documents, e.g. sync_cogs (its first line)."""
    query: str
    """The example query, verbatim."""
    response: dict[str, Any]
    """The documented example response."""


def read_example(filename: str) -> SeedExample:
    path = SEEDS_DIR / filename
    if not path.is_file():
        pytest.fail(f"seed document {path} not found: it belongs in tests/fixtures/seeds")
    text = path.read_text(encoding="utf-8")
    name = text.splitlines()[0].strip()
    start = text.index(MARKER) + len(MARKER)
    response_start = re.compile(r"\{\s*\"data\"").search(text, start)
    assert response_start is not None, f"{filename}: no example response"
    query = text[start : response_start.start()].strip()
    response = json.loads(text[response_start.start() :])
    return SeedExample(name=name, query=query, response=response)


# -- the examples --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExampleSetup:
    filename: str
    bulk: dict[str, int]
    """Extra items that take the scope just past one page (page size + 5, less the items of
    the seed world itself)."""
    match_by: str
    """The key that pairs an example item with ours."""
    illustrative: frozenset[str]
    """Keys whose example values are illustrative (hashes, times the server sets, ids the
    source document does not keep consistent)."""
    deleted_item: str
    """The seed world's counterpart of the example's deleted entry."""
    deleted_extra: dict[str, Any] = field(default_factory=dict)


SETUPS = {
    "sync_cogs": ExampleSetup(
        "000_fb8f257dfcea45f6.txt",
        {"cogs": 1000 + 5 - 3},
        "sentera_id",
        frozenset({"content_hash", "updated_at"}),
        sw.COG_DELETED,
    ),
    "sync_mosaics": ExampleSetup(
        "001_df49a8616817336d.txt",
        {"mosaics": 2000 + 5 - 4},
        "sentera_id",
        frozenset({"content_hash", "updated_at", "updated_by", "survey"}),
        sw.MOSAIC_DELETED,
    ),
    "sync_images": ExampleSetup(
        "002_db504a33fe708494.txt",
        {"images": 1000 + 5 - 12},
        "sentera_id",
        frozenset({"content_hash", "updated_by"}),
        sw.IMAGE_DELETED,
    ),
    "sync_files": ExampleSetup(
        "003_5585cf481fe4c9aa.txt",
        {"files": 2000 + 5 - 5},
        "filename",
        frozenset({"sentera_id", "content_hash"}),
        sw.DELETED_FILE,
        {"filename": "example.prj"},
    ),
    "sync_flight_tasks": ExampleSetup(
        "004_86996660162003df.txt",
        {"flight_tasks": 2000 + 5 - 2},
        "sentera_id",
        frozenset({"content_hash"}),
        sw.TASK_DELETED,
    ),
}

MALFORMED_EXAMPLE_HASH = "n0VjjgvV44vx2/8"


# -- shapes --------------------------------------------------------------------------------


def _nullable_field_names() -> frozenset[str]:
    """Names of fields that are nullable on some object type of the served schema."""
    schema = build_schema(schema_sdl())
    names = set()
    for graphql_type in schema.type_map.values():
        if isinstance(graphql_type, GraphQLObjectType) and not graphql_type.name.startswith("__"):
            for name, graphql_field in graphql_type.fields.items():
                if not isinstance(graphql_field.type, GraphQLNonNull):
                    names.add(name)
    return frozenset(names)


NULLABLE = _nullable_field_names()


def shape_of(value: Any) -> Any:
    """The shape of a JSON value: keys of objects, element shapes of lists, scalar kinds.

    List elements merge into one shape; a null carries no shape (None)."""
    if isinstance(value, dict):
        return {"object": {key: shape_of(v) for key, v in value.items()}}
    if isinstance(value, list):
        element = None
        for item in value:
            element = merge(element, shape_of(item))
        return {"list": element}
    if value is None:
        return None
    if isinstance(value, bool):
        return {"scalar": "bool"}
    if isinstance(value, int | float):
        return {"scalar": "number"}
    return {"scalar": "string"}


def merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if "object" in a and "object" in b:
        keys = list(dict.fromkeys([*a["object"], *b["object"]]))
        return {"object": {key: merge(a["object"].get(key), b["object"].get(key)) for key in keys}}
    if "list" in a and "list" in b:
        return {"list": merge(a["list"], b["list"])}
    assert a == b, f"the example mixes shapes {a} and {b}"
    return a


def assert_shape(shape: Any, value: Any, path: str, *, opaque: frozenset[str]) -> None:
    """`value` has `shape`: the same keys at every level, the same kinds of scalars."""
    if shape is None:
        return
    if "object" in shape:
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        assert set(value) == set(shape["object"]), (
            f"{path}: keys {sorted(value)} != documented {sorted(shape['object'])}"
        )
        for key, sub in shape["object"].items():
            if key in opaque:
                continue
            if value[key] is None:
                assert key in NULLABLE or sub is None, f"{path}.{key} is null"
                continue
            assert_shape(sub, value[key], f"{path}.{key}", opaque=opaque)
    elif "list" in shape:
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        for index, item in enumerate(value):
            assert_shape(shape["list"], item, f"{path}[{index}]", opaque=opaque)
    elif shape["scalar"] == "bool":
        assert isinstance(value, bool), f"{path}: expected a boolean, got {value!r}"
    elif shape["scalar"] == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{path}: expected a number, got {value!r}"
        )
    else:
        assert isinstance(value, str), f"{path}: expected a string, got {value!r}"


def assert_documented_shape(example: SeedExample, body: dict[str, Any]) -> None:
    assert set(body) == {"data"}, body
    assert_shape(shape_of(example.response), body, "response", opaque=frozenset({"details"}))
    result = body["data"][example.name]
    assert type(result["remaining_count"]) is int
    assert result["remaining_count"] >= 0
    for item in [*result["upserted"], *result["deleted"]]:
        assert HASH_RE.match(item["content_hash"]), item
        for key in ("created_at", "updated_at"):
            if item.get(key) is not None:
                assert TIMESTAMP_RE.match(item[key]), item


# -- the client ----------------------------------------------------------------------------


def with_hashes(query: str, hashes: list[str]) -> str:
    """The example query with its `content_hashes` literal replaced (all else verbatim)."""
    literal = "content_hashes: [" + " ".join(json.dumps(h) for h in hashes) + "]"
    replaced, count = re.subn(r"content_hashes:\s*\[[^\]]*\]", lambda _m: literal, query)
    assert count == 1, query
    return replaced


def documented_hashes(query: str) -> list[str]:
    found = re.search(r"content_hashes:\s*\[([^\]]*)\]", query)
    assert found is not None
    return re.findall(r'"([^"]*)"', found.group(1))


def call(server: ServerClient, token: str, example: SeedExample, query: str) -> dict[str, Any]:
    response = server.post(query, token=token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    assert_documented_shape(example, body)
    result: dict[str, Any] = body["data"][example.name]
    return result


@dataclass
class Client:
    """A sync client: the items it holds by sentera_id, plus hashes it sends but never gets."""

    items: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def hashes(self) -> list[str]:
        return [*self.unknown, *self.items.values()]

    def apply(self, result: dict[str, Any]) -> None:
        for entry in result["deleted"]:
            assert self.items.get(entry["sentera_id"]) == entry["content_hash"], entry
            del self.items[entry["sentera_id"]]
        for entry in result["upserted"]:
            self.items[entry["sentera_id"]] = entry["content_hash"]


def candidates(client: Client, live: dict[str, str]) -> int:
    """Upsert candidates plus deleted candidates for what the client holds (§2)."""
    missing = sum(1 for sid, h in live.items() if client.items.get(sid) != h)
    gone = sum(1 for sid in client.items if sid not in live)
    return missing + gone


def sync_until_done(
    server: ServerClient, token: str, example: SeedExample, client: Client, live: dict[str, str]
) -> int:
    """Loop as the documents say until remaining_count is 0; the number of calls made."""
    page_size = sw.PAGE_SIZES[example.name]
    calls = 0
    while True:
        expected = candidates(client, live)
        result = call(server, token, example, with_hashes(example.query, client.hashes()))
        calls += 1
        size = len(result["deleted"]) + len(result["upserted"])
        assert size == min(page_size, expected), (size, expected)
        assert result["remaining_count"] == expected - size
        client.apply(result)
        if result["remaining_count"] == 0:
            return calls
        assert calls < 20, "the client loop does not converge"


# -- tests ---------------------------------------------------------------------------------


class BothPaths:
    """A `ServerClient` that sends every request to the app on the fast execution path and on
    graphql-core's standard one, over the same database: the two answers must be the same
    (status and body, byte for byte), and the test checks that answer. Both paths run every
    example without building its world twice."""

    def __init__(self, fast: InProcessServer, plain: InProcessServer) -> None:
        self.fast, self.plain = fast, plain
        self.url, self.http = fast.url, fast.http

    def post(
        self, query: str, variables: dict[str, object] | None = None, token: str | None = None
    ) -> httpx.Response:
        answer = self.fast.post(query, variables, token)
        plain = self.plain.post(query, variables, token)
        assert (answer.status_code, answer.content) == (plain.status_code, plain.content), query
        return answer


@pytest.fixture
def app_server(engine: Engine, database_url: str) -> Iterator[BothPaths]:
    servers = [
        InProcessServer(engine, database_url, DEFAULT_BODY_LIMIT, fast_path=fast_path)
        for fast_path in (True, False)
    ]
    yield BothPaths(*servers)
    for server in servers:
        server.stop()


@pytest.mark.parametrize("name", list(SETUPS))
def test_seed_query_is_extracted_verbatim(name: str) -> None:
    setup = SETUPS[name]
    example = read_example(setup.filename)
    assert example.name == name
    assert example.query.startswith("query ")
    assert f"{name}(" in example.query
    assert set(example.response["data"]) == {name}
    text = (SEEDS_DIR / setup.filename).read_text(encoding="utf-8")
    assert example.query in text


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETUPS))
def test_seed_example_verbatim_converges_and_reports_deletes(engine, app_server, name: str) -> None:
    setup = SETUPS[name]
    example = read_example(setup.filename)
    world = sw.build_seed_world(engine, **setup.bulk)
    token = create_token(engine, sw.READER)
    live = sw.current_hashes(engine, world.scopes[name])
    assert len(live) == len(world.scopes[name]) > sw.PAGE_SIZES[name]

    # The example, verbatim: its made-up hashes name nothing, so the first page is full of
    # upserts, the oldest first.
    result = call(app_server, token, example, example.query)
    page_size = sw.PAGE_SIZES[name]
    assert result["deleted"] == []
    assert len(result["upserted"]) == page_size
    assert result["remaining_count"] == len(live) - page_size
    assert len({item["sentera_id"] for item in result["upserted"]}) == page_size
    for item in result["upserted"]:
        assert live[item["sentera_id"]] == item["content_hash"]

    # The example's items come back with the example's values, in the example's order.
    documented = example.response["data"][name]["upserted"]
    ours = {item[setup.match_by]: item for item in result["upserted"]}
    positions = []
    for expected in documented:
        mine = ours.get(expected[setup.match_by])
        assert mine is not None, f"example item {expected[setup.match_by]} not in the first page"
        positions.append(result["upserted"].index(mine))
        for key, value in expected.items():
            if key not in setup.illustrative:
                assert mine[key] == value, (expected[setup.match_by], key, mine[key], value)
    assert positions == sorted(positions)

    failed = result.get("failed")
    if name == "sync_files":
        documented_failed = example.response["data"][name]["failed"]
        assert failed is not None
        assert documented_failed == [
            {
                "key": "invalid_object",
                "message": "Invalid owner",
                "details": {"owner_type": "FEATURE_SET", "sentera_id": sw.FEATURE_SET},
            }
        ]
        assert [f for f in failed if f["key"] == "invalid_object"] == documented_failed
        hash_errors = [f for f in failed if f["key"] == "invalid_content_hash"]
        assert len(hash_errors) == 1
        assert hash_errors[0]["details"] == {"content_hash": MALFORMED_EXAMPLE_HASH}
        assert hash_errors[0]["message"]
        assert len(failed) == 2
    else:
        assert failed is None

    # The same call again gives the same page: the server keeps no per-client state.
    again = call(app_server, token, example, example.query)
    assert again == result

    # The client loop, holding the example's made-up hashes throughout.
    client = Client(unknown=documented_hashes(example.query))
    calls = sync_until_done(app_server, token, example, client, live)
    assert calls == math.ceil(len(live) / page_size)
    assert client.items == live
    assert set(client.items) == world.scopes[name]

    # The client holds the hash of an item that is then deleted: `deleted` echoes exactly that
    # hash and sentera_id (and, for files, the filename through `... on File`).
    held = client.items[setup.deleted_item]
    world.delete(engine, setup.deleted_item)
    live = sw.current_hashes(engine, world.scopes[name])
    assert setup.deleted_item not in live and len(live) == len(client.items) - 1

    result = call(app_server, token, example, with_hashes(example.query, client.hashes()))
    assert result["deleted"] == [
        {"sentera_id": setup.deleted_item, "content_hash": held, **setup.deleted_extra}
    ]
    documented_deleted = example.response["data"][name]["deleted"]
    assert set(result["deleted"][0]) == set(documented_deleted[0])
    assert result["upserted"] == []
    assert result["remaining_count"] == 0

    # Asked again with the same hashes, the same answer; once dropped, nothing is left.
    again = call(app_server, token, example, with_hashes(example.query, client.hashes()))
    assert again == result
    client.apply(result)
    assert client.items == live
    done = call(app_server, token, example, with_hashes(example.query, client.hashes()))
    assert (done["deleted"], done["upserted"], done["remaining_count"]) == ([], [], 0)
