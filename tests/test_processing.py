"""COG processing end to end, on each database and blob store: a GeoTIFF uploaded and imported
over HTTP becomes a PENDING COG, a worker makes it, and sync_cogs reports every step; the COG's
bytes are a file of the mosaic, downloaded and validated; failures say what to fix; a re-import
replaces the COG and a deleted mosaic's job is cancelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from fieldsync.storage import cog_jobs
from tests.blob_support import BlobEnv
from tests.geotiffs import truncate_file, write_geotiff
from tests.processing_support import IMPORT_MOSAIC, ProcessingApi, jobs_of, run_queue

GRAYSCALE_ERROR = (
    "Failed to ungrayscale input image: Expected number of bands to be in (2, 4), but found 1"
)
DELETE_MOSAICS = """
mutation($survey: ID!, $ids: [ID!]!) {
  delete_mosaics(survey_sentera_id: $survey, sentera_ids: $ids) { failed { index } }
}"""


def mine(items: list[dict[str, Any]], sentera_id: str) -> list[dict[str, Any]]:
    return [item for item in items if item["sentera_id"] == sentera_id]


def api_for(env: BlobEnv, user: str | None = None) -> ProcessingApi:
    return ProcessingApi(env, user)


def test_an_imported_mosaic_becomes_a_valid_cog_and_sync_sees_every_step(
    blob_env: BlobEnv, tmp_path: Path
) -> None:
    api = api_for(blob_env)
    source = write_geotiff(tmp_path / "north field.tif", width=600, height=400)
    imported = api.import_mosaic(source, name="North field, June")
    cog = imported["cog"]
    assert (cog["status"], cog["error"], cog["max_zoom"], cog["clipped"]) == (
        "PENDING",
        None,
        None,
        False,
    )
    assert imported["mosaic"]["name"] == "North field, June"
    assert [(f["filename"], f["file_type"]) for f in imported["files"]] == [
        ("north field.tif", "mosaic")
    ]
    assert api.cog(cog["sentera_id"]) == cog  # sync_cogs lists it at once

    assert run_queue(blob_env) == 1
    page = api.cogs([cog["content_hash"]])
    assert page["deleted"] == []
    (done,) = mine(page["upserted"], cog["sentera_id"])
    assert done["status"] == "SUCCESS" and done["error"] is None
    assert done["max_zoom"] >= 20  # ~3 cm a pixel
    jobs = jobs_of(blob_env, cog["sentera_id"])
    assert [(j.state, j.attempts) for j in jobs] == [(cog_jobs.DONE, 1)]
    metrics = blob_env.server.http.get(blob_env.base + "/metrics").text
    assert 'fieldsync_cog_jobs{state="done"} 1.0' in metrics
    assert 'fieldsync_cog_jobs{state="queued"} 0.0' in metrics

    files = api.files_of(imported["mosaic"]["sentera_id"])
    made = [f for f in files if f["file_type"] == "cog"]
    assert len(made) == 1 and made[0]["filename"] == "north field_cog.tif"
    download = blob_env.server.http.get(made[0]["url"])
    assert download.status_code == 200
    assert int(made[0]["size"]) == len(download.content)
    produced = tmp_path / "downloaded.tif"
    produced.write_bytes(download.content)
    valid, errors, _warnings = cog_validate(str(produced))
    assert valid, errors
    with rasterio.open(produced) as dataset:
        assert dataset.crs.to_epsg() == 3857 and dataset.overviews(1)


def test_each_step_is_a_new_version(blob_env: BlobEnv, tmp_path: Path) -> None:
    """A client holding the PENDING hash is told of the change; the old hash is not current."""
    api = api_for(blob_env)
    imported = api.import_mosaic(write_geotiff(tmp_path / "m.tif"))
    pending = imported["cog"]["content_hash"]
    ours = imported["cog"]["sentera_id"]
    assert mine(api.cogs([pending])["upserted"], ours) == []
    run_queue(blob_env)
    (success,) = mine(api.cogs([pending])["upserted"], ours)
    assert success["content_hash"] != pending and success["status"] == "SUCCESS"
    assert mine(api.cogs([success["content_hash"]])["upserted"], ours) == []


@pytest.mark.parametrize(
    ("make", "mosaic_type", "expected"),
    [
        (lambda p: write_geotiff(p, bands=1), "RGB", GRAYSCALE_ERROR),
        (lambda p: write_geotiff(p, crs=None), "RGB", "georeference"),
        (lambda p: truncate_file(write_geotiff(p, width=1024, height=1024), 0.4), "RGB", ""),
    ],
    ids=["grayscale-rgb", "no-crs", "truncated"],
)
def test_a_source_that_cannot_be_made_a_cog_fails_with_an_error_a_person_can_act_on(
    blob_env: BlobEnv, tmp_path: Path, make: object, mosaic_type: str, expected: str
) -> None:
    if blob_env.kind == "s3" and expected != GRAYSCALE_ERROR:
        pytest.skip("one failure on S3 is enough: the store plays no part in the others")
    api = api_for(blob_env)
    source = make(tmp_path / "bad.tif")  # type: ignore[operator]
    imported = api.import_mosaic(source, mosaic_type)
    run_queue(blob_env)
    failed = api.cog(imported["cog"]["sentera_id"])
    assert failed["status"] == "FAIL" and failed["max_zoom"] is None
    assert expected in failed["error"]
    assert "Traceback" not in failed["error"] and len(failed["error"]) < 400
    assert [j.state for j in jobs_of(blob_env, failed["sentera_id"])] == [cog_jobs.FAILED]
    files = api.files_of(imported["mosaic"]["sentera_id"])
    assert [f["file_type"] for f in files] == ["mosaic"]  # no COG file made


def test_reimporting_a_mosaic_replaces_its_cog(blob_env: BlobEnv, tmp_path: Path) -> None:
    if blob_env.kind == "s3":
        pytest.skip("store-independent")
    api = api_for(blob_env)
    first = api.import_mosaic(write_geotiff(tmp_path / "first.tif"))
    run_queue(blob_env)
    mosaic = first["mosaic"]["sentera_id"]
    held = [c["content_hash"] for c in api.cogs()["upserted"]]
    others = {c["sentera_id"] for c in api.cogs()["upserted"]} - {first["cog"]["sentera_id"]}
    second = api.import_mosaic(write_geotiff(tmp_path / "second.tif", width=300), mosaic=mosaic)
    assert second["mosaic"]["sentera_id"] == mosaic
    page = api.cogs(held)
    assert [d["sentera_id"] for d in page["deleted"]] == [first["cog"]["sentera_id"]]
    assert [c["status"] for c in page["upserted"] if c["sentera_id"] not in others] == ["PENDING"]
    run_queue(blob_env)
    files = api.files_of(mosaic)
    assert sorted((f["filename"], f["file_type"]) for f in files) == [
        ("second.tif", "mosaic"),
        ("second_cog.tif", "cog"),
    ]


def test_deleting_the_mosaic_cancels_its_pending_job(blob_env: BlobEnv, tmp_path: Path) -> None:
    if blob_env.kind == "s3":
        pytest.skip("store-independent")
    api = api_for(blob_env)
    imported = api.import_mosaic(write_geotiff(tmp_path / "m.tif"))
    gone = api.data(
        DELETE_MOSAICS, survey=blob_env.world.survey, ids=[imported["mosaic"]["sentera_id"]]
    )["delete_mosaics"]
    assert gone["failed"] == []
    assert run_queue(blob_env) == 0
    jobs = jobs_of(blob_env, imported["cog"]["sentera_id"])
    assert [(j.state, j.attempts) for j in jobs] == [(cog_jobs.CANCELLED, 0)]


def test_bad_imports_are_refused_up_front_and_write_nothing(
    blob_env: BlobEnv, tmp_path: Path
) -> None:
    if blob_env.kind == "s3":
        pytest.skip("store-independent")
    api = api_for(blob_env)
    survey = blob_env.world.survey
    before = api.cogs()["upserted"]
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a raster")
    cases = {
        "no GeoTIFF": ({"keys": [api.upload_file(pdf)]}, "exactly one GeoTIFF"),
        "empty": ({"keys": []}, "file_keys is empty"),
        "unknown key": ({"keys": ["nope"]}, "no upload with file_key"),
        "bad clip": (
            {
                "keys": [api.upload_file(write_geotiff(tmp_path / "a.tif"))],
                "clip": {"type": "Point", "coordinates": [0, 0]},
            },
            "clip_boundary",
        ),
        "unknown mosaic": (
            {"keys": [api.upload_file(write_geotiff(tmp_path / "b.tif"))], "mosaic": "xx_MO_nope"},
            "does not exist in survey",
        ),
    }
    for label, (variables, message) in cases.items():
        assert isinstance(variables, dict)
        body = api.call(IMPORT_MOSAIC, survey=survey, type="RGB", **variables)
        assert body["data"] == {"import_mosaic": None}, label
        (error,) = body["errors"]
        assert message in error["message"], (label, error)
        assert "Traceback" not in error["message"]
    assert api.cogs()["upserted"] == before
    assert run_queue(blob_env) == 0
