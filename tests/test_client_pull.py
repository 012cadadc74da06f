"""`fieldsync pull` against a real `fieldsync serve`: first pull, incremental pull after writes,
moves and deletes, a pull killed and resumed, the server restarted mid-pull, bytes verified,
resumed and repaired, links refreshed."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from sqlalchemy import Engine

from tests.blob_support import md5_b64
from tests.client_support import (
    FIELDS_ADDED,
    IMAGES_ADDED,
    PullSetup,
    client_environment,
    mirror_hashes,
    mirror_rows,
    pull_setup,
    server_hashes,
)
from tests.ops_support import free_port
from tests.photo_support import BELOW_SEA, NORTH_WEST, SOUTH_EAST, make_photo

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def setup(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[PullSetup]:
    ready = pull_setup(engine, database_url, tmp_path)
    yield ready
    ready.stop()


def test_a_first_pull_mirrors_every_type_over_many_pages(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    setup = pull_setup(engine, database_url, tmp_path, fields=FIELDS_ADDED)
    try:
        check_first_pull(setup)
    finally:
        setup.stop()


def check_first_pull(setup: PullSetup) -> None:
    summary = setup.pull("--no-download")
    held, truth = mirror_hashes(setup.mirror), server_hashes(setup.engine)
    assert held == truth
    assert len(held["fields"]) == FIELDS_ADDED + 1 and len(held["images"]) == IMAGES_ADDED + 2
    assert all(held[name] for name in held), "every type has items in the world"
    assert summary["complete"] is True and summary["failures"] == []
    assert {name: t["created"] for name, t in summary["types"].items()} == {
        name: len(items) for name, items in truth.items()
    }
    image = mirror_rows(setup.mirror, "images")[setup.world.image]
    assert image["survey_sentera_id"] == setup.world.survey
    assert (image["latitude"], image["longitude"], image["altitude"]) == (
        45.328761,
        -93.521094,
        120.5,
    )
    assert '"content_hash"' in image["json"]


def test_a_second_pull_fetches_only_what_changed(setup: PullSetup) -> None:
    setup.pull("--no-download")
    world = setup.world
    other = setup.client().upsert_surveys(world.field, [{"name": "Second flight"}])
    second = other.succeeded[0]["sentera_id"]
    with setup.client() as client:
        assert not client.upsert_images(
            world.survey, [{"sentera_id": world.image, "altitude": 99.0}]
        ).failed
        assert not client.upsert_images(second, [{"sentera_id": world.image2}]).failed  # a move
        assert not client.delete_mosaics(world.survey, [world.mosaic]).failed
        assert not client.delete_flight_tasks(world.org, [world.task]).failed
    summary = setup.pull("--no-download")
    assert mirror_hashes(setup.mirror) == server_hashes(setup.engine)
    images = summary["types"]["images"]
    # The moved image is an update when its new survey syncs first, else a delete and a create.
    assert (images["created"], images["updated"], images["deleted"]) in ((0, 2, 0), (1, 1, 1))
    assert summary["types"]["surveys"]["created"] == 1
    assert summary["types"]["mosaics"]["deleted"] == 1
    assert summary["types"]["cogs"]["deleted"] == 1  # the mosaic's COG went with it
    assert summary["types"]["flight_tasks"]["deleted"] == 1
    assert mirror_rows(setup.mirror, "images")[world.image2]["survey_sentera_id"] == second
    assert setup.pull("--no-download")["types"]["images"] == {
        "created": 0, "updated": 0, "deleted": 0, "failed": 0, "bytes": 0,
        "seconds": pytest.approx(0, abs=60),
    }  # fmt: skip


def test_a_deleted_survey_takes_everything_below_it_out_of_the_mirror(setup: PullSetup) -> None:
    setup.pull("--no-download")
    with setup.client() as client:
        assert not client.delete_surveys(setup.world.field, [setup.world.survey]).failed
    setup.pull("--no-download")
    held = mirror_hashes(setup.mirror)
    assert held == server_hashes(setup.engine)
    assert held["images"] == {} and held["mosaics"] == {} and held["cogs"] == {}


@pytest.fixture
def wide_setup(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[PullSetup]:
    """A world whose pull takes long enough (300 fields, each a scope) to be interrupted."""
    ready = pull_setup(engine, database_url, tmp_path, fields=300)
    yield ready
    ready.stop()


def test_a_pull_killed_mid_way_resumes_without_fetching_again(wide_setup: PullSetup) -> None:
    setup = wide_setup
    process = setup.start_pull("--no-download")
    wait_for_rows(setup.mirror, "fields", at_least=1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with sqlite3.connect(setup.mirror / "mirror.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        held = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("fields", "surveys", "images")
        }
    assert held["fields"] in (300, 301), "sync_fields pages (300 a page) apply whole"
    assert held["images"] < IMAGES_ADDED + 2, "killed before the images were all held"
    summary = setup.pull("--no-download")
    assert mirror_hashes(setup.mirror) == server_hashes(setup.engine)
    assert summary["types"]["fields"]["created"] == 301 - held["fields"]
    assert summary["types"]["images"]["created"] == IMAGES_ADDED + 2 - held["images"]


def test_the_server_restarted_mid_pull_is_waited_for(wide_setup: PullSetup) -> None:
    setup = wide_setup
    process = setup.start_pull("--no-download")
    wait_for_rows(setup.mirror, "fields", at_least=1)
    setup.restart_server()
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "SyncImages" in setup.server.stderr(), "the pull went on against the new server"
    assert mirror_hashes(setup.mirror) == server_hashes(setup.engine)


def test_a_second_pull_into_the_same_directory_is_refused(setup: PullSetup) -> None:
    setup.mirror.mkdir()
    with FileLock(setup.mirror / ".pull.lock"):
        process = setup.start_pull()
        _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.strip() == (
        f"Error: another fieldsync pull is writing to {setup.mirror}: wait for it to finish, "
        "or pull into another directory"
    )
    assert not (setup.mirror / "mirror.sqlite").exists()


def wait_for_rows(directory: Path, table: str, *, at_least: int) -> int:
    """Wait until the mirror holds `at_least` rows of `table` (read as a second reader)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(directory / "mirror.sqlite", timeout=1) as db:
                count = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            if count >= at_least:
                return count
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)
    raise AssertionError(f"the mirror never held {at_least} {table}")


