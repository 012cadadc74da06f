"""The survey map page: served by a signed link (Survey.map_url) or a token, self-contained
(no external host), and rendered by headless Chromium with the network limited to the server:
the COG's colours and the image markers appear in the screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from fieldsync.tokens import create_token
from tests.blob_support import BlobEnv
from tests.builder import build_world
from tests.cog_support import (
    BLUE,
    EAST,
    NORTH,
    RED,
    SOUTH,
    WEST,
    attach_cog,
    halves_cog,
    place_images,
    put_bytes,
)

CHROMIUM = "/usr/bin/chromium"
MARKER = (255, 0, 255)
SCREENSHOT = Path("/tmp/map.png")
MAP_QUERY = "query($id: ID!) { survey(sentera_id: $id) { map_url } }"
POINT = (WEST + 0.2 * (EAST - WEST), (SOUTH + NORTH) / 2)
local_store = pytest.mark.parametrize("blob_env", ["local"], indirect=True)


@dataclass
class MapEnv:
    env: BlobEnv
    token: str

    def map_url(self) -> str:
        answer = self.env.server.post(MAP_QUERY, self.token, {"id": self.env.world.survey})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["data"]["survey"]["map_url"])


@pytest.fixture
def survey_map(blob_env: BlobEnv, tmp_path: Path) -> Iterator[MapEnv]:
    key = put_bytes(blob_env.ctx, halves_cog(tmp_path).read_bytes(), blob_env.base)
    attach_cog(blob_env.engine, blob_env.world.cog, blob_env.world.mosaic_file, key)
    place_images(blob_env.engine, blob_env.world.survey, *POINT)
    yield MapEnv(blob_env, create_token(blob_env.engine, blob_env.world.user))


def page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="map-data" type="application/json">(.*?)</script>', html)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


@local_store
def test_signed_map_link_serves_a_self_contained_page(survey_map: MapEnv) -> None:
    url = survey_map.map_url()
    assert urlsplit(url).path == f"/map/{survey_map.env.world.survey}"
    page = httpx.get(url)
    assert page.status_code == 200
    assert "://" not in page.text, "the page names an external host"
    data = page_data(page.text)
    assert data["points"] == [
        {"name": name, "lat": POINT[1], "lon": POINT[0]}
        for name in ("IMG_0001.jpg", "IMG_0002.jpg")
    ]
    [layer] = data["layers"]
    assert layer["cog"] == survey_map.env.world.cog
    assert "signature=" in layer["url"]
    assets = re.findall(r'(?:src|href)="(/map/static/[^"]+)"', page.text)
    assert len(assets) == 2  # Leaflet's script and stylesheet
    for asset in assets:
        served = httpx.get(survey_map.env.base + asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset


@local_store
def test_map_by_token_and_refused_to_others(survey_map: MapEnv) -> None:
    base, survey = survey_map.env.base, survey_map.env.world.survey
    bearer = {"Authorization": f"Bearer {survey_map.token}"}
    assert httpx.get(f"{base}/map/{survey}", headers=bearer).status_code == 200
    assert httpx.get(f"{base}/map/{survey}").status_code == 401
    stranger = create_token(survey_map.env.engine, build_world(survey_map.env.engine).user)
    hidden = httpx.get(f"{base}/map/{survey}", headers={"Authorization": f"Bearer {stranger}"})
    assert hidden.status_code == 404
    assert hidden.json()["errors"][0]["message"] == f"survey {survey!r} not found"
    tampered = survey_map.map_url().replace(survey, survey.replace("_CO_", "_CO_x"))
    assert httpx.get(tampered).status_code == 403


def screenshot(url: str, target: Path) -> Image.Image:
    """The page as headless Chromium renders it, with every host but 127.0.0.1 unresolvable."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=800,600",
        "--virtual-time-budget=10000",
        f"--screenshot={target}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return Image.open(target).convert("RGB")


def count_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 30) -> int:
    """How many pixels are within `tolerance` of `colour` in every channel."""
    total = 0
    for count, pixel in image.getcolors(800 * 600) or []:
        assert isinstance(pixel, tuple)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)):
            total += count
    return total


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Chromium")
@local_store
def test_map_renders_the_cog_and_the_image_markers(survey_map: MapEnv, tmp_path: Path) -> None:
    image = screenshot(survey_map.map_url(), tmp_path / "map.png")
    shutil.copyfile(tmp_path / "map.png", SCREENSHOT)
    assert image.size == (800, 600)
    total = 800 * 600
    assert count_near(image, RED) > total // 20, "the COG's red half is shown"
    assert count_near(image, BLUE) > total // 20, "the COG's blue half is shown"
    assert count_near(image, MARKER) > 50, "the image markers are shown"
