"""Baseline timings of the sync hot path, on one or more backends side by side.

Builds (once per database) a survey of 100,000 images and one of 2,000 mosaics, then times
the server side of three calls — parse, validate, execute and JSON encoding, everything but
the network — and prints the median of several runs:

* a full 2,000-mosaic page (the sync_mosaics seed example's fields, client holds nothing);
* a no-change sync_images call carrying all 100,000 current hashes as a variable;
* the same call with the 100,000 hashes inline in the query text.

    .venv/bin/python bench/sync_bench.py                       # SQLite in a temp dir
    .venv/bin/python bench/sync_bench.py --database-url sqlite:////tmp/b.db \
        --database-url postgresql://postgres@127.0.0.1/fieldsync_bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import parse, validate
from sqlalchemy import Engine, func, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.storage.database import make_engine, normalize_url
from fieldsync.storage.migrate import upgrade
from fieldsync.tokens import create_token

SUFFIX = "Bench_FS_bench_0a1b2c3_240601_120000"
ORG = f"bnchorg_OR_{SUFFIX}"
USER = f"bnchusr_US_{SUFFIX}"
FIELD = f"bnchfld_AS_{SUFFIX}"
IMAGE_SURVEY = f"bnchimg_CO_{SUFFIX}"
MOSAIC_SURVEY = f"bnchmos_CO_{SUFFIX}"

MOSAIC_PAGE_QUERY = """
query SyncSurveyMosaics($survey: ID!, $hashes: [String!]!) {
  sync_mosaics(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted {
      sentera_id
      content_hash
      created_at
      created_by { sentera_id }
      updated_at
      updated_by { sentera_id }
      ... on Mosaic {
        area { value unit }
        captured_at
        image_status
        images { total_count }
        is_from_sentera_sensor
        message
        mosaic_type
        name
        quality
        released
        survey { sentera_id }
      }
    }
    deleted { sentera_id content_hash }
  }
}
"""

IMAGE_FIELDS = """
    remaining_count
    upserted {
      sentera_id
      content_hash
      ... on Image {
        latitude longitude filename created_by { sentera_id } updated_by { sentera_id }
      }
    }
    deleted { sentera_id content_hash }
