"""What a JPEG's EXIF says about where and when it was taken, read with Pillow.

Nothing is guessed: a photo without a GPS position says why in `no_position`, and a capture
time without an offset (no OffsetTimeOriginal) is taken as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
MAKE, MODEL = 0x010F, 0x0110
DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
GPS_LATITUDE_REF, GPS_LATITUDE = 1, 2
GPS_LONGITUDE_REF, GPS_LONGITUDE = 3, 4
GPS_ALTITUDE_REF, GPS_ALTITUDE = 5, 6
EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
DEGREE_DECIMALS = 8
"""Positions are rounded to 1e-8 degrees (about a millimetre), dropping the float noise of
adding up degrees, minutes and seconds."""


class UnreadablePhotoError(Exception):
    """The file is not a JPEG Pillow can read; the message says what is wrong."""


@dataclass(frozen=True)
class PhotoMetadata:
    latitude: float | None
    longitude: float | None
    altitude: float | None
    captured_at: datetime | None
    camera: str | None
    no_position: str | None = None
    """Why latitude and longitude are missing; None when they are known."""


def read_photo_metadata(path: Path) -> PhotoMetadata:
    """The position, altitude, capture time and camera of a JPEG; UnreadablePhotoError when
    the file is not a readable JPEG."""
    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                raise UnreadablePhotoError(f"not a JPEG (a {image.format or 'unknown'} image)")
            exif = image.getexif()
            gps = dict(exif.get_ifd(GPS_IFD))
            details = dict(exif.get_ifd(EXIF_IFD))
            camera = _camera(exif.get(MAKE), exif.get(MODEL))
    except UnidentifiedImageError:
        raise UnreadablePhotoError(
            "not a JPEG image: its content is no known image format"
        ) from None
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise UnreadablePhotoError(f"cannot read its EXIF ({exc})") from None
    latitude, longitude, no_position = _position(gps)
    return PhotoMetadata(
        latitude=latitude,
        longitude=longitude,
        altitude=_altitude(gps) if no_position is None else None,
        captured_at=_captured_at(
            details.get(DATE_TIME_ORIGINAL), details.get(OFFSET_TIME_ORIGINAL)
        ),
        camera=camera,
        no_position=no_position,
    )


def _position(gps: dict[int, Any]) -> tuple[float | None, float | None, str | None]:
    """(latitude, longitude, None), or (None, None, why there is no position)."""
    if not gps:
        return None, None, "no GPS data in its EXIF"
    if GPS_LATITUDE not in gps or GPS_LONGITUDE not in gps:
        return None, None, "its EXIF GPS data has no latitude or longitude"
    try:
        latitude = _degrees(gps[GPS_LATITUDE]) * _sign(gps.get(GPS_LATITUDE_REF), "N", "S")
        longitude = _degrees(gps[GPS_LONGITUDE]) * _sign(gps.get(GPS_LONGITUDE_REF), "E", "W")
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        return None, None, f"its EXIF GPS position is malformed ({exc})"
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None, f"its EXIF GPS position ({latitude}, {longitude}) is out of range"
    return round(latitude, DEGREE_DECIMALS), round(longitude, DEGREE_DECIMALS), None


def _degrees(value: Any) -> float:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals."""
    parts = [float(part) for part in value]
    if len(parts) != 3:
        raise ValueError(f"expected degrees, minutes and seconds, got {len(parts)} values")
    degrees, minutes, seconds = parts
    return degrees + minutes / 60 + seconds / 3600


def _sign(reference: Any, positive: str, negative: str) -> int:
    text = _text(reference).upper()
    if text == positive:
        return 1
    if text == negative:
        return -1
    raise ValueError(f"the hemisphere reference is {text!r}, not {positive} or {negative}")


def _altitude(gps: dict[int, Any]) -> float | None:
    """Metres above sea level; negative when GPSAltitudeRef is 1 (below sea level)."""
    if GPS_ALTITUDE not in gps:
        return None
    try:
        altitude = float(gps[GPS_ALTITUDE])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    reference = gps.get(GPS_ALTITUDE_REF, 0)
    if isinstance(reference, bytes):
        reference = reference[0] if reference else 0
    return -altitude if reference == 1 else altitude


def _captured_at(original: Any, offset: Any) -> datetime | None:
    """DateTimeOriginal in its OffsetTimeOriginal, or as UTC when no offset is given."""
    if original is None:
        return None
    try:
        local = datetime.strptime(_text(original), EXIF_TIME_FORMAT)
    except ValueError:
        return None
    return local.replace(tzinfo=_offset(_text(offset)) if offset is not None else UTC)


def _offset(text: str) -> timezone:
    """`+02:00` or `-05:30` as a timezone; UTC for anything else."""
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return UTC
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return UTC
    sign = 1 if text[0] == "+" else -1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _camera(make: Any, model: Any) -> str | None:
    """ "Make Model", without the make twice when the model repeats it."""
    make_text, model_text = _text(make), _text(model)
    if model_text.lower().startswith(make_text.lower()):
        make_text = ""
    return " ".join(part for part in (make_text, model_text) if part) or None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").strip()
