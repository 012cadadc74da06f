"""What the COG processing tests share: uploading GeoTIFFs, importing them as mosaics, running
a worker over the test's database and store, and reading COG status through sync_cogs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fieldsync.blobs.context import BlobSettings, LazyBlobContext
from fieldsync.processing.jobs import QueueSettings
from fieldsync.processing.worker import Worker, WorkerSettings
from fieldsync.storage import cog_jobs
from fieldsync.storage import tables as t
from fieldsync.storage.database import read_snapshot
from fieldsync.storage.rows import rows_by_sentera_id
from tests.blob_support import Api, BlobEnv

COG_FIELDS = "sentera_id content_hash status error max_zoom clipped mosaic { sentera_id }"

IMPORT_MOSAIC = f"""
mutation($survey: ID!, $keys: [String!]!, $type: MosaicType!, $name: String, $mosaic: ID,
         $clip: JSON) {{
  import_mosaic(survey_sentera_id: $survey, file_keys: $keys, mosaic_type: $type, name: $name,
                mosaic_sentera_id: $mosaic, clip_boundary: $clip) {{
    mosaic {{ sentera_id name mosaic_type }}
    cog {{ {COG_FIELDS} }}
    files {{ sentera_id filename file_type size checksum }}
  }}
}}"""
SYNC_COGS = f"""
query($survey: ID!, $hashes: [String!]!) {{
  sync_cogs(survey_sentera_id: $survey, content_hashes: $hashes) {{
    upserted {{ ... on Cog {{ {COG_FIELDS} }} }}
    deleted {{ sentera_id }}
    remaining_count
  }}
}}"""
MOSAIC_FILES = """
query($mosaic: ID!) {
  sync_files(owners: [{owner_type: MOSAIC, sentera_id: $mosaic}], content_hashes: []) {
    upserted { ... on File { sentera_id filename file_type size checksum url } }
  }
}"""


class ProcessingApi(Api):
    """The GraphQL calls of importing mosaics and following their COGs."""

    def upload_file(self, path: Path) -> str:
        return self.upload(path.read_bytes(), path.name, "image/tiff")

    def import_mosaic(self, path: Path, mosaic_type: str = "RGB", **more: Any) -> dict[str, Any]:
        """Upload the file and import it; the import_mosaic answer."""
        key = self.upload_file(path)
        result: dict[str, Any] = self.data(
            IMPORT_MOSAIC, survey=self.env.world.survey, keys=[key], type=mosaic_type, **more
        )["import_mosaic"]
        return result

    def cogs(self, hashes: list[str] | None = None) -> dict[str, Any]:
        page: dict[str, Any] = self.data(
            SYNC_COGS, survey=self.env.world.survey, hashes=hashes or []
        )["sync_cogs"]
        return page

    def files_of(self, mosaic: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.data(MOSAIC_FILES, mosaic=mosaic)["sync_files"][
            "upserted"
        ]
        return found

    def cog(self, sentera_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [
            c for c in self.cogs()["upserted"] if c["sentera_id"] == sentera_id
        ]
        assert len(found) == 1, found
        return found[0]


def worker_for(env: BlobEnv, lease_seconds: float = 60.0) -> Worker:
    blobs = LazyBlobContext(env.engine, BlobSettings(store_url=env.ctx.settings.store_url))
    settings = WorkerSettings(queue=QueueSettings(lease_seconds=lease_seconds))
    return Worker(env.engine, blobs, settings, name="test-worker")


def run_queue(env: BlobEnv) -> int:
    """Work until no job is waiting; how many jobs were processed."""
    worker = worker_for(env)
    done = 0
    while worker.work_one(threading.Event()):
        done += 1
    return done


def jobs_of(env: BlobEnv, cog_sentera_id: str) -> list[cog_jobs.JobRow]:
    with read_snapshot(env.engine) as conn:
        row = rows_by_sentera_id(conn, t.cogs, [cog_sentera_id])[cog_sentera_id]
        return cog_jobs.jobs_of_cogs(conn, [int(row["id"])])


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; its value (fails the test after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        time.sleep(interval)
