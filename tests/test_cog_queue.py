"""The COG queue's rules, on each database: a claim is exclusive until its lease expires, a
lapsed claim is taken over and the old claimant can change nothing, attempts are bounded, and
a stopping worker's job goes back uncounted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fieldsync.processing import jobs
from fieldsync.processing.jobs import QueueSettings
from fieldsync.storage import cog_jobs
from tests.blob_support import BlobEnv
from tests.geotiffs import write_geotiff
from tests.processing_support import ProcessingApi, jobs_of

SHORT = QueueSettings(lease_seconds=0.2)
LONG = QueueSettings(lease_seconds=60)


@pytest.fixture
def queued(blob_env: BlobEnv, tmp_path: Path) -> tuple[ProcessingApi, str]:
    if blob_env.kind == "s3":
        pytest.skip("the queue lives in the database; the store plays no part")
    api = ProcessingApi(blob_env)
    cog = api.import_mosaic(write_geotiff(tmp_path / "m.tif"))["cog"]["sentera_id"]
    return api, cog


def test_a_claim_is_exclusive_until_its_lease_expires_and_then_taken_over(
    blob_env: BlobEnv, queued: tuple[ProcessingApi, str]
) -> None:
    api, cog = queued
    first = jobs.claim(blob_env.engine, "first", SHORT)
    assert first is not None and first.attempt == 1
    assert api.cog(cog)["status"] == "PROCESSING"
    assert jobs.claim(blob_env.engine, "second", SHORT) is None  # leased
    time.sleep(0.3)
    second = jobs.claim(blob_env.engine, "second", LONG)
    assert second is not None and (second.id, second.attempt) == (first.id, 2)
    # The first claimant lost the job: it can neither renew, fail nor give it back.
    assert not jobs.renew(blob_env.engine, first, SHORT)
    assert not jobs.fail(blob_env.engine, first, "late")
    jobs.release(blob_env.engine, first)
    (job,) = jobs_of(blob_env, cog)
    assert (job.state, job.attempts, job.worker) == (cog_jobs.RUNNING, 2, "second")
    assert jobs.renew(blob_env.engine, second, LONG)


def test_attempts_are_bounded_and_the_cog_then_fails_saying_why(
    blob_env: BlobEnv, queued: tuple[ProcessingApi, str]
) -> None:
    api, cog = queued
    for attempt in (1, 2, 3):
        claimed = jobs.claim(blob_env.engine, f"doomed-{attempt}", SHORT)
        assert claimed is not None and claimed.attempt == attempt
        time.sleep(0.3)  # the worker "dies": its lease runs out
    assert jobs.claim(blob_env.engine, "next", SHORT) is None
    (job,) = jobs_of(blob_env, cog)
    assert (job.state, job.attempts) == (cog_jobs.FAILED, 4)
    failed = api.cog(cog)
    assert failed["status"] == "FAIL"
    assert "stopped without finishing 3 times" in failed["error"]


def test_a_released_job_is_claimed_again_without_counting_the_attempt(
    blob_env: BlobEnv, queued: tuple[ProcessingApi, str]
) -> None:
    api, cog = queued
    claimed = jobs.claim(blob_env.engine, "stopping", LONG)
    assert claimed is not None
    jobs.release(blob_env.engine, claimed)
    assert api.cog(cog)["status"] == "PENDING"
    again = jobs.claim(blob_env.engine, "next", LONG)
    assert again is not None and again.attempt == 1


def test_an_unexpected_error_retries_later_then_fails(
    blob_env: BlobEnv, queued: tuple[ProcessingApi, str]
) -> None:
    api, cog = queued
    quick = QueueSettings(lease_seconds=60, retry_delay_seconds=0.1)
    for attempt in (1, 2, 3):
        claimed = None
        deadline = time.monotonic() + 5
        while claimed is None and time.monotonic() < deadline:
            claimed = jobs.claim(blob_env.engine, "flaky", quick)
            time.sleep(0.05)
        assert claimed is not None and claimed.attempt == attempt
        jobs.retry_or_fail(blob_env.engine, claimed, "the store timed out", quick)
        expected = "PENDING" if attempt < 3 else "FAIL"
        assert api.cog(cog)["status"] == expected
    assert "the store timed out" in api.cog(cog)["error"]
    assert [j.state for j in jobs_of(blob_env, cog)] == [cog_jobs.FAILED]
