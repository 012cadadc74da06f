"""Timings of the write path: 1,000 images per call through `upsert_images` against the same
1,000 images per changeset through `fieldsync load`'s code (the baseline, measured in the same
run on the same database), then an unchanged re-upsert (a no-op) and a delete of 1,000.

The server side only (parse, validate, execute, JSON), median of several calls:

    .venv/bin/python bench/write_bench.py                       # SQLite in a temp dir
    .venv/bin/python bench/write_bench.py --database-url postgresql://postgres@127.0.0.1/wb
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.ids import TypeCode, new_sentera_id
from fieldsync.storage.database import make_engine
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token

SUFFIX = "Bench_FS_bench_0a1b2c3_240601_120000"
ORG, USER, FIELD = (f"bnchw{c.lower()}_{c}_{SUFFIX}" for c in ("OR", "US", "AS"))
BATCH = 1000
RUNS = 5

UPSERT = """
mutation($survey: ID!, $images: [ImageImport!]!) {
  upsert_images(survey_sentera_id: $survey, images: $images) {
    succeeded { sentera_id content_hash } failed { index }
  }
}"""
DELETE = """
mutation($survey: ID!, $ids: [ID!]!) {
  delete_images(survey_sentera_id: $survey, sentera_ids: $ids) { succeeded { sentera_id } }
}"""


def _images(count: int, survey: str | None = None) -> list[dict[str, Any]]:
    extra = {} if survey is None else {"survey_sentera_id": survey}
    return [
        {"filename": f"IMG_{n:05d}.jpg", "latitude": 45.0 + n / 1e5, "longitude": -93.5, **extra}
        for n in range(count)
    ]


def _new_survey(engine: Engine) -> str:
    survey = new_sentera_id(TypeCode.SURVEY)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": USER,
            "upsert": {"surveys": [{"sentera_id": survey, "field_sentera_id": FIELD}]},
        },
    )
    return survey


def _median(run: Callable[[], None]) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def bench(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    apply_changeset(
        engine,
        {
            "actor_sentera_id": USER,
            "upsert": {
                "organizations": [{"sentera_id": ORG, "name": "Bench"}],
                "users": [
                    {"sentera_id": USER, "email": "b@bench.test", "organization_sentera_ids": [ORG]}
                ],
                "fields": [{"sentera_id": FIELD, "organization_sentera_id": ORG, "name": "Bench"}],
            },
        },
    )
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)
    token = create_token(engine, USER)

    def call(query: str, **variables: Any) -> dict[str, Any]:
        response = executor.run(token, GraphQLRequest(query, variables))
        assert response.status == 200 and "errors" not in response.body, response.body
        data: dict[str, Any] = response.body["data"]
        return data

    def changeset() -> None:
        survey = _new_survey(engine)
        apply_changeset(
            engine, {"actor_sentera_id": USER, "upsert": {"images": _images(BATCH, survey)}}
        )

    written: list[tuple[str, list[dict[str, Any]]]] = []

    def mutation() -> None:
        survey = _new_survey(engine)
        result = call(UPSERT, survey=survey, images=_images(BATCH))["upsert_images"]
        written.append((survey, result["succeeded"]))

    baseline = _median(changeset)
    upsert = _median(mutation)
    survey, items = written[-1]
    unchanged = [{"sentera_id": item["sentera_id"]} for item in items]

    def rewrite() -> None:
        call(UPSERT, survey=survey, images=unchanged)

    noop = _median(rewrite)
    pending = [(s, [i["sentera_id"] for i in rows]) for s, rows in written[:RUNS]]

    def delete() -> None:
        target, ids = pending.pop()
        call(DELETE, survey=target, ids=ids)

    removal = _median(delete)
    backend = engine.dialect.name
    rows = [
        (f"changeset of {BATCH:,} images (baseline)", baseline),
        (f"upsert_images of {BATCH:,} new images", upsert),
        (f"upsert_images of {BATCH:,} unchanged", noop),
        (f"delete_images of {BATCH:,}", removal),
    ]
    for label, seconds in rows:
        print(f"{backend}: {label:<40} {seconds * 1000:8.0f} ms  {seconds / baseline:5.2f}x")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", default=[])
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for url in arguments.database_url or [f"sqlite:///{scratch}/bench.db"]:
            bench(url)


if __name__ == "__main__":
    main()