"""
IMAGES_BY_VARIABLE = (
    "query SyncSurveyImages($survey: ID!, $hashes: [String!]!) {\n"
    "  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {" + IMAGE_FIELDS + "}\n}"
)


def images_inline(hashes: list[str]) -> str:
    literals = "\n".join(json.dumps(h) for h in hashes)
    return (
        "query SyncSurveyImages {\n"
        f'  sync_images(survey_sentera_id: "{IMAGE_SURVEY}", content_hashes: [\n{literals}\n]) {{'
        + IMAGE_FIELDS
        + "}\n}"
    )


def _id(index: int, code: str) -> str:
    return f"{index:07d}_{code}_{SUFFIX}"


def build_world(engine: Engine, images: int, mosaics: int) -> float:
    """Load the benchmark world unless it is there; returns the load time in seconds."""
    with engine.connect() as conn:
        present = conn.execute(
            select(func.count())
            .select_from(t.surveys)
            .where(t.surveys.c.sentera_id == IMAGE_SURVEY)
        ).scalar_one()
    if present:
        return 0.0
    started = time.perf_counter()
    apply_changeset(
        engine,
        {
            "actor_sentera_id": USER,
            "upsert": {
                "organizations": [{"sentera_id": ORG, "name": "Bench"}],
                "users": [
                    {
                        "sentera_id": USER,
                        "email": "bench@example.test",
                        "last_name": "Bench",
                        "organization_sentera_ids": [ORG],
                    }
                ],
                "fields": [{"sentera_id": FIELD, "organization_sentera_id": ORG, "name": "B"}],
                "surveys": [
                    {"sentera_id": IMAGE_SURVEY, "field_sentera_id": FIELD, "name": "images"},
                    {"sentera_id": MOSAIC_SURVEY, "field_sentera_id": FIELD, "name": "mosaics"},
                ],
            },
        },
    )
    batch = 20_000
    for start in range(0, images, batch):
        apply_changeset(
            engine,
            {
                "actor_sentera_id": USER,
                "upsert": {
                    "images": [
                        {
                            "sentera_id": _id(n, "IM"),
                            "survey_sentera_id": IMAGE_SURVEY,
                            "filename": f"IMG_{n:06d}.jpg",
                            "latitude": 45.0 + n * 1e-6,
                            "longitude": -93.0 - n * 1e-6,
                            "altitude": 120.0,
                            "captured_at": "2024-06-01T14:00:00Z",
                        }
                        for n in range(start, min(start + batch, images))
                    ]
                },
            },
        )
    apply_changeset(
        engine,
        {
            "actor_sentera_id": USER,
            "upsert": {
                "mosaics": [
                    {
                        "sentera_id": _id(n, "MO"),
                        "survey_sentera_id": MOSAIC_SURVEY,
                        "name": f"Mosaic {n}",
                        "mosaic_type": "NDVI",
                        "quality": "FULL",
                        "captured_at": "2024-06-01T14:00:00Z",
                        "area": {"value": 40.5, "unit": "ACRE"},
                        "message": "bench",
                        "released": True,
                    }
                    for n in range(mosaics)
                ]
            },
        },
    )
    return time.perf_counter() - started


@dataclass
class Timing:
    median_ms: float
    runs: int


def median_ms(function: Callable[[], Any], runs: int) -> Timing:
    function()  # warm-up (connection pool, schema, caches)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return Timing(statistics.median(samples), runs)


def measure(database_url: str, images: int, mosaics: int, runs: int) -> dict[str, str]:
    engine = make_engine(database_url)
    upgrade(engine)
    load_seconds = build_world(engine, images, mosaics)
    token = create_token(engine, USER)
    executor = GraphQLExecutor(build_fieldsync_schema(), engine)

    def call(request: GraphQLRequest) -> dict[str, Any]:
        response = executor.run(token, request)
        json.dumps(response.body)
        assert response.status == 200 and "errors" not in response.body, response.body
        return response.body

    mosaic_request = GraphQLRequest(MOSAIC_PAGE_QUERY, {"survey": MOSAIC_SURVEY, "hashes": []})
    page = call(mosaic_request)["data"]["sync_mosaics"]
    assert len(page["upserted"]) == min(mosaics, 2000), len(page["upserted"])

    held: list[str] = []
    while True:
        body = call(GraphQLRequest(IMAGES_BY_VARIABLE, {"survey": IMAGE_SURVEY, "hashes": held}))
        result = body["data"]["sync_images"]
        held.extend(item["content_hash"] for item in result["upserted"])
        if result["remaining_count"] == 0:
            break
    assert len(held) == images
    by_variable = GraphQLRequest(IMAGES_BY_VARIABLE, {"survey": IMAGE_SURVEY, "hashes": held})
    inline = GraphQLRequest(images_inline(held))
    for request in (by_variable, inline):
        result = call(request)["data"]["sync_images"]
        assert result["remaining_count"] == 0 and not result["upserted"], result

    schema = build_fieldsync_schema()
    inline_parse = median_ms(lambda: parse(inline.query), max(3, runs // 2))
    document = parse(inline.query)
    inline_validate = median_ms(lambda: validate(schema, document), max(3, runs // 2))
    results = {
        "backend": normalize_url(database_url).get_backend_name(),
        "world load (s)": f"{load_seconds:.1f}" if load_seconds else "(existing)",
        "2,000-mosaic page (ms)": f"{median_ms(lambda: call(mosaic_request), runs).median_ms:.1f}",
        "100k hashes, variable, no change (ms)": (
            f"{median_ms(lambda: call(by_variable), runs).median_ms:.1f}"
        ),
        "100k hashes, inline, no change (ms)": (
            f"{median_ms(lambda: call(inline), max(3, runs // 2)).median_ms:.1f}"
        ),
        "  of which parse inline (ms)": f"{inline_parse.median_ms:.1f}",
        "  of which validate inline (ms)": f"{inline_validate.median_ms:.1f}",
    }
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", action="append", help="repeat to compare backends")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--mosaics", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    urls = args.database_url or [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]
    columns = [measure(url, args.images, args.mosaics, args.runs) for url in urls]
    width = max(len(key) for key in columns[0])
    for key in columns[0]:
        print(f"{key:<{width}}  " + "  ".join(f"{column[key]:>14}" for column in columns))


if __name__ == "__main__":
    main()
