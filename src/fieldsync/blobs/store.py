"""The blob-store interface both stores implement, the content-address key scheme, and the
errors a store raises.

A content key is `<md5 hex>-<size>`: MD5 is the content address, because S3 verifies a
presigned PUT's `Content-MD5`, so a key can only ever hold bytes with that MD5 and size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from fieldsync.errors import FieldSyncError

MD5_BYTES = 16
KEY_PATTERN = re.compile(r"^[0-9a-f]{32}-[0-9]{1,20}$")
MIN_PART_BYTES = 5 * 1024 * 1024
"""Every multipart part but the last holds at least this many bytes (as on S3)."""
MAX_PART_NUMBER = 10_000
MAX_SINGLE_PUT_BYTES = 5 * 1024**3
"""The largest body of one PUT (S3's limit); larger files go multipart."""
MAX_MULTIPART_BYTES = 5 * 1024**4
DIGEST_CHUNK = 4 * 1024 * 1024


class BlobError(FieldSyncError):
    """Bytes that do not match what was declared, or a store that cannot do what was asked."""

    code = "BAD_BLOB"


class ChecksumMismatchError(BlobError):
    code = "CHECKSUM_MISMATCH"


class SizeMismatchError(BlobError):
    code = "SIZE_MISMATCH"


class InvalidPartError(BlobError):
    code = "INVALID_PART"


class BlobStoreUrlError(ValueError):
    """A --blob-store / FIELDSYNC_BLOB_STORE value names no store FieldSync supports."""


class BlobStoreUnavailableError(FieldSyncError):
    """The store could not be reached or refused a request FieldSync made itself."""

    code = "BLOB_STORE_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where and how a client PUTs bytes: exactly these headers, to this URL."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlobStat:
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A content key in the store and when its bytes were last written."""

    key: str
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class CompletedBlob:
    """What a completed multipart upload turned into: the content key and its checksum."""

    key: str
    checksum: str
    byte_size: int


@dataclass(frozen=True, slots=True)
class DownloadTarget:
    key: str
    download_filename: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class RasterLocation:
    """Where GDAL reads a blob from: a path (local file or `/vsicurl/` URL) and the GDAL
    configuration options that reading needs."""

    path: str
    gdal_options: dict[str, str] = field(default_factory=dict)


class BlobStore(Protocol):
    """What FieldSync needs of a store. `key` is always a content key (`blob_key`);
    `upload_id` is FieldSync's upload id and `store_upload_id` the store's own (S3 UploadId)."""

    description: str

    def presign_put(
        self, key: str, byte_size: int, checksum: str, content_type: str | None, base_url: str
    ) -> UploadTarget: ...

    def staging_key(self, upload_id: str) -> str: ...

    def create_multipart(self, upload_id: str, content_type: str | None) -> str: ...

    def presign_part(
        self, upload_id: str, store_upload_id: str, part_number: int, base_url: str
    ) -> str: ...

    def complete_multipart(
        self,
        upload_id: str,
        store_upload_id: str,
        parts: Sequence[tuple[int, str]],
        expected: tuple[int | None, str | None],
    ) -> CompletedBlob: ...

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None: ...

    def stat(self, key: str) -> BlobStat | None: ...

    def delete(self, key: str) -> None: ...

    def list_blobs(self) -> Iterator[StoredBlob]: ...

    def presign_get(self, target: DownloadTarget, base_url: str) -> str: ...

    def remove_stale_temporaries(self, older_than: datetime) -> int: ...

    def local_copy(self, key: str, workdir: Path) -> Path:
        """A local file holding the bytes of `key`: the blob itself when the store is local,
        else a download into `workdir` (the caller removes `workdir`)."""
        ...

    def store_file(self, path: Path, content_type: str | None) -> CompletedBlob:
        """Put a local file's bytes under their content key, streaming (any size)."""
        ...

    def raster_location(self, key: str) -> RasterLocation: ...


def file_digest(path: Path) -> tuple[int, str]:
    """Size and MD5 (hex) of a file, read in bounded memory."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(DIGEST_CHUNK):
            md5.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest()


def decode_checksum(checksum: str) -> bytes:
    """The 16 bytes of a base64 MD5, or a clear error."""
    try:
        digest = base64.b64decode(checksum.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != MD5_BYTES:
        raise ChecksumMismatchError(
            f"checksum {checksum[:40]!r} is not the base64 of a 16-byte MD5 "
            "(e.g. `openssl md5 -binary FILE | base64`)"
        )
    return digest


def checksum_of(md5_hex: str) -> str:
    """The base64 checksum of an MD5 given in hex."""
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")


def blob_key(checksum: str, byte_size: int) -> str:
    """The content key of bytes with this MD5 (base64) and size: `<md5 hex>-<size>`."""
    return f"{decode_checksum(checksum).hex()}-{byte_size}"


def is_blob_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


def key_size(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


def key_md5_hex(key: str) -> str:
    return key.split("-", 1)[0]


def check_parts(parts: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """Parts sorted by number; refuses none, duplicates and numbers out of 1..10000."""
    if not parts:
        raise InvalidPartError("parts is empty: list every uploaded part with its etag")
    ordered = sorted(parts)
    numbers = [number for number, _etag in ordered]
    for number in numbers:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidPartError(f"part_number {number} is not from 1 to {MAX_PART_NUMBER}")
    if len(set(numbers)) != len(numbers):
        raise InvalidPartError("a part_number is listed twice: list each part once")
    return [(number, etag.strip().strip('"').lower()) for number, etag in ordered]


def check_part_sizes(sizes: Sequence[tuple[int, int]]) -> None:
    """Every part but the last holds at least MIN_PART_BYTES."""
    for number, size in sizes[:-1]:
        if size < MIN_PART_BYTES:
            raise InvalidPartError(
                f"part {number} holds {size} bytes; every part but the last must hold at "
                f"least {MIN_PART_BYTES} bytes (5 MiB)"
            )


def check_whole(
    actual_size: int, actual_md5_hex: str, expected: tuple[int | None, str | None]
) -> None:
    """The assembled bytes match the declared size and checksum (when declared)."""
    size, checksum = expected
    if size is not None and actual_size != size:
        raise SizeMismatchError(
            f"the parts add up to {actual_size} bytes, but byte_size {size} was declared: "
            "upload the missing parts (or start again), nothing was stored"
        )
    if checksum is not None and checksum_of(actual_md5_hex) != checksum:
        raise ChecksumMismatchError(
            f"the assembled bytes have MD5 {checksum_of(actual_md5_hex)}, but checksum "
            f"{checksum} was declared: nothing was stored"
        )


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in UTF-8 (RFC 6266)."""
    fallback = (
        "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
        or "download"
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
