"""JPEG photos carrying real EXIF (camera, capture time, the GPS IFD), made with Pillow."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class Shot:
    latitude: float
    longitude: float
    altitude: float | None
    taken: str  # DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    offset: str | None  # OffsetTimeOriginal, "+02:00"
    captured_at: datetime  # what the photo's capture time must be read as


def dms(value: float) -> tuple[float, float, float]:
    """Degrees, minutes and seconds of an absolute angle, as EXIF stores them."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return float(degrees), float(minutes), seconds


def make_photo(
    path: Path, shot: Shot | None, *, seed: int = 0, make: str = "DJI", model: str = "FC6310"
) -> Path:
    """A small JPEG carrying real EXIF: camera, capture time and the GPS IFD (0x8825)."""
    noise = random.Random(seed).randbytes(48 * 32 * 3)
    image = Image.frombytes("RGB", (48, 32), noise)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    if shot is not None:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if shot.latitude >= 0 else "S"
        gps[2] = dms(shot.latitude)
        gps[3] = "E" if shot.longitude >= 0 else "W"
        gps[4] = dms(shot.longitude)
        if shot.altitude is not None:
            gps[5] = b"\x01" if shot.altitude < 0 else b"\x00"
            gps[6] = abs(shot.altitude)
        details = exif.get_ifd(0x8769)
        details[0x9003] = shot.taken
        if shot.offset is not None:
            details[0x9011] = shot.offset
    image.save(path, format="JPEG", exif=exif, quality=90)
    return path


NORTH_WEST = Shot(
    45.3251, -93.5230, 375.5, "2024:06:12 14:06:00", "-05:00",
    datetime(2024, 6, 12, 19, 6, tzinfo=UTC),
)  # fmt: skip
SOUTH_EAST = Shot(
    -33.9249, 18.4241, 12.25, "2024:06:12 09:30:15", "+02:00",
    datetime(2024, 6, 12, 7, 30, 15, tzinfo=UTC),
)  # fmt: skip
BELOW_SEA = Shot(  # no offset: taken as UTC
    31.5590, 35.4732, -430.0, "2024:06:13 07:00:00", None,
    datetime(2024, 6, 13, 7, 0, tzinfo=UTC),
)  # fmt: skip
