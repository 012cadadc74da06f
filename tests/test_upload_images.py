"""`fieldsync upload-images` run as a real command against a real `fieldsync serve --demo`, then
checked through the API: positions, altitudes and times from EXIF, every byte downloaded back,
re-runs that upload nothing, photos without GPS left out, changed photos updating their image;
the multipart path of `upload_file`; and the EXIF reader on its own."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from fieldsync.client import FieldSyncClient, RetryPolicy
from fieldsync.client.checksums import file_checksum
from fieldsync.client.exif import UnreadablePhotoError, read_photo_metadata
from fieldsync.client.uploads import MiB, upload_file
from tests.ops_support import ServeProcess, demo_token
from tests.photo_support import BELOW_SEA, NORTH_WEST, SOUTH_EAST, Shot, make_photo
from tests.test_db_commands import no_traceback

DEMO_SURVEY = "61sgabq_CO_AcmeAg_FS_demo_1a2b3c4_240610_140200"
FIELD_OF_SURVEY = "query($s: ID!) { survey(sentera_id: $s) { field { sentera_id } } }"


# -- the EXIF reader ----------------------------------------------------------------------------


def test_exif_reader_signs_hemispheres_and_altitude_and_applies_the_offset(tmp_path: Path) -> None:
    north_west = read_photo_metadata(make_photo(tmp_path / "nw.jpg", NORTH_WEST))
    assert north_west.latitude == pytest.approx(45.3251, abs=1e-6)
    assert north_west.longitude == pytest.approx(-93.5230, abs=1e-6)
    assert north_west.altitude == pytest.approx(375.5)
    assert north_west.captured_at == datetime(
        2024, 6, 12, 14, 6, tzinfo=timezone(-timedelta(hours=5))
    )
    assert north_west.camera == "DJI FC6310"
    assert north_west.no_position is None

    south_east = read_photo_metadata(make_photo(tmp_path / "se.jpg", SOUTH_EAST))
    assert south_east.latitude == pytest.approx(-33.9249, abs=1e-6)
    assert south_east.longitude == pytest.approx(18.4241, abs=1e-6)
    assert south_east.captured_at == datetime(2024, 6, 12, 7, 30, 15, tzinfo=UTC)

    below = read_photo_metadata(make_photo(tmp_path / "low.jpg", BELOW_SEA))
    assert below.altitude == pytest.approx(-430.0)
    assert below.captured_at == datetime(2024, 6, 13, 7, 0, tzinfo=UTC)


def test_exif_reader_names_the_camera_once(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.jpg", NORTH_WEST, make="Sentera", model="Sentera 6X")
    assert read_photo_metadata(photo).camera == "Sentera 6X"


def test_exif_reader_reports_a_photo_without_gps_rather_than_guessing(tmp_path: Path) -> None:
    metadata = read_photo_metadata(make_photo(tmp_path / "no-gps.jpg", None))
    assert (metadata.latitude, metadata.longitude, metadata.altitude) == (None, None, None)
    assert metadata.no_position == "no GPS data in its EXIF"
    assert metadata.camera == "DJI FC6310"


def test_exif_reader_refuses_what_is_not_a_jpeg(tmp_path: Path) -> None:
    png = tmp_path / "map.jpg"
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    with pytest.raises(UnreadablePhotoError, match="not a JPEG"):
        read_photo_metadata(png)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(UnreadablePhotoError, match="not a JPEG image"):
        read_photo_metadata(text)


# -- a real server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body_bytes: int


class RecordingFront:
    """A plain HTTP front on a loopback port that records each request and forwards it to
    `target`: the server's signed links point here (FIELDSYNC_PUBLIC_URL), so every PUT of
    bytes and every download passes through it."""

    def __init__(self) -> None:
        self.target = ""
        self.seen: list[Seen] = []
        self.refuse_puts = 0  # how many of the next PUTs to answer 503 without forwarding
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                front.forward(self)

            def do_GET(self) -> None:
                front.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.seen.append(Seen(handler.command, handler.path, headers, len(body)))
        if handler.command == "PUT" and self.refuse_puts > 0:
            self.refuse_puts -= 1
            handler.send_response(503)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        passed = {k: v for k, v in headers.items() if k not in ("host", "connection")}
        answer = httpx.request(
            handler.command, self.target + handler.path, headers=passed, content=body, timeout=60
        )
        handler.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Demo:
    server: ServeProcess
    token: str
    database_url: str
    front: RecordingFront

    def client(self) -> FieldSyncClient:
        return FieldSyncClient(self.server.base, self.token)

    def new_survey(self) -> str:
        """An empty survey of its own in the field of the demo's Elk River survey."""
        with self.client() as client:
            field = client.execute(FIELD_OF_SURVEY, {"s": DEMO_SURVEY})["survey"]["field"]
            result = client.upsert_surveys(field["sentera_id"], [{"name": uuid.uuid4().hex}])
        assert not result.failed
        return str(result.succeeded[0]["sentera_id"])

    def images(self, survey: str) -> dict[str, dict[str, Any]]:
        """The survey's images by filename, through sync_images."""
        held: dict[str, dict[str, Any]] = {}
        with self.client() as client:
            client.sync_images(survey, held)
        by_name = {image["filename"]: image for image in held.values()}
        assert len(by_name) == len(held), "two images share a filename"
        return by_name


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("upload-images")
    url = f"sqlite:///{root}/fieldsync.db"
    front = RecordingFront()
    server = ServeProcess(root, url, "--demo", env={"FIELDSYNC_PUBLIC_URL": front.base})
    front.target = server.base
    try:
        token = demo_token(url)
        yield Demo(server, token, url, front)
    finally:
        server.stop()
        front.stop()