# -- bytes -----------------------------------------------------------------------------------


def with_bytes(setup: PullSetup) -> dict[str, bytes]:
    """Three files with bytes on three kinds of owner; file sentera_id -> bytes."""
    world = setup.world
    owners = [("SURVEY", world.survey), ("MOSAIC", world.mosaic), ("FIELD", world.field)]
    stored = {}
    for n, owner in enumerate(owners):
        data = os.urandom(300_000 + n)
        stored[setup.attach_bytes(owner, f"report-{n}.bin", data)] = data
    return stored


def local_bytes(setup: PullSetup, sentera_id: str) -> bytes:
    row = mirror_rows(setup.mirror, "files")[sentera_id]
    path = setup.mirror / row["local_path"]
    assert path == setup.mirror / "files" / sentera_id / row["download_filename"]
    data: bytes = path.read_bytes()
    return data


def test_file_bytes_are_downloaded_and_verified(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    summary = setup.pull("--jobs", "2")
    for sentera_id, data in stored.items():
        assert local_bytes(setup, sentera_id) == data
        assert mirror_rows(setup.mirror, "files")[sentera_id]["local_checksum"] == md5_b64(data)
    assert summary["types"]["files"]["bytes"] == sum(len(d) for d in stored.values())
    again = setup.pull()
    assert again["types"]["files"]["bytes"] == 0
    assert again["bytes_received"] < 200_000


def test_a_corrupted_local_file_is_fetched_again(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    setup.pull()
    victim = next(iter(stored))
    path = setup.mirror / mirror_rows(setup.mirror, "files")[victim]["local_path"]
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    summary = setup.pull()
    assert local_bytes(setup, victim) == stored[victim]
    assert summary["types"]["files"]["bytes"] == len(stored[victim])


def test_a_partial_download_resumes_with_range(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    setup.pull()
    victim = next(iter(stored))
    path = setup.mirror / mirror_rows(setup.mirror, "files")[victim]["local_path"]
    path.unlink()
    half = len(stored[victim]) // 2
    path.with_name(path.name + ".part").write_bytes(stored[victim][:half])
    summary = setup.pull()
    assert local_bytes(setup, victim) == stored[victim]
    assert not path.with_name(path.name + ".part").exists()
    assert summary["bytes_received"] < len(stored[victim]) - half + 200_000


def test_a_wrong_partial_download_is_fetched_whole(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    setup.pull()
    victim = next(iter(stored))
    path = setup.mirror / mirror_rows(setup.mirror, "files")[victim]["local_path"]
    path.unlink()
    path.with_name(path.name + ".part").write_bytes(b"\0" * 1000)
    setup.pull()
    assert local_bytes(setup, victim) == stored[victim]


def test_expired_links_are_refreshed_not_reported(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    setup.pull("--no-download")
    with sqlite3.connect(setup.mirror / "mirror.sqlite") as db:
        db.execute("UPDATE files SET url = url || 'spoiled' WHERE checksum IS NOT NULL")
    summary = setup.pull()
    assert summary["complete"] is True, summary["failures"]
    for sentera_id, data in stored.items():
        assert local_bytes(setup, sentera_id) == data


def test_bytes_of_a_deleted_file_leave_the_disk(setup: PullSetup) -> None:
    stored = with_bytes(setup)
    setup.pull()
    victim = next(iter(stored))
    with setup.client() as client:
        assert not client.delete_files(("SURVEY", setup.world.survey), [victim]).failed
    setup.pull()
    assert not (setup.mirror / "files" / victim).exists()
    assert victim not in mirror_rows(setup.mirror, "files")


# -- at the terminal ---------------------------------------------------------------------------


def run_pull(setup: PullSetup, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`fieldsync pull` with exactly these arguments (no --json unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "fieldsync", "pull", *arguments],
        env=client_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_errors_are_one_line_with_their_exit_status(setup: PullSetup, tmp_path: Path) -> None:
    target = str(tmp_path / "m")
    refused = run_pull(setup, "--server", setup.server.base, "--to", target, "--token", "fst_x")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: the server refused the token (")
    assert refused.stderr.endswith("): check --token or FIELDSYNC_TOKEN\n")
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = run_pull(
        setup, "--server", nowhere, "--to", target, "--token", "t", "--retries", "0"
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"Error: cannot reach {nowhere}/graphql: ")
    no_token = run_pull(setup, "--server", setup.server.base, "--to", target)
    assert no_token.returncode == 2
    assert "no token: give --token or set FIELDSYNC_TOKEN" in no_token.stderr
    for result in (refused, unreachable, no_token):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4


def test_survey_limits_the_pull_and_an_unknown_one_is_a_partial_failure(setup: PullSetup) -> None:
    world = setup.world
    with setup.client() as client:
        other = client.upsert_surveys(world.field, [{"name": "Other"}]).succeeded[0]["sentera_id"]
        assert not client.upsert_images(other, [{"filename": "x.jpg"}]).failed
    unknown = "zzzzzzz_CO_Acme_CV_test_abc123_240101_000000"
    summary = setup.pull("--no-download", "--survey", world.survey, "--survey", unknown, expect=3)
    assert summary["complete"] is False
    assert summary["failures"] == [f"survey {unknown}: not found among the surveys the token reads"]
    images = mirror_rows(setup.mirror, "images")
    assert {row["survey_sentera_id"] for row in images.values()} == {world.survey}
    assert set(mirror_rows(setup.mirror, "surveys")) == {world.survey, other}


def test_the_mirror_exports_images_and_fields_as_geojson(setup: PullSetup, tmp_path: Path) -> None:
    setup.pull("--no-download")
    out = tmp_path / "mirror.geojson"
    export = [sys.executable, "-m", "fieldsync", "mirror", "export"]
    done = subprocess.run(
        [*export, str(setup.mirror), "--geojson", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    collection = json.loads(out.read_text())
    located = [r for r in mirror_rows(setup.mirror, "images").values() if r["latitude"] is not None]
    points = [f for f in collection["features"] if f["properties"]["type"] == "image"]
    assert collection["type"] == "FeatureCollection" and len(points) == len(located)
    first = next(f for f in points if f["properties"]["sentera_id"] == setup.world.image)
    assert first["geometry"] == {"type": "Point", "coordinates": [-93.521094, 45.328761]}
    assert done.stdout == f"wrote {len(collection['features']):,} features to {out}\n"
    missing = subprocess.run(
        [*export, str(tmp_path / "none"), "--geojson", str(out)], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "holds no mirror: run `fieldsync pull --to" in missing.stderr


def test_a_terminal_gets_progress_bars_and_a_summary_table(setup: PullSetup) -> None:
    main, attached = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "fieldsync", "pull", "--server", setup.server.base,
            "--to", str(setup.mirror), "--token", setup.token,
        ],
        env={**client_environment(), "COLUMNS": "120", "TERM": "xterm"},
        stdin=attached, stdout=attached, stderr=attached,
    )  # fmt: skip
    os.close(attached)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0
    os.close(main)
    text = shown.decode("utf-8", "replace")
    assert "━" in text, "a progress bar was drawn"
    assert f"{IMAGES_ADDED + 2}/{IMAGES_ADDED + 2}" in text
    assert "fieldsync pull" in text and "│ images       │   2,302 │" in text
    assert "Traceback" not in text


def test_a_mirror_of_another_server_is_not_pulled_into(setup: PullSetup) -> None:
    setup.pull("--no-download")
    other = subprocess.run(
        [sys.executable, "-m", "fieldsync", "pull", "--server", f"http://localhost:{setup.server.port}",
         "--to", str(setup.mirror), "--token", setup.token],
        env=client_environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert other.returncode == 1
    assert other.stderr == (
        f"Error: {setup.mirror} mirrors {setup.server.base}/graphql, not "
        f"http://localhost:{setup.server.port}/graphql: pull into another directory\n"
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs): room for the mirror, not for the bytes."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("a full disk is made with a tmpfs mount, which needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_full_disk_stops_the_pull_with_advice_and_a_whole_mirror(
    setup: PullSetup, small_disk: Path
) -> None:
    world = setup.world
    big = os.urandom(3 * 1024 * 1024)
    setup.attach_bytes(("SURVEY", world.survey), "big-1.bin", big)
    setup.attach_bytes(("SURVEY", world.survey), "big-2.bin", big[::-1])
    target = small_disk / "mirror"
    done = subprocess.run(
        setup.command(directory=target), env=client_environment(), capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"Error: the disk holding {target}")
    assert done.stderr.endswith(
        " is full: free some space and run the same command again (it resumes where it stopped)\n"
    )
    with sqlite3.connect(target / "mirror.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM images").fetchone() == (IMAGES_ADDED + 2,)


def test_photos_uploaded_with_upload_images_come_back_byte_identical(
    setup: PullSetup, tmp_path: Path
) -> None:
    flight = tmp_path / "flight"
    flight.mkdir()
    photos = [
        make_photo(flight / f"DJI_{n:04d}.JPG", shot, seed=n)
        for n, shot in enumerate((NORTH_WEST, SOUTH_EAST, BELOW_SEA))
    ]
    uploaded = subprocess.run(
        [sys.executable, "-m", "fieldsync", "upload-images", setup.world.survey, str(flight),
         "--server", setup.server.base, "--token", setup.token, "--json"],
        env=client_environment(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    setup.pull("--survey", setup.world.survey)
    rows = {row["filename"]: row for row in mirror_rows(setup.mirror, "images").values()}
    for photo in photos:
        row = rows[photo.name]
        local = setup.mirror / row["local_path"]
        assert local == setup.mirror / "images" / row["sentera_id"] / photo.name
        assert local.read_bytes() == photo.read_bytes()
        assert row["local_checksum"] == md5_b64(photo.read_bytes())
    assert rows["DJI_0001.JPG"]["latitude"] == pytest.approx(SOUTH_EAST.latitude, abs=1e-6)


def test_ctrl_c_stops_the_pull_with_a_line_not_a_traceback(wide_setup: PullSetup) -> None:
    setup = wide_setup
    process = setup.start_pull("--no-download")
    wait_for_rows(setup.mirror, "fields", at_least=1)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == (
        "interrupted: the mirror holds every page applied so far; run the same command to resume\n"
    )
    setup.pull("--no-download")
    assert mirror_hashes(setup.mirror) == server_hashes(setup.engine)


def test_organization_limits_the_pull_and_an_unknown_one_is_reported(setup: PullSetup) -> None:
    unknown = "zzzzzzz_OR_Acme_CV_test_abc123_240101_000000"
    summary = setup.pull("--no-download", "--organization", unknown, expect=3)
    assert summary["failures"] == [
        f"organization {unknown}: not found, or the token may not read it"
    ]
    assert all(not items for items in mirror_hashes(setup.mirror).values())
    setup.pull("--no-download", "--organization", setup.world.org)
    assert mirror_hashes(setup.mirror) == server_hashes(setup.engine)
