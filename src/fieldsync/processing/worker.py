"""The worker: claims COG jobs, makes each COG, and records the outcome (see `jobs`).

A worker runs `concurrency` job loops in threads (GDAL does its work outside the GIL). While a
job runs, a keeper thread renews its lease every third of the lease; when a renewal finds the
job no longer ours (its COG was deleted, or the lease had expired and another worker took it)
the work is dropped at its next progress report. Asked to stop, a worker claims nothing more
and gives its running jobs back to the queue, their attempts not counted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from fieldsync.blobs.context import BlobContext
from fieldsync.processing import jobs
from fieldsync.processing.cog import CogInputError, create_cog
from fieldsync.storage.cog_jobs import ClaimedJob
from fieldsync.storage.database import error_summary

log = logging.getLogger("fieldsync.processing")


class JobAborted(Exception):
    """Raised from a progress report to stop work that is no longer wanted."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 1
    poll_seconds: float = 1.0
    """How long an idle loop waits before looking for work again."""
    queue: jobs.QueueSettings = field(default_factory=jobs.QueueSettings)
    workdir: Path | None = None
    """Where sources are downloaded and COGs written (the system's temp dir when None)."""


class _LeaseKeeper:
    """Renews one job's lease in the background; `lost` is set once it is no longer ours."""

    def __init__(self, engine: Engine, job: ClaimedJob, settings: jobs.QueueSettings) -> None:
        self.lost = threading.Event()
        self._done = threading.Event()
        self._engine, self._job, self._settings = engine, job, settings
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._settings.lease_seconds / 3
        while not self._done.wait(interval):
            try:
                if not jobs.renew(self._engine, self._job, self._settings):
                    log.warning("COG job %s is no longer ours; dropping its work", self._job.id)
                    self.lost.set()
                    return
            except Exception as exc:  # the database is down: try again; the lease may lapse
                log.warning("could not renew the lease of COG job %s: %s", self._job.id, exc)


class Worker:
    def __init__(
        self,
        engine: Engine,
        blobs: Callable[[], BlobContext],
        settings: WorkerSettings | None = None,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.settings = settings or WorkerSettings()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set, with `concurrency` loops; returns when all have ended."""
        loops = [
            threading.Thread(target=self._loop, args=(stop, f"{self.name}:{n}"), name=f"cog-{n}")
            for n in range(self.settings.concurrency)
        ]
        for loop in loops:
            loop.start()
        for loop in loops:
            loop.join()

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a background thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="cog-worker", daemon=True)
        thread.start()
        return thread, stop

    def work_one(self, stop: threading.Event | None = None) -> bool:
        """Claim and process one job; False when none was waiting."""
        job = jobs.claim(self.engine, self.name, self.settings.queue)
        if job is None:
            return False
        self._process(job, stop or threading.Event())
        return True

    def _loop(self, stop: threading.Event, name: str) -> None:
        while not stop.is_set():
            try:
                job = jobs.claim(self.engine, name, self.settings.queue)
            except Exception as exc:
                log.warning("could not look for COG jobs: %s", error_summary(exc))
                job = None
            if job is None:
                stop.wait(self.settings.poll_seconds)
                continue
            self._process(job, stop)

    def _process(self, job: ClaimedJob, stop: threading.Event) -> None:
        with _LeaseKeeper(self.engine, job, self.settings.queue) as lease:
            try:
                self._make(job, lambda fraction: _check(job, fraction, lease.lost, stop))
            except JobAborted:
                if not lease.lost.is_set():
                    jobs.release(self.engine, job)
                    log.info("COG job %s given back to the queue (worker stopping)", job.id)
            except CogInputError as exc:
                jobs.fail(self.engine, job, str(exc))
                log.info("COG job %s: FAIL: %s", job.id, exc)
            except Exception as exc:
                log.exception("COG job %s failed unexpectedly", job.id)
                jobs.retry_or_fail(self.engine, job, error_summary(exc), self.settings.queue)

    def _make(self, job: ClaimedJob, progress: Callable[[float], None]) -> None:
        if job.source_blob_key is None:
            raise CogInputError("the mosaic's GeoTIFF has no stored bytes: import it again")
        store = self.blobs().store
        workdir = Path(tempfile.mkdtemp(prefix=f"cog-{job.id}-", dir=self.settings.workdir))
        try:
            source = store.local_copy(job.source_blob_key, workdir)
            output = workdir / "cog.tif"
            clip = None if job.clip_boundary is None else json.loads(job.clip_boundary)
            result = create_cog(
                source, output, mosaic_type=job.mosaic_type, clip_boundary=clip, progress=progress
            )
            stored = store.store_file(output, jobs.COG_CONTENT_TYPE)
            if jobs.succeed(self.engine, job, stored, result):
                log.info("COG job %s: SUCCESS (max_zoom %s)", job.id, result.max_zoom)
            else:
                log.info("COG job %s was cancelled or taken over; its result is dropped", job.id)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _check(job: ClaimedJob, fraction: float, lost: threading.Event, stop: threading.Event) -> None:
    """A progress report: log it, and stop the work if it is no longer wanted."""
    if lost.is_set() or stop.is_set():
        raise JobAborted(job.id)
    log.debug("COG job %s: %.0f %%", job.id, fraction * 100)
