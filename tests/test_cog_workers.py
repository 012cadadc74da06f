"""Real `fieldsync worker` processes sharing one PostgreSQL queue: twenty jobs between two
workers are each done exactly once, and a worker killed mid-job (SIGKILL) leaves its job to
another once the lease expires. An in-process worker in `serve` on SQLite does the same work
with nothing else running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from fieldsync.config import Settings
from fieldsync.storage import cog_jobs
from fieldsync.storage import tables as t
from fieldsync.storage.database import read_snapshot
from tests.blob_support import BlobEnv
from tests.geotiffs import write_geotiff
from tests.ops_support import ThreadServer
from tests.processing_support import ProcessingApi, jobs_of, wait_for

pytestmark = pytest.mark.slow


class WorkerProcess:
    """`fieldsync worker` in a subprocess on the env's database and store."""

    def __init__(self, env: BlobEnv, database_url: str, log: Path, lease: float = 3.0) -> None:
        environment = {
            **os.environ,
            "FIELDSYNC_DATABASE_URL": database_url,
            "FIELDSYNC_BLOB_STORE": env.ctx.settings.store_url,
            "FIELDSYNC_LOG_FORMAT": "text",
        }
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fieldsync",
                    "worker",
                    "--lease-seconds",
                    str(lease),
                    "--poll-seconds",
                    "0.2",
                ],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.name_prefix = f":{self.process.pid}:"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerPool:
    """The worker processes of one test, all stopped at its end."""

    def __init__(self, env: BlobEnv, database_url: str, logs: Path) -> None:
        self.env, self.database_url, self.logs = env, database_url, logs
        self.started: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        log = self.logs / f"worker{len(self.started)}.log"
        process = WorkerProcess(self.env, self.database_url, log)
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def workers(blob_env: BlobEnv, database_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(blob_env, database_url, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def _only_postgresql_and_local(env: BlobEnv) -> None:
    if env.engine.dialect.name != "postgresql" or env.kind != "local":
        pytest.skip("many workers need PostgreSQL; the store plays no part here")


def _output_files(engine: Engine) -> Counter[int]:
    """How many live COG files each mosaic holds."""
    files = t.files
    with read_snapshot(engine) as conn:
        rows = conn.execute(
            select(files.c.scope_id, func.count())
            .where(files.c.file_type == "COG", files.c.deleted_at.is_(None))
            .group_by(files.c.scope_id)
        )
        return Counter({int(scope): int(count) for scope, count in rows})


def _states(engine: Engine) -> dict[str, int]:
    with read_snapshot(engine) as conn:
        return cog_jobs.counts_by_state(conn)


def test_two_workers_do_twenty_jobs_each_exactly_once(
    blob_env: BlobEnv, workers: WorkerPool, tmp_path: Path
) -> None:
    _only_postgresql_and_local(blob_env)
    workers.start()
    workers.start()
    api = ProcessingApi(blob_env)
    cogs = []
    for n in range(20):
        source = write_geotiff(tmp_path / f"m{n}.tif", width=256 + 16 * n, height=256)
        cogs.append(api.import_mosaic(source)["cog"]["sentera_id"])
    wait_for(lambda: _states(blob_env.engine) == {cog_jobs.DONE: 20}, timeout=240)
    by_worker: Counter[str] = Counter()
    for sentera_id in cogs:
        (job,) = jobs_of(blob_env, sentera_id)
        assert (job.state, job.attempts) == (cog_jobs.DONE, 1)
        assert job.worker is not None
        by_worker[job.worker.rsplit(":", 1)[0]] += 1
        assert api.cog(sentera_id)["status"] == "SUCCESS"
    assert sum(by_worker.values()) == 20 and len(by_worker) <= 2
    assert set(_output_files(blob_env.engine).values()) == {1}
    assert len(_output_files(blob_env.engine)) == 20


def test_a_job_of_a_killed_worker_is_finished_by_another_after_its_lease(
    blob_env: BlobEnv, workers: WorkerPool, tmp_path: Path
) -> None:
    _only_postgresql_and_local(blob_env)
    api = ProcessingApi(blob_env)
    source = write_geotiff(tmp_path / "big.tif", width=6000, height=6000)
    cog = api.import_mosaic(source)["cog"]["sentera_id"]
    first = workers.start()

    def running_on_first() -> bool:
        (job,) = jobs_of(blob_env, cog)
        return job.state == cog_jobs.RUNNING and first.name_prefix in (job.worker or "")

    wait_for(running_on_first, timeout=60, interval=0.05)
    assert api.cog(cog)["status"] == "PROCESSING"
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    second = workers.start()
    wait_for(lambda: jobs_of(blob_env, cog)[0].state == cog_jobs.DONE, timeout=240)
    (job,) = jobs_of(blob_env, cog)
    assert job.attempts == 2 and second.name_prefix in (job.worker or "")
    assert api.cog(cog)["status"] == "SUCCESS"
    assert list(_output_files(blob_env.engine).values()) == [1]


def test_serve_on_sqlite_makes_cogs_by_itself(
    blob_env: BlobEnv, database_url: str, tmp_path: Path
) -> None:
    if blob_env.engine.dialect.name != "sqlite" or blob_env.kind != "local":
        pytest.skip("the embedded default: SQLite and a local store")
    settings = Settings(database_url=database_url, blob_store=blob_env.ctx.settings.store_url)
    assert settings.runs_cog_worker()
    server = ThreadServer(blob_env.engine, settings)
    try:
        blob_env.server, previous = server, blob_env.server
        api = ProcessingApi(blob_env)
        cog = api.import_mosaic(write_geotiff(tmp_path / "m.tif"))["cog"]["sentera_id"]
        wait_for(lambda: api.cog(cog)["status"] == "SUCCESS", timeout=120)
    finally:
        blob_env.server = previous
        server.stop()