def command_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(extra)
    return env


def upload_command(
    demo: Demo, survey: str, directory: Path, *options: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fieldsync", "upload-images", survey, str(directory), *options],
        env=command_env(FIELDSYNC_SERVER=demo.server.base, FIELDSYNC_TOKEN=token or demo.token),
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    no_traceback(result)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def downloaded(url: str) -> bytes:
    response = httpx.get(url, timeout=60)
    response.raise_for_status()
    return response.content


def assert_carries(image: dict[str, Any], shot: Shot, photo: Path) -> None:
    assert image["latitude"] == pytest.approx(shot.latitude, abs=1e-6)
    assert image["longitude"] == pytest.approx(shot.longitude, abs=1e-6)
    assert image["altitude"] == pytest.approx(shot.altitude)
    assert datetime.fromisoformat(image["captured_at"]) == shot.captured_at
    assert int(image["size"]) == photo.stat().st_size
    assert image["checksum"] == file_checksum(photo)
    assert downloaded(image["url"]) == photo.read_bytes()


@pytest.mark.slow
def test_upload_images_end_to_end(demo: Demo, tmp_path: Path) -> None:
    survey = demo.new_survey()
    photos = tmp_path / "flight"
    photos.mkdir()
    shots = {"IMG_0001.JPG": NORTH_WEST, "IMG_0002.jpeg": SOUTH_EAST, "img_0003.jpg": BELOW_SEA}
    for seed, (name, shot) in enumerate(shots.items()):
        make_photo(photos / name, shot, seed=seed)
    make_photo(photos / "IMG_0004.jpg", None, seed=9)
    (photos / "notes.txt").write_text("not a photo")

    first = upload_command(demo, survey, photos, "--json")
    assert first.returncode == 3, first.stderr
    summary = summary_of(first)
    assert (summary["uploaded"], summary["created"], summary["skipped"]) == (3, 3, 0)
    assert (summary["without_gps"], summary["failed"]) == (1, 0)
    by_name = {entry["filename"]: entry for entry in summary["images"]}
    assert set(by_name) == {*shots, "IMG_0004.jpg"}
    assert by_name["IMG_0004.jpg"]["outcome"] == "no_gps"
    assert by_name["IMG_0004.jpg"]["reason"] == "no GPS data in its EXIF"
    assert by_name["IMG_0001.JPG"]["camera"] == "DJI FC6310"

    images = demo.images(survey)
    assert set(images) == set(shots)
    for name, shot in shots.items():
        assert_carries(images[name], shot, photos / name)
        assert by_name[name]["sentera_id"] == images[name]["sentera_id"]

    again = upload_command(demo, survey, photos, "--json")
    assert again.returncode == 3
    assert (summary_of(again)["uploaded"], summary_of(again)["skipped"]) == (0, 3)

    (photos / "IMG_0004.jpg").unlink()
    quiet = upload_command(demo, survey, photos)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == (
        "uploaded 0 (0 new, 0 updated), skipped 3 already there, 0 without GPS, 0 failed"
    )
    unchanged = {name: image["content_hash"] for name, image in demo.images(survey).items()}
    assert unchanged == {name: image["content_hash"] for name, image in images.items()}


@pytest.mark.slow
def test_a_changed_photo_updates_its_image_rather_than_adding_one(
    demo: Demo, tmp_path: Path
) -> None:
    survey = demo.new_survey()
    photos = tmp_path / "flight"
    photos.mkdir()
    photo = make_photo(photos / "IMG_0100.jpg", NORTH_WEST, seed=1)
    assert upload_command(demo, survey, photos, "--quiet").returncode == 0
    before = demo.images(survey)["IMG_0100.jpg"]

    make_photo(photo, SOUTH_EAST, seed=2)  # same name, other bytes and place
    result = upload_command(demo, survey, photos, "--json")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["created"], summary["updated"], summary["skipped"]) == (0, 1, 0)

    images = demo.images(survey)
    assert list(images) == ["IMG_0100.jpg"]
    after = images["IMG_0100.jpg"]
    assert after["sentera_id"] == before["sentera_id"]
    assert after["checksum"] != before["checksum"]
    assert_carries(after, SOUTH_EAST, photo)


