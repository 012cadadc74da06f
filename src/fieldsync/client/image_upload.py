"""Uploading a directory of drone photos into a survey: what `fieldsync upload-images` does.

The survey's images are synced first; a photo whose filename and checksum match one of them is
skipped, one whose filename matches but whose bytes differ updates that image. The others are
created. Bytes go up first, then the images are upserted in batches, each naming its upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from fieldsync.client.checksums import file_checksum
from fieldsync.client.errors import GraphQLQueryError, InvalidRequestError, NotFoundError
from fieldsync.client.exif import PhotoMetadata, UnreadablePhotoError, read_photo_metadata
from fieldsync.client.sdk import FieldSyncClient
from fieldsync.client.sync import Item
from fieldsync.client.uploads import MULTIPART_FROM_BYTES, upload_file

IMAGE_BATCH = 1000
"""Images per upsert_images call (the mutation's limit)."""
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
JPEG_CONTENT_TYPE = "image/jpeg"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"
    NO_GPS = "no_gps"
    FAILED = "failed"


@dataclass
class PhotoReport:
    """What became of one photo."""

    filename: str
    outcome: Outcome | None = None
    reason: str | None = None
    sentera_id: str | None = None
    size: int | None = None
    checksum: str | None = None
    metadata: PhotoMetadata | None = None

    def as_json(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "filename": self.filename,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "sentera_id": self.sentera_id,
            "size": self.size,
            "checksum": self.checksum,
            "camera": meta.camera if meta else None,
            "latitude": meta.latitude if meta else None,
            "longitude": meta.longitude if meta else None,
            "altitude": meta.altitude if meta else None,
            "captured_at": _iso(meta) if meta else None,
        }


@dataclass
class UploadSummary:
    survey_sentera_id: str
    photos: list[PhotoReport] = field(default_factory=list)

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for photo in self.photos if photo.outcome in outcomes)

    @property
    def uploaded(self) -> int:
        return self.count(Outcome.CREATED, Outcome.UPDATED)

    @property
    def complete(self) -> bool:
        """Every photo is on the server (none was left out for an error)."""
        return self.count(Outcome.NO_GPS, Outcome.FAILED) == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "survey_sentera_id": self.survey_sentera_id,
            "uploaded": self.uploaded,
            "created": self.count(Outcome.CREATED),
            "updated": self.count(Outcome.UPDATED),
            "skipped": self.count(Outcome.SKIPPED),
            "without_gps": self.count(Outcome.NO_GPS),
            "failed": self.count(Outcome.FAILED),
            "images": [photo.as_json() for photo in self.photos],
        }


class UploadProgress(Protocol):
    """What a display is told while photos go up."""

    def planned(self, photos: int, upload_bytes: int) -> None: ...
    def bytes_sent(self, count: int) -> None: ...
    def photo_done(self, photo: PhotoReport) -> None: ...


class NoProgress:
    def planned(self, photos: int, upload_bytes: int) -> None:
        pass

    def bytes_sent(self, count: int) -> None:
        pass

    def photo_done(self, photo: PhotoReport) -> None:
        pass


