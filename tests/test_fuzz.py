"""Schema-driven fuzzing of a live server: whatever a client sends, no server error.

schemathesis generates queries of every root field (valid, and invalid in its negative mode)
from the shipped SDL; they are sent over HTTP to a real server holding a small world, with the
world's user's token and without one. Each run is seeded, so it sends the same queries every
time. The longer run by hand is bench/fuzz.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token, revoke_token
from tests.conftest import LiveServer, PostgresDatabases
from tests.fuzzing import (
    SEEDS,
    FuzzReport,
    FuzzTarget,
    ServerExceptions,
    contract_problem,
    fuzz,
    live_ids,
)
from tests.worlds import World, build_world

EXAMPLES_WITH_TOKEN = 600
EXAMPLES_WITHOUT_TOKEN = 80
SEED = 20240601
UNAUTHENTICATED_STATUSES = {400, 401}  # a body that cannot be read is refused before the token


@dataclass(frozen=True)
class FuzzServer:
    server: LiveServer
    world: World
    token: str
    ids: list[str]


def _serve_world(engine: Engine, database_url: str) -> Iterator[FuzzServer]:
    upgrade(engine)
    world = build_world(engine)
    token = create_token(engine, world.user)
    # No rate limit: every generated request must reach the parser and the resolvers.
    server = LiveServer(engine, database_url, max_body_bytes=32 * 1024 * 1024, rate_limit=0)
    try:
        yield FuzzServer(server, world, token, live_ids(engine))
    finally:
        server.stop()
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzServer]:
    """One live server per backend for the whole module, over a small world."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/fieldsync.db"
        yield from _serve_world(make_engine(url), url)
        return
    databases = PostgresDatabases(request.getfixturevalue("postgres_admin"), "fieldsync_fuzz")
    try:
        url = databases.create()
        yield from _serve_world(make_engine(url), url)
    finally:
        databases.drop_all()


def _fuzz(target: FuzzTarget, max_examples: int) -> FuzzReport:
    """Fuzz the target; fail listing every distinct bad response and server exception."""
    report = FuzzReport()
    with ServerExceptions() as exceptions:
        fuzz(target, report, max_examples=max_examples, seed=SEED)
    assert report.requests == len(SEEDS) + max_examples
    assert not report.findings and not exceptions.seen, (
        f"{report.summary()}\nserver exceptions: {exceptions.seen}"
    )
    return report


@pytest.mark.slow
def test_fuzz_with_token(fuzz_server: FuzzServer) -> None:
    target = FuzzTarget(fuzz_server.server.url, fuzz_server.token, fuzz_server.ids)
    report = _fuzz(target, EXAMPLES_WITH_TOKEN)
    # The world's ids reached the resolvers: some queries were answered with data.
    assert report.statuses.get(200, 0) > 0, report.summary()


@pytest.mark.slow
def test_fuzz_without_token(fuzz_server: FuzzServer) -> None:
    target = FuzzTarget(fuzz_server.server.url, None, fuzz_server.ids)
    report = _fuzz(target, EXAMPLES_WITHOUT_TOKEN)
    assert set(report.statuses) <= UNAUTHENTICATED_STATUSES, report.summary()
    assert report.statuses.get(401, 0) > 0, report.summary()


@pytest.mark.slow
def test_fuzz_with_revoked_token(fuzz_server: FuzzServer) -> None:
    engine = fuzz_server.server.engine
    token = create_token(engine, fuzz_server.world.user)
    revoke_token(engine, token)
    report = _fuzz(
        FuzzTarget(fuzz_server.server.url, token, fuzz_server.ids), EXAMPLES_WITHOUT_TOKEN
    )
    assert set(report.statuses) <= UNAUTHENTICATED_STATUSES, report.summary()
    assert report.statuses.get(401, 0) > 0, report.summary()


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "problem"),
    [
        (200, '{"data": {"me": null}}', None, None),
        (400, '{"errors": [{"message": "x", "extensions": {"code": "BAD_REQUEST"}}]}', None, None),
        (503, '{"errors": [{"message": "x", "extensions": {"code": "UNAVAILABLE"}}]}', "2", None),
        (500, '{"errors": [{"message": "x", "extensions": {"code": "X"}}]}', None, "server error"),
        (503, '{"errors": [{"message": "x", "extensions": {"code": "X"}}]}', None, "server error"),
        (400, "Bad Request", None, "not JSON"),
        (400, '{"detail": "no"}', None, "without 'data' or 'errors'"),
        (400, '{"errors": [{"message": "x"}]}', None, "without extensions.code"),
        (
            200,
            '{"data": null, "errors": [{"message": "x", "extensions": '
            '{"code": "INTERNAL_SERVER_ERROR"}}]}',
            None,
            "INTERNAL_SERVER_ERROR",
        ),
        (
            200,
            '{"errors": [{"message": "x", "extensions": {"code": "X"}}]}',
            None,
            "without 'data'",
        ),
    ],
)
def test_contract_problem(
    status: int, body: str, retry_after: str | None, problem: str | None
) -> None:
    """The fuzzer's oracle: what counts as a broken answer."""
    found = contract_problem(status, body, retry_after)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