@pytest.mark.slow
def test_an_unreadable_photo_is_reported_and_the_others_go_up(demo: Demo, tmp_path: Path) -> None:
    survey = demo.new_survey()
    photos = tmp_path / "flight"
    photos.mkdir()
    make_photo(photos / "good.jpg", NORTH_WEST)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    result = upload_command(demo, survey, photos)
    assert result.returncode == 3
    no_traceback(result)
    assert "broken.jpg: not uploaded: not a JPEG image" in result.stderr
    assert result.stdout.strip().endswith("0 without GPS, 1 failed")
    assert set(demo.images(survey)) == {"good.jpg"}


@pytest.mark.slow
def test_fatal_errors_are_one_line_with_exit_1(demo: Demo, tmp_path: Path) -> None:
    survey = demo.new_survey()
    make_photo(tmp_path / "a.jpg", NORTH_WEST)
    bad_token = upload_command(demo, survey, tmp_path, token="fst_not-a-token")
    missing = upload_command(demo, "nope_SU_missing", tmp_path)
    for result in (bad_token, missing):
        assert result.returncode == 1
        no_traceback(result)
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "refused the token" in bad_token.stderr
    assert "survey 'nope_SU_missing' not found" in missing.stderr
    assert demo.images(survey) == {}


@pytest.mark.slow
def test_a_missing_directory_is_a_usage_error(demo: Demo, tmp_path: Path) -> None:
    result = upload_command(demo, demo.new_survey(), tmp_path / "nowhere")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


@pytest.mark.slow
def test_multipart_upload_keeps_every_byte(demo: Demo, tmp_path: Path) -> None:
    survey = demo.new_survey()
    big = tmp_path / "orthomosaic.jpg"
    big.write_bytes(random.Random(7).randbytes(11 * MiB))
    counted: list[int] = []
    with demo.client() as client:
        file_key = upload_file(
            client, big, content_type="image/jpeg", on_bytes=counted.append, multipart_from=MiB
        )
        result = client.upsert_images(
            survey,
            [{"filename": big.name, "latitude": 45.0, "longitude": -93.0, "file_key": file_key}],
        )
    assert not result.failed, result.failed
    assert sum(counted) == 11 * MiB
    assert len(counted) == 2  # an 8 MiB part and a 3 MiB one
    image = demo.images(survey)[big.name]
    assert image["checksum"] == file_checksum(big)
    assert downloaded(image["url"]) == big.read_bytes()


@pytest.mark.slow
def test_bytes_go_to_the_signed_links_with_their_headers_and_no_token(
    demo: Demo, tmp_path: Path
) -> None:
    survey = demo.new_survey()
    photos = tmp_path / "flight"
    photos.mkdir()
    photo = make_photo(photos / "IMG_0200.jpg", NORTH_WEST)
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(3).randbytes(6 * MiB))
    already = len(demo.front.seen)
    assert upload_command(demo, survey, photos, "--quiet").returncode == 0
    with demo.client() as client:
        upload_file(client, big, content_type="application/octet-stream", multipart_from=MiB)
    puts = [seen for seen in demo.front.seen[already:] if seen.method == "PUT"]
    assert [seen.path.split("/")[2] for seen in puts] == ["put", "part"]
    single, part = puts
    assert single.headers["content-md5"] == file_checksum(photo)
    assert single.headers["content-length"] == str(photo.stat().st_size)
    assert single.headers["content-type"] == "image/jpeg"
    assert single.body_bytes == photo.stat().st_size
    assert part.body_bytes == 6 * MiB
    for seen in puts:
        assert "authorization" not in seen.headers
        assert "transfer-encoding" not in seen.headers


@pytest.mark.slow
def test_a_refused_put_is_sent_again_and_counted_once(demo: Demo, tmp_path: Path) -> None:
    survey = demo.new_survey()
    small = make_photo(tmp_path / "small.jpg", NORTH_WEST)
    big = tmp_path / "big.jpg"
    big.write_bytes(random.Random(5).randbytes(9 * MiB))  # parts of 8 MiB and 1 MiB
    quick = RetryPolicy(base_delay=0.01, max_delay=0.05)
    with FieldSyncClient(demo.server.base, demo.token, retry=quick) as client:
        for path in (small, big):
            counted: list[int] = []
            already = len(demo.front.seen)
            demo.front.refuse_puts = 1
            file_key = upload_file(
                client, path, content_type="image/jpeg", on_bytes=counted.append, multipart_from=MiB
            )
            puts = [seen for seen in demo.front.seen[already:] if seen.method == "PUT"]
            assert len(puts) == (2 if path is small else 3)
            assert puts[0].path == puts[1].path
            assert sum(counted) == path.stat().st_size
            item = {"filename": path.name, "latitude": 1.0, "longitude": 2.0, "file_key": file_key}
            assert not client.upsert_images(survey, [item]).failed
    images = demo.images(survey)
    for path in (small, big):
        assert downloaded(images[path.name]["url"]) == path.read_bytes()