def find_photos(directory: Path) -> list[Path]:
    """The JPEG files (*.jpg, *.jpeg, any case) directly in `directory`, by name."""
    return sorted(
        (p for p in directory.iterdir() if p.suffix.lower() in JPEG_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )


def send_photos(
    client: FieldSyncClient,
    survey_sentera_id: str,
    photos: Sequence[Path],
    progress: UploadProgress | None = None,
    *,
    multipart_from: int = MULTIPART_FROM_BYTES,
) -> UploadSummary:
    """Bring the photos into the survey; a ClientError that concerns the whole run (token,
    server, survey) is raised, one that concerns one photo is reported in the summary."""
    shown = progress or NoProgress()
    held: dict[str, Item] = {}
    try:
        client.sync_images(survey_sentera_id, held)
    except NotFoundError:
        raise NotFoundError(
            f"survey '{survey_sentera_id}' not found, or the token may not read it: "
            "check SURVEY_ID and the token",
            "NOT_FOUND",
        ) from None
    existing = _by_filename(held.values())
    summary = UploadSummary(survey_sentera_id)
    to_upload: list[PhotoReport] = []
    for path in photos:
        photo = _plan(path, existing.get(path.name, []))
        summary.photos.append(photo)
        if photo.outcome is None:
            to_upload.append(photo)
    shown.planned(len(summary.photos), sum(photo.size or 0 for photo in to_upload))
    for photo in summary.photos:
        if photo.outcome is not None:
            shown.photo_done(photo)
    directory = {path.name: path for path in photos}
    batch: list[tuple[PhotoReport, str]] = []
    for photo in to_upload:
        file_key = _send_bytes(client, directory[photo.filename], photo, shown, multipart_from)
        if file_key is None:
            shown.photo_done(photo)
            continue
        batch.append((photo, file_key))
        if len(batch) == IMAGE_BATCH:
            _upsert(client, survey_sentera_id, batch, shown)
            batch = []
    if batch:
        _upsert(client, survey_sentera_id, batch, shown)
    return summary


def _by_filename(images: Any) -> dict[str, list[Item]]:
    found: dict[str, list[Item]] = {}
    for image in sorted(images, key=lambda i: str(i["sentera_id"])):
        found.setdefault(str(image.get("filename")), []).append(image)
    return found


def _plan(path: Path, same_name: list[Item]) -> PhotoReport:
    """A photo's report, its outcome already set when it will not be uploaded."""
    photo = PhotoReport(path.name)
    try:
        photo.size = path.stat().st_size
        photo.checksum = file_checksum(path)
    except OSError as exc:
        return _failed(photo, f"cannot read the file ({exc.strerror or exc})")
    already_there = [image for image in same_name if image.get("checksum") == photo.checksum]
    try:
        photo.metadata = read_photo_metadata(path)
    except UnreadablePhotoError as exc:
        if not already_there:
            return _failed(photo, str(exc))
    if already_there:
        photo.outcome, photo.sentera_id = Outcome.SKIPPED, str(already_there[0]["sentera_id"])
        return photo
    assert photo.metadata is not None
    if photo.metadata.no_position is not None:
        photo.outcome, photo.reason = Outcome.NO_GPS, photo.metadata.no_position
        return photo
    if same_name:
        photo.sentera_id = str(same_name[0]["sentera_id"])
    return photo


def _send_bytes(
    client: FieldSyncClient,
    path: Path,
    photo: PhotoReport,
    progress: UploadProgress,
    multipart_from: int,
) -> str | None:
    """The photo's file_key, or None (its outcome set to FAILED) when it could not be sent."""
    try:
        return upload_file(
            client,
            path,
            content_type=JPEG_CONTENT_TYPE,
            on_bytes=progress.bytes_sent,
            checksum=photo.checksum,
            multipart_from=multipart_from,
        )
    except (InvalidRequestError, GraphQLQueryError) as exc:
        _failed(photo, f"the server refused the upload: {exc}")
    except OSError as exc:
        _failed(photo, f"cannot read the file ({exc.strerror or exc})")
    return None


def _upsert(
    client: FieldSyncClient,
    survey_sentera_id: str,
    batch: list[tuple[PhotoReport, str]],
    progress: UploadProgress,
) -> None:
    """Attach one batch of uploads as images and record what became of each."""
    items = [_image_input(photo, file_key) for photo, file_key in batch]
    try:
        result = client.upsert_images(survey_sentera_id, items)
    except (InvalidRequestError, GraphQLQueryError) as exc:
        for photo, _ in batch:
            progress.photo_done(_failed(photo, f"the server refused the image: {exc}"))
        return
    refused = {failure.index: failure.message for failure in result.failed}
    written = iter(result.succeeded)
    for index, (photo, _) in enumerate(batch):
        if index in refused:
            _failed(photo, f"the server refused the image: {refused[index]}")
        else:
            photo.outcome = Outcome.UPDATED if photo.sentera_id else Outcome.CREATED
            photo.sentera_id = str(next(written)["sentera_id"])
        progress.photo_done(photo)


def _image_input(photo: PhotoReport, file_key: str) -> Item:
    meta = photo.metadata
    assert meta is not None
    item: Item = {
        "filename": photo.filename,
        "latitude": meta.latitude,
        "longitude": meta.longitude,
        "size": photo.size,
        "file_key": file_key,
    }
    if meta.altitude is not None:
        item["altitude"] = meta.altitude
    if meta.captured_at is not None:
        item["captured_at"] = _iso(meta)
    if photo.sentera_id is not None:
        item["sentera_id"] = photo.sentera_id
    return item


def _iso(meta: PhotoMetadata) -> str | None:
    return meta.captured_at.isoformat() if meta.captured_at else None


def _failed(photo: PhotoReport, reason: str) -> PhotoReport:
    photo.outcome, photo.reason = Outcome.FAILED, reason
    return photo
