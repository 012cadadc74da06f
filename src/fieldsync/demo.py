"""The demo world behind `fieldsync serve --demo`.

`install_demo` fills an empty database with one season of made-up agronomy data for the
fictional company "Acme Agronomy" (an organization tree, users, fields, surveys with hundreds of
images along flight lines, mosaics, COGs, feature sets, a logo, files and flight tasks), applied
as one changeset, and prints a token and a `curl` command to try sync with.

The world is deterministic: a seeded `random.Random` makes the ids and values, and every record
carries an explicit `created_at`, so two installs produce the same ids and the same content
hashes. Only the token differs from run to run.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine

from fieldsync.changeset import apply_changeset
from fieldsync.ids import TypeCode
from fieldsync.model.kinds import ALL_KINDS, IMAGE
from fieldsync.storage import listings
from fieldsync.storage import tables as t
from fieldsync.storage.api_tokens import user_id_of
from fieldsync.storage.rows import count_rows, rows_by_sentera_id
from fieldsync.tokens import create_token

__all__ = [
    "SYNC_IMAGES_QUERY",
    "DemoInfo",
    "DemoWorld",
    "curl_command",
    "demo_world",
    "install_demo",
    "sync_images_payload",
]

assert IMAGE.sync is not None
IMAGE_PAGE_SIZE = IMAGE.sync.page_size
"""Images per sync_images page: the demo's largest survey spans several."""
DEMO_SEED = 20240601
DEMO_ORG_KEY = "AcmeAg"
_SOURCE, _ENV, _BUILD = "FS", "demo", "1a2b3c4"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

SYNC_IMAGES_QUERY = (
    "query SyncSurveyImages($survey_sentera_id: ID!, $content_hashes: [String!]!) "
    "{ sync_images(survey_sentera_id: $survey_sentera_id, content_hashes: $content_hashes) "
    "{ remaining_count "
    "upserted { sentera_id content_hash "
    "... on Image { filename latitude longitude altitude captured_at } } "
    "deleted { sentera_id content_hash } "
    "failed { key message details } } }"
)
"""The query the banner's `curl` example runs (one line, so it pastes into a shell)."""


def sync_images_payload(
    survey_sentera_id: str, content_hashes: list[str] | None = None
) -> dict[str, Any]:
    """The JSON body of a `sync_images` call, hashes passed as a GraphQL variable."""
    return {
        "query": SYNC_IMAGES_QUERY,
        "variables": {
            "survey_sentera_id": survey_sentera_id,
            "content_hashes": content_hashes or [],
        },
    }


def curl_command(url: str, token: str, survey_sentera_id: str) -> str:
    """A ready-to-paste `curl` that runs SYNC_IMAGES_QUERY against `url` (POST, JSON)."""
    body = json.dumps(sync_images_payload(survey_sentera_id), separators=(",", ":"))
    return " \\\n  ".join(
        [
            f"curl -sS {shlex.quote(url)}",
            "-H " + shlex.quote(f"Authorization: Bearer {token}"),
            "-H " + shlex.quote("Content-Type: application/json"),
            "-d " + shlex.quote(body),
        ]
    )


# -- the world ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoWorld:
    """The demo changeset and the ids a banner or a test needs from it."""

    changeset: dict[str, Any]
    user_sentera_id: str
    user_email: str
    organization_sentera_id: str
    organization_name: str
    survey_sentera_id: str
    survey_name: str
    survey_image_count: int
    user_name: str

    @property
    def counts(self) -> dict[str, int]:
        """Records per changeset key, in changeset order (organizations, users, fields, …)."""
        upsert = self.changeset["upsert"]
        return {
            kind.changeset_key: len(upsert[kind.changeset_key])
            for kind in ALL_KINDS
            if kind.changeset_key in upsert
        }


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(slots=True)
class _Builder:
    rng: random.Random
    upsert: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def new_id(self, code: TypeCode, created_at: datetime) -> str:
        """An id of the documented shape, its stamp the item's creation time."""
        while True:
            random_part = "".join(self.rng.choices(_ALPHABET, k=7))
            sentera_id = (
                f"{random_part}_{code.value}_{DEMO_ORG_KEY}_{_SOURCE}_{_ENV}_{_BUILD}_"
                f"{created_at:%y%m%d_%H%M%S}"
            )
            if sentera_id not in self.used:
                self.used.add(sentera_id)
                return sentera_id

    def add(
        self, key: str, code: TypeCode, created_at: datetime, by: str | None, **values: Any
    ) -> str:
        record: dict[str, Any] = {"sentera_id": self.new_id(code, created_at)}
        record.update(values)
        record["created_at"] = _iso(created_at)
        if by is not None:
            record["created_by_sentera_id"] = by
        self.upsert.setdefault(key, []).append(record)
        sentera_id: str = record["sentera_id"]
        return sentera_id


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    org: str
    latitude: float
    longitude: float
    acres: float
    ground_m: float


