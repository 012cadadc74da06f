"""The client SDK: its documents against the schema, retries and back-off against a scripted
HTTP server, and the typed calls against a real FieldSync server."""

from __future__ import annotations

import ast
import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema, parse, validate
from sqlalchemy import Engine

from fieldsync.client import (
    AuthenticationError,
    FieldSyncClient,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    ServerBusyError,
    ServerUnreachableError,
    Transport,
    queries,
)
from fieldsync.client.transport import graphql_endpoint
from fieldsync.tokens import create_token
from tests.builder import World, build_world
from tests.conftest import LiveServer
from tests.ops_support import free_port

SRC = Path(__file__).resolve().parents[1] / "src" / "fieldsync"
SERVER_PACKAGES = {"storage", "api", "write", "sync", "model", "changeset", "blobs"}


# -- documents and boundaries ----------------------------------------------------------------


def client_documents() -> list[str]:
    documents = [
        queries.ORGANIZATIONS,
        queries.ME,
        queries.CREATE_UPLOAD,
        queries.CREATE_MULTIPART_UPLOAD,
        queries.PREPARE_PART,
        queries.COMPLETE_MULTIPART_UPLOAD,
    ]
    for kind in queries.KINDS.values():
        documents += [kind.sync_document, kind.upsert_document, kind.delete_document]
    return documents


@pytest.mark.parametrize("document", client_documents(), ids=lambda d: d.split("(")[0].strip())
def test_every_client_document_is_valid_against_the_schema(document: str) -> None:
    schema = build_schema((SRC / "api" / "schema.graphql").read_text(encoding="utf-8"))
    assert validate(schema, parse(document)) == []


def test_the_client_imports_nothing_of_the_server() -> None:
    """Statically (every import of client/ and cli/client.py) and at run time."""
    sources = [*sorted((SRC / "client").glob("*.py")), SRC / "cli" / "client.py"]
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                parts = name.split(".")
                assert not (
                    parts[0] == "fieldsync" and len(parts) > 1 and parts[1] in SERVER_PACKAGES
                ), f"{source.name} imports {name}"
    modules = [f"fieldsync.client.{p.stem}" for p in sorted((SRC / "client").glob("*.py"))]
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys; import {', '.join(modules)}; "
         "print(' '.join(sorted(m for m in sys.modules if m.startswith('fieldsync.'))))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {m.split(".")[1] for m in loaded} == {"client"}


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/graphql"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/graphql"),
        ("https://sync.example.org/graphql", "https://sync.example.org/graphql"),
        ("https://example.org/fieldsync/", "https://example.org/fieldsync/graphql"),
    ],
)
def test_a_server_is_given_by_its_address_or_its_graphql_url(given: str, endpoint: str) -> None:
    assert graphql_endpoint(given) == endpoint


def test_a_server_that_is_no_url_is_refused_with_an_example() -> None:
    with pytest.raises(Exception, match="'localhost:8000' is not a server URL: give one like"):
        graphql_endpoint("localhost:8000")


# -- retries, against a scripted server --------------------------------------------------------