@dataclass(frozen=True, slots=True)
class _SurveySpec:
    field: str
    name: str
    start: str
    sensor: str  # RGB, MS (multispectral), WEED, THERMAL
    images: int
    second_pass: int = 0
    """Images of a second, low pass over the field, drawn from their own random stream (so
    they change no other id or value of the world)."""


# Organization key -> (name, parent key). The first is the root.
_ORGS: dict[str, tuple[str, str | None]] = {
    "root": ("Acme Agronomy", None),
    "rrv": ("Acme Agronomy - Red River Valley", "root"),
    "iowa": ("Acme Agronomy - Central Iowa", "root"),
    "trials": ("Story County Seed Trials", "iowa"),
}
# (first name, last name, email, organization key, role); the first is the demo user.
_USERS = (
    ("Jordan", "Lindqvist", "demo@acme-ag.test", "root", "admin"),
    ("Priya", "Raman", "priya.raman@acme-ag.test", "rrv", "viewer"),
    ("Marcus", "Hale", "marcus.hale@acme-ag.test", "iowa", "editor"),
    ("Elena", "Ortiz", "elena.ortiz@acme-ag.test", "trials", "editor"),
)
_FIELDS = (
    _FieldSpec("Elk River Research Farm", "root", 45.328761, -93.521094, 40.0, 283.0),
    _FieldSpec("Kragnes North 160", "rrv", 46.993812, -96.756205, 158.4, 268.0),
    _FieldSpec("Sabin Home Quarter", "rrv", 46.778934, -96.652117, 152.1, 279.0),
    _FieldSpec("Nevada East 80", "iowa", 42.022815, -93.430512, 78.6, 300.0),
    _FieldSpec("Boone River Bottoms", "iowa", 42.059703, -93.880218, 121.3, 272.0),
    _FieldSpec("Trial Block A", "trials", 42.010518, -93.739804, 12.2, 305.0),
    _FieldSpec("Trial Block B", "trials", 42.013107, -93.735221, 9.4, 306.0),
)
_SURVEYS = (
    # 2,500 images: the survey whose sync_images takes three pages (1,000 + 1,000 + 500).
    _SurveySpec(
        "Elk River Research Farm", "V6 RGB stand count", "2024-06-12T14:02:00", "RGB", 312, 2188
    ),
    _SurveySpec("Kragnes North 160", "Emergence", "2024-06-18T15:10:00", "RGB", 264),
    _SurveySpec("Sabin Home Quarter", "Emergence", "2024-06-20T16:30:00", "RGB", 150),
    _SurveySpec("Nevada East 80", "V4 stand", "2024-06-05T13:45:00", "RGB", 172),
    _SurveySpec("Trial Block A", "Plot imagery", "2024-06-28T15:00:00", "MS", 84),
    _SurveySpec("Trial Block B", "Plot imagery", "2024-06-28T15:40:00", "MS", 48),
    _SurveySpec("Boone River Bottoms", "Weed pressure", "2024-07-02T14:20:00", "WEED", 96),
    _SurveySpec("Nevada East 80", "Tassel count", "2024-07-15T14:05:00", "RGB", 120),
    _SurveySpec("Elk River Research Farm", "R1 6X multispectral", "2024-07-23T15:30:00", "MS", 196),
    _SurveySpec("Trial Block A", "Canopy temperature", "2024-07-30T19:10:00", "THERMAL", 64),
    _SurveySpec("Kragnes North 160", "Mid-season NDVI", "2024-08-02T16:00:00", "MS", 228),
    _SurveySpec("Boone River Bottoms", "Late season", "2024-08-20T15:00:00", "RGB", 0),
)
# (mosaic type, quality, every nth image) per sensor
_MOSAICS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "RGB": (("RGB", "FULL", 1), ("RGB", "PREVIEW", 3), ("ELEVATION", "FULL", 1)),
    "MS": (
        ("MULTISPECTRAL", "FULL", 1),
        ("NDVI", "FULL", 1),
        ("NDRE", "FULL", 1),
        ("RGB", "PREVIEW", 3),
    ),
    "WEED": (("RGB", "FULL", 1), ("WEED_DETECTION", "FULL", 1)),
    "THERMAL": (("THERMAL", "FULL", 1), ("CUSTOM_INDEXED", "FULL", 1)),
}
_SENSOR_NAMES = {
    "RGB": "65R",
    "MS": "6X",
    "WEED": "65R",
    "THERMAL": "6X Thermal",
}
_AGL_FEET = {"RGB": 300, "MS": 400, "WEED": 300, "THERMAL": 400}
_UNGRAYSCALE_ERROR = (
    "Failed to ungrayscale input image: Expected number of bands to be in (2, 4), but found 1"
)
# (organization key, name, status, field name or None, survey index or None, notes)
_TASKS: tuple[tuple[str, str, str, str | None, int | None, str | None], ...] = (
    ("root", "Research farm V6 stand count", "COMPLETED", "Elk River Research Farm", 0, None),
    ("root", "Research farm R1 6X", "COMPLETED", "Elk River Research Farm", 8, None),
    ("root", "Research farm R3 canopy", "OPEN", "Elk River Research Farm", None, None),
    ("rrv", "Kragnes emergence", "COMPLETED", "Kragnes North 160", 1, None),
    ("rrv", "Kragnes mid-season 6X", "FLIGHT_COMPLETED", "Kragnes North 160", 10, None),
    ("rrv", "Kragnes tile drainage check", "CANCELED", "Kragnes North 160", None,
     "Field under water after 3 in. of rain; fly after harvest instead."),
    ("rrv", "Sabin emergence", "COMPLETED", "Sabin Home Quarter", 2, None),
    ("rrv", "Sabin pre-harvest", "OPEN", "Sabin Home Quarter", None, None),
    ("iowa", "Nevada V4 stand", "COMPLETED", "Nevada East 80", 3, None),
    ("iowa", "Nevada tassel count", "COMPLETED", "Nevada East 80", 7, None),
    ("iowa", "Nevada R5 scouting", "IN_PROGRESS", "Nevada East 80", None, None),
    ("iowa", "Boone weed pressure", "COMPLETED", "Boone River Bottoms", 6, None),
    ("iowa", "Boone late season", "WAITING_FOR_UPLOAD", "Boone River Bottoms", 11,
     "Flown; SD card shipped to the office."),
    ("trials", "Block A plot imagery", "COMPLETED", "Trial Block A", 4, None),
    ("trials", "Block A canopy temperature", "COMPLETED", "Trial Block A", 9, None),
    ("trials", "Block B plot imagery", "COMPLETED", "Trial Block B", 5, None),
    ("trials", "Block B re-fly", "FAILED", "Trial Block B", None,
     "Aborted at 40%: low battery warning on the second pack."),
)  # fmt: skip

_SECOND_PASS_SEED = DEMO_SEED + 1
_ORGS_CREATED = _at("2024-03-01T15:00:00")
_USERS_CREATED = _at("2024-03-01T15:30:00")
_FIELDS_CREATED = _at("2024-03-04T16:00:00")


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _flight_line(
    rng: random.Random, spec: _FieldSpec, survey: _SurveySpec, start: datetime, count: int
) -> list[tuple[float, float, float, datetime]]:
    """Serpentine passes over the field: (latitude, longitude, altitude MSL, captured_at)."""
    lines = max(2, round(math.sqrt(count / 4)))
    per_line = math.ceil(count / lines)
    along_m, across_m = 24.0, 38.0
    agl = _AGL_FEET[survey.sensor] * 0.3048
    m_per_deg_lat = 111_320.0
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(spec.latitude))
    lat0 = spec.latitude - (per_line - 1) * along_m / 2 / m_per_deg_lat
    lon0 = spec.longitude - (lines - 1) * across_m / 2 / m_per_deg_lon
    points: list[tuple[float, float, float, datetime]] = []
    at = start + timedelta(minutes=4)
    for index in range(count):
        line, step = divmod(index, per_line)
        if step == 0 and line > 0:
            at += timedelta(seconds=rng.randint(14, 22))  # the turn at the end of a pass
        if line % 2:
            step = per_line - 1 - step
        latitude = lat0 + (step * along_m + rng.gauss(0, 0.6)) / m_per_deg_lat
        longitude = lon0 + (line * across_m + rng.gauss(0, 0.6)) / m_per_deg_lon
        altitude = spec.ground_m + agl + rng.gauss(0, 0.8)
        points.append((round(latitude, 7), round(longitude, 7), round(altitude, 2), at))
        at += timedelta(seconds=2)
    return points