class Scripted:
    """A real HTTP server on loopback answering POSTs from a script of (status, headers,
    body); it records what it received."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.received: list[dict[str, Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding")
                plain = gzip.decompress(body) if encoding == "gzip" else body
                scripted.received.append(
                    {"encoding": encoding, "size": len(body), "payload": json.loads(plain),
                     "authorization": self.headers.get("Authorization")}
                )  # fmt: skip
                status, headers, answer = scripted.script.pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def transport(self, **options: Any) -> tuple[Transport, list[float]]:
        slept: list[float] = []
        return Transport(self.url, "fst_token", sleep=slept.append, **options), slept

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[Scripted]:
    server = Scripted(request.param)
    yield server
    server.stop()


Answer = tuple[int, dict[str, str], dict[str, Any]]
OK: Answer = (200, {}, {"data": {"me": {"sentera_id": "u"}}})
BUSY: Answer = (
    503,
    {"Retry-After": "1"},
    {"errors": [{"message": "busy", "extensions": {"code": "WRITER_BUSY"}}]},
)
LIMITED: Answer = (
    429,
    {"Retry-After": "7"},
    {"errors": [{"message": "slow down", "extensions": {"code": "RATE_LIMITED"}}]},
)
BROKEN: Answer = (500, {}, {"errors": [{"message": "Internal server error"}]})


@pytest.mark.parametrize("scripted", [[BROKEN, LIMITED, BUSY, OK]], indirect=True)
def test_a_query_is_retried_on_5xx_and_429_honouring_retry_after(scripted: Scripted) -> None:
    transport, slept = scripted.transport()
    assert transport.execute(queries.ME, {}) == {"me": {"sentera_id": "u"}}
    assert len(scripted.received) == 4
    assert 0.25 <= slept[0] <= 0.5, "the first back-off: half to all of base_delay"
    assert 7 <= slept[1] <= 7.5 and 1 <= slept[2] <= 1.5, "Retry-After, plus jitter"


@pytest.mark.parametrize("scripted", [[BROKEN, OK]], indirect=True)
def test_a_mutation_is_not_sent_twice_after_a_500(scripted: Scripted) -> None:
    """It may have written: sending it again could create its items twice."""
    transport, slept = scripted.transport()
    with pytest.raises(ServerBusyError, match="the server answered HTTP 500"):
        transport.execute("mutation { x }", {}, idempotent=False)
    assert len(scripted.received) == 1 and slept == []


@pytest.mark.parametrize("scripted", [[BUSY, OK]], indirect=True)
def test_a_mutation_refused_before_any_work_is_retried(scripted: Scripted) -> None:
    transport, slept = scripted.transport()
    transport.execute("mutation { x }", {}, idempotent=False)
    assert len(scripted.received) == 2 and len(slept) == 1


@pytest.mark.parametrize("scripted", [[BROKEN] * 3], indirect=True)
def test_retries_end_with_an_error_that_says_what_to_do(scripted: Scripted) -> None:
    transport, slept = scripted.transport(retry=RetryPolicy(attempts=3))
    with pytest.raises(ServerBusyError, match="HTTP 500: Internal server error; try again later"):
        transport.execute(queries.ME, {})
    assert len(slept) == 2 and slept[1] >= 0.5, "back-off doubles"


@pytest.mark.parametrize(
    "scripted",
    [
        [
            (
                401,
                {},
                {
                    "errors": [
                        {"message": "Invalid token", "extensions": {"code": "UNAUTHENTICATED"}}
                    ]
                },
            )
        ]
    ],
    indirect=True,
)
def test_a_refused_token_is_not_retried(scripted: Scripted) -> None:
    transport, slept = scripted.transport()
    with pytest.raises(
        AuthenticationError, match=r"refused the token \(Invalid token\): check --token"
    ):
        transport.execute(queries.ME, {})
    assert slept == [] and scripted.received[0]["authorization"] == "Bearer fst_token"


@pytest.mark.parametrize("scripted", [[OK, OK]], indirect=True)
def test_large_bodies_go_gzip_compressed(scripted: Scripted) -> None:
    transport, _ = scripted.transport()
    hashes = [f"{n:016d}" for n in range(5_000)]
    transport.execute(queries.ME, {"content_hashes": hashes})
    transport.execute(queries.ME, {})
    big, small = scripted.received
    assert big["encoding"] == "gzip" and big["payload"]["variables"]["content_hashes"] == hashes
    assert big["size"] < len(json.dumps(big["payload"])) / 3
    assert small["encoding"] is None


def test_an_unreachable_server_is_tried_again_then_named() -> None:
    slept: list[float] = []
    transport = Transport(f"http://127.0.0.1:{free_port()}", "t", sleep=slept.append)
    unreachable = r"cannot reach http://127\.0\.0\.1:\d+/graphql: "
    with pytest.raises(ServerUnreachableError, match=unreachable):
        transport.execute(queries.ME, {})
    assert len(slept) == RetryPolicy().attempts - 1
    assert sum(slept) >= 7.75, "the waits span a server restart"


# -- typed calls against a real server --------------------------------------------------------


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def client(live_server: LiveServer, world: World) -> Iterator[FieldSyncClient]:
    token = create_token(live_server.engine, world.user)
    with FieldSyncClient(live_server.url, token) as sdk:
        yield sdk


def test_the_loop_holds_what_the_server_holds(client: FieldSyncClient, world: World) -> None:
    held: dict[str, Any] = {}
    totals = client.sync_images(world.survey, held)
    assert set(held) == {world.image, world.image2} and totals.upserted == 2
    assert client.sync_images(world.survey, held).upserted == 0
    assert not client.delete_images(world.survey, [world.image]).failed
    totals = client.sync_images(world.survey, held)
    assert set(held) == {world.image2} and totals.deleted == 1


def test_writes_report_each_refused_item(client: FieldSyncClient, world: World) -> None:
    result = client.upsert_fields(world.org, [{"name": "North"}, {"name": "Bad", "latitude": 91}])
    assert [item["name"] for item in result.succeeded] == ["North"]
    (failure,) = result.failed
    assert failure.index == 1
    assert failure.message == "latitude: must be less than or equal to 90"


def test_a_scope_that_is_not_readable_raises_not_found(client: FieldSyncClient) -> None:
    with pytest.raises(NotFoundError, match=r"^survey 'zzzzzzz_CO_Nobody_\w+' not found$"):
        client.sync_images("zzzzzzz_CO_Nobody_CV_test_abc123_240101_000000", {})


def test_a_bad_value_raises_invalid_request(client: FieldSyncClient, world: World) -> None:
    with pytest.raises(InvalidRequestError):
        client.upsert_fields(world.org, [{"name": "X", "latitude": "north"}])


def test_the_client_commands_start_without_the_server_code() -> None:
    """`fieldsync pull` loads neither SQLAlchemy nor the server's packages (a second saved
    on every run); `fieldsync serve` still finds its command."""
    probe = (
        "import sys\n"
        "from fieldsync.cli import main\n"
        "for name in ('pull', 'mirror', 'upload-images'):\n"
        "    main.get_command(None, name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'starlette'}),\n"
        "      sorted({m for m in sys.modules if m.startswith('fieldsync.')"
        " and m.split('.')[1] not in ('cli', 'client')}))\n"
        "print(main.get_command(None, 'serve').name)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert shown == "[] []\nserve\n"