def _second_pass(
    b: _Builder,
    spec: _FieldSpec,
    survey: _SurveySpec,
    survey_id: str,
    owner: str,
    after: datetime,
    serial: str,
    uploaded: datetime,
) -> list[str]:
    """The images of a survey's second pass, numbered on from the first pass."""
    side = _Builder(random.Random(_SECOND_PASS_SEED), b.upsert, b.used)
    points = _flight_line(side.rng, spec, survey, after, survey.second_pass)
    images: list[str] = []
    for number, (latitude, longitude, altitude, captured) in enumerate(
        points, start=survey.images + 1
    ):
        images.append(
            side.add(
                "images",
                TypeCode.IMAGE,
                uploaded + timedelta(seconds=number // 4),
                owner,
                survey_sentera_id=survey_id,
                filename=f"{serial}-FW{number:05d}.jpg",
                latitude=latitude,
                longitude=longitude,
                altitude=round(altitude - 30.0, 2),
                captured_at=_iso(captured),
                size=side.rng.randint(6_800_000, 9_400_000),
            )
        )
    return images


@cache
def demo_world() -> DemoWorld:
    """Build the demo changeset (the same every time)."""
    rng = random.Random(DEMO_SEED)
    b = _Builder(rng)

    orgs: dict[str, str] = {}
    for key, (name, parent) in _ORGS.items():
        orgs[key] = b.add(
            "organizations",
            TypeCode.ORGANIZATION,
            _ORGS_CREATED,
            None,
            name=name,
            parent_sentera_id=orgs[parent] if parent else None,
        )
    users: dict[str, str] = {}
    for index, (first, last, email, org, role) in enumerate(_USERS):
        users[org] = b.add(
            "users",
            TypeCode.USER,
            _USERS_CREATED + timedelta(minutes=index),
            None,
            email=email,
            first_name=first,
            last_name=last,
            memberships=[{"organization_sentera_id": orgs[org], "role": role}],
        )
    demo_user = users["root"]

    fields: dict[str, str] = {}
    field_specs = {spec.name: spec for spec in _FIELDS}
    for index, spec in enumerate(_FIELDS):
        fields[spec.name] = b.add(
            "fields",
            TypeCode.FIELD,
            _FIELDS_CREATED + timedelta(minutes=7 * index),
            users[spec.org],
            organization_sentera_id=orgs[spec.org],
            name=spec.name,
            latitude=spec.latitude,
            longitude=spec.longitude,
        )
        acres = spec.acres
        b.add(
            "files",
            TypeCode.FILE,
            _FIELDS_CREATED + timedelta(minutes=7 * index + 2),
            users[spec.org],
            owner_type="FIELD",
            owner_sentera_id=fields[spec.name],
            filename="boundary.geojson",
            download_filename=f"{_slug(spec.name)}-boundary.geojson",
            file_type="GEOJSON",
            path=f"fields/{_slug(spec.name)}/boundary.geojson",
            size=rng.randint(2_000, 9_000),
            version=1,
        )
        if spec.org == "trials":
            b.add(
                "feature_sets",
                TypeCode.FEATURE_SET,
                _FIELDS_CREATED + timedelta(days=30, minutes=index),
                users[spec.org],
                owner_type="FIELD",
                owner_sentera_id=fields[spec.name],
                name="2024 plot layout",
                type="PLOT_LAYOUT",
                status="SUCCESS",
            )
        elif acres > 150:
            b.add(
                "feature_sets",
                TypeCode.FEATURE_SET,
                _FIELDS_CREATED + timedelta(days=40, minutes=index),
                users[spec.org],
                owner_type="FIELD",
                owner_sentera_id=fields[spec.name],
                name="Ground control points (RTK)",
                type="GROUND_CONTROL_POINTS",
                status="SUCCESS",
            )
    b.add(
        "files",
        TypeCode.FILE,
        _FIELDS_CREATED + timedelta(days=20),
        demo_user,
        owner_type="FIELD",
        owner_sentera_id=fields["Elk River Research Farm"],
        filename="soil_sampling_2024.pdf",
        download_filename="elk-river-soil-sampling-2024.pdf",
        file_type="DOCUMENT",
        size=1_482_113,
        version=1,
    )

    largest: tuple[int, str, str] = (-1, "", "")
    surveys: list[str] = []
    for index, survey in enumerate(_SURVEYS):
        spec = field_specs[survey.field]
        owner = users[spec.org]
        start = _at(survey.start)
        duration = timedelta(minutes=8 + survey.images * 2 // 60 + survey.images // 20)
        end = start + duration
        title = f"{start:%Y-%m-%d} {survey.name}"
        survey_id = b.add(
            "surveys",
            TypeCode.SURVEY,
            start - timedelta(days=2),
            owner,
            field_sentera_id=fields[survey.field],
            name=title,
            start_time=_iso(start),
            end_time=_iso(end),
            notes=f"{_SENSOR_NAMES[survey.sensor]} at {_AGL_FEET[survey.sensor]} ft AGL",
        )
        surveys.append(survey_id)
        if survey.images + survey.second_pass > largest[0]:
            largest = (survey.images + survey.second_pass, survey_id, f"{spec.name}: {title}")
        uploaded = end + timedelta(minutes=rng.randint(40, 95))
        if survey.images == 0:
            b.add(
                "files",
                TypeCode.FILE,
                start - timedelta(days=1),
                owner,
                owner_type="SURVEY",
                owner_sentera_id=survey_id,
                filename="flight_plan.kml",
                download_filename=f"{_slug(spec.name)}-{start:%Y%m%d}-flight-plan.kml",
                file_type="OTHER",
                size=rng.randint(20_000, 60_000),
                version=1,
            )
            continue

        serial = "".join(rng.choices("0123456789abcdef", k=12))
        images: list[str] = []
        points = _flight_line(rng, spec, survey, start, survey.images)
        for number, (latitude, longitude, altitude, captured) in enumerate(points, start=1):
            images.append(
                b.add(
                    "images",
                    TypeCode.IMAGE,
                    uploaded + timedelta(seconds=number // 4),
                    owner,
                    survey_sentera_id=survey_id,
                    filename=f"{serial}-FW{number:05d}.jpg",
                    latitude=latitude,
                    longitude=longitude,
                    altitude=altitude,
                    captured_at=_iso(captured),
                    size=rng.randint(6_800_000, 9_400_000)
                    if survey.sensor in ("RGB", "WEED")
                    else rng.randint(2_400_000, 3_100_000),
                )
            )
        if survey.second_pass:
            last_capture = points[-1][3] + timedelta(minutes=6)
            images += _second_pass(
                b, spec, survey, survey_id, owner, last_capture, serial, uploaded
            )
        b.add(
            "files",
            TypeCode.FILE,
            uploaded,
            owner,
            owner_type="SURVEY",
            owner_sentera_id=survey_id,
            filename="flight_log.csv",
            download_filename=f"{_slug(spec.name)}-{start:%Y%m%d}-flight-log.csv",
            file_type="FLIGHT_LOG",
            size=rng.randint(40_000, 180_000),
            version=1,
        )
        if survey.sensor != "RGB":
            b.add(
                "files",
                TypeCode.FILE,
                uploaded + timedelta(seconds=30),
                owner,
                owner_type="SURVEY",
                owner_sentera_id=survey_id,
                filename="uav_metadata.json",
                download_filename=f"{_slug(spec.name)}-{start:%Y%m%d}-uav-metadata.json",
                file_type="UAV_METADATA",
                size=rng.randint(3_000, 12_000),
                version=1,
            )

        newest = index == len(_SURVEYS) - 2  # the last survey with images: still processing
        processed = uploaded + timedelta(hours=2, minutes=rng.randint(0, 50))
        for number, (mosaic_type, quality, every) in enumerate(_MOSAICS[survey.sensor]):
            made = processed + timedelta(minutes=11 * number)
            if newest and number > 0:
                image_status, message, released = "PROCESSING", None, False
            elif survey.field == "Trial Block B" and mosaic_type == "NDRE":
                image_status, released = "FAILED", False
                message = "Not enough overlap to stitch: 52% side overlap, at least 65% needed"
            else:
                image_status, message, released = "AVAILABLE", None, True
            label = mosaic_type.replace("_", " ").title().replace("Rgb", "RGB")
            label = label.replace("Ndvi", "NDVI").replace("Ndre", "NDRE")
            mosaic_id = b.add(
                "mosaics",
                TypeCode.MOSAIC,
                made,
                owner,
                survey_sentera_id=survey_id,
                name=f"{label} ({quality.lower()})",
                mosaic_type=mosaic_type,
                quality=quality,
                image_status=image_status,
                captured_at=_iso(start),
                area={"value": round(spec.acres * 0.404686, 2), "unit": "HECTARE"}
                if spec.org == "trials"
                else {"value": spec.acres, "unit": "ACRE"},
                is_from_sentera_sensor=survey.sensor != "WEED",
                message=message,
                released=released,
                image_sentera_ids=images[::every],
            )
            if image_status == "AVAILABLE":
                b.add(
                    "files",
                    TypeCode.FILE,
                    made + timedelta(minutes=1),
                    owner,
                    owner_type="MOSAIC",
                    owner_sentera_id=mosaic_id,
                    filename=f"{mosaic_type.lower()}_{quality.lower()}.tif",
                    download_filename=(
                        f"{_slug(spec.name)}-{start:%Y%m%d}-{mosaic_type.lower()}"
                        f"-{quality.lower()}.tif"
                    ),
                    file_type="MOSAIC",
                    path=f"surveys/{survey_id}/mosaics/{mosaic_id}.tif",
                    size=rng.randint(180_000_000, 2_600_000_000)
                    if quality == "FULL"
                    else rng.randint(9_000_000, 40_000_000),
                    version=1,
                )
            if image_status == "PROCESSING":
                status, error, max_zoom, clipped = "PENDING", None, None, False
            elif image_status == "FAILED":
                status, max_zoom, clipped = "FAIL", None, False
                error = "The source mosaic failed to build; nothing to tile"
            elif mosaic_type == "ELEVATION" and index % 2 == 0:
                status, error, max_zoom, clipped = "FAIL", _UNGRAYSCALE_ERROR, None, True
            elif newest:
                status, error, max_zoom, clipped = "PROCESSING", None, None, False
            else:
                status, error, clipped = "SUCCESS", None, quality == "FULL"
                max_zoom = 22 if spec.org == "trials" else rng.choice((19, 20, 21))
            cog_id = b.add(
                "cogs",
                TypeCode.COG,
                made + timedelta(minutes=rng.randint(18, 45)),
                owner,
                mosaic_sentera_id=mosaic_id,
                status=status,
                clipped=clipped,
                error=error,
                max_zoom=max_zoom,
            )
            if status == "SUCCESS" and quality == "FULL":
                b.add(
                    "files",
                    TypeCode.FILE,
                    made + timedelta(minutes=50),
                    owner,
                    owner_type="MOSAIC",
                    owner_sentera_id=mosaic_id,
                    filename=f"{mosaic_type.lower()}_cog.tif",
                    download_filename=f"{_slug(spec.name)}-{start:%Y%m%d}-{mosaic_type.lower()}-cog.tif",
                    file_type="COG",
                    path=f"cogs/{cog_id}.tif",
                    size=rng.randint(150_000_000, 2_200_000_000),
                    version=1,
                )

        analysis = {
            "RGB": ("Stand count", "SV_PLANT_COUNT"),
            "MS": ("Flight log", "FLIGHT_LOG"),
            "WEED": ("Weed ground truth", "WEEDS_GROUND_TRUTH"),
            "THERMAL": ("Canopy temperature points", "POINT_PERCENT"),
        }[survey.sensor]
        if survey.name == "Tassel count":
            analysis = ("Tassel count", "TASSEL_COUNT")
        status = "PROCESSING" if newest else "FAIL" if survey.sensor == "WEED" else "SUCCESS"
        feature_set = b.add(
            "feature_sets",
            TypeCode.FEATURE_SET,
            processed + timedelta(hours=1),
            owner,
            owner_type="SURVEY",
            owner_sentera_id=survey_id,
            name=analysis[0],
            type=analysis[1],
            status=status,
        )
        if status == "SUCCESS":
            b.add(
                "files",
                TypeCode.FILE,
                processed + timedelta(hours=1, minutes=5),
                owner,
                owner_type="FEATURE_SET",
                owner_sentera_id=feature_set,
                filename=f"{_slug(analysis[0]).replace('-', '_')}.geojson",
                download_filename=f"{_slug(spec.name)}-{start:%Y%m%d}-{_slug(analysis[0])}.geojson",
                file_type="GEOJSON",
                size=rng.randint(200_000, 4_000_000),
                version=1,
            )

    b.add(
        "feature_sets",
        TypeCode.FEATURE_SET,
        _at("2024-08-10T18:00:00"),
        users["rrv"],
        owner_type="ORGANIZATION",
        owner_sentera_id=orgs["rrv"],
        name="Scouting notes 2024",
        type="GROUND_SCOUTING",
        status="NO_CONTENT",
    )
    logo = b.add(
        "logos",
        TypeCode.LOGO,
        _ORGS_CREATED + timedelta(hours=1),
        None,
        organization_sentera_id=orgs["root"],
        name="Acme Agronomy logo",
    )
    for filename, size in (("logo.png", 48_211), ("logo@2x.png", 131_904)):
        b.add(
            "files",
            TypeCode.FILE,
            _ORGS_CREATED + timedelta(hours=1, minutes=2),
            demo_user,
            owner_type="LOGO",
            owner_sentera_id=logo,
            filename=filename,
            download_filename=f"acme-agronomy-{filename}",
            file_type="IMAGE",
            size=size,
            version=1,
        )
    for number, (org, name, status, field_name, survey_index, notes) in enumerate(_TASKS):
        if survey_index is not None:
            created = _at(_SURVEYS[survey_index].start) - timedelta(days=5)
        else:
            created = _at("2024-08-05T13:00:00") + timedelta(minutes=25 * number)
        b.add(
            "flight_tasks",
            TypeCode.FLIGHT_TASK,
            created,
            users[org],
            organization_sentera_id=orgs[org],
            name=name,
            status=status,
            field_sentera_id=fields[field_name] if field_name else None,
            survey_sentera_id=surveys[survey_index] if survey_index is not None else None,
            notes=notes,
        )

    first, last, email, _, _ = _USERS[0]
    return DemoWorld(
        changeset={"actor_sentera_id": demo_user, "upsert": b.upsert},
        user_sentera_id=demo_user,
        user_email=email,
        organization_sentera_id=orgs["root"],
        organization_name=_ORGS["root"][0],
        survey_sentera_id=largest[1],
        survey_name=largest[2],
        survey_image_count=largest[0],
        user_name=f"{first} {last} <{email}>",
    )


# -- installing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoInfo:
    """What `install_demo` did, and what a client needs to try the API."""

    token: str | None
    """A new bearer token for the demo user (no expiry); None when the demo user is absent."""
    user_sentera_id: str
    organization_sentera_id: str
    survey_sentera_id: str
    created: bool
    """True when this call loaded the demo data (the database held no organization)."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Records loaded per kind when `created`; empty otherwise."""
    seconds: float = 0.0
    survey_name: str = ""
    survey_image_count: int = 0
    user_name: str = ""
    organizations_found: int = 0

    def curl(self, url: str) -> str | None:
        """The banner's `curl` command, or None without a token."""
        if self.token is None:
            return None
        return curl_command(url, self.token, self.survey_sentera_id)

    def banner(self, url: str) -> str:
        """What was loaded, the token, a `curl` example and the GraphiQL hint."""
        if self.created:
            loaded = ", ".join(_plural(count, key) for key, count in self.counts.items())
            head = [f"FieldSync demo: loaded {loaded} in {self.seconds:.1f} s."]
        elif self.token is None:
            return "\n".join(
                [
                    f"FieldSync demo: the database already holds {self.organizations_found} "
                    "organization(s) but not the demo user,",
                    "so no demo data was loaded and no demo token was created. Use an empty "
                    "database for the demo",
                    "(e.g. --database-url sqlite:///./demo.db), or make a token for one of your "
                    "own users:",
                    "  fieldsync token create USER_SENTERA_ID",
                    f"Serving the existing data at {url}",
                ]
            )
        else:
            head = ["FieldSync demo: the database already holds the demo data; nothing was loaded."]
        curl = self.curl(url)
        assert curl is not None
        page = IMAGE_PAGE_SIZE
        return "\n".join(
            [
                *head,
                f"Demo user: {self.user_name}, {self.user_sentera_id}",
                f"  member of the root organization {self.organization_sentera_id}, so it reads "
                "all of its descendants",
                f"Token (no expiry): {self.token}",
                "",
                f"Sync the {self.survey_image_count:,} images of survey {self.survey_name!r}:",
                "",
                curl,
                "",
                f"It answers the first page: {min(self.survey_image_count, page):,} images with "
                "their content_hash, and remaining_count",
                f"({max(self.survey_image_count - page, 0):,}). Call again with every hash you "
                "hold in content_hashes until",
                "remaining_count is 0 (see docs/sync.md and the README's loop).",
                f"GraphiQL: open {url} in a browser and paste into its Headers tab:",
                "  " + json.dumps({"Authorization": f"Bearer {self.token}"}),
            ]
        )


_LABELS = {"cogs": ("COG", "COGs"), "feature_sets": ("feature set", "feature sets")}


def _plural(count: int, key: str) -> str:
    one, many = _LABELS.get(key, (key[:-1].replace("_", " "), key.replace("_", " ")))
    return f"{count:,} {one if count == 1 else many}"


def _live_images_in(conn: Connection, survey_sentera_id: str) -> int:
    survey = rows_by_sentera_id(conn, t.surveys, [survey_sentera_id]).get(survey_sentera_id)
    if survey is None:
        return 0
    return listings.count(conn, listings.children(t.images, "survey_id", survey["id"]))


def install_demo(engine: Engine) -> DemoInfo:
    """Load the demo world into a database that holds no organization yet, and mint a token.

    On a database that already has organizations nothing is written; a token is still made
    when the demo user exists there (an earlier demo install), otherwise `token` is None.
    """
    world = demo_world()
    with engine.connect() as conn:
        organizations = count_rows(conn, t.organizations)
    created = organizations == 0
    counts: dict[str, int] = {}
    seconds = 0.0
    if created:
        started = time.perf_counter()
        apply_changeset(engine, world.changeset)
        seconds = time.perf_counter() - started
        counts = world.counts
    with engine.connect() as conn:
        demo_user_live = user_id_of(conn, world.user_sentera_id, live_only=True) is not None
    token = create_token(engine, world.user_sentera_id) if demo_user_live else None
    with engine.connect() as conn:
        image_count = _live_images_in(conn, world.survey_sentera_id)
    return DemoInfo(
        token=token,
        user_sentera_id=world.user_sentera_id,
        organization_sentera_id=world.organization_sentera_id,
        survey_sentera_id=world.survey_sentera_id,
        created=created,
        counts=counts,
        seconds=seconds,
        survey_name=world.survey_name,
        survey_image_count=image_count,
        user_name=world.user_name,
        organizations_found=organizations,
    )
