"""The local blob store: a directory served by FieldSync itself through signed links.

Layout under the root: `blobs/<key>` (content), `uploads/<upload id>/<part number>` (parts of
a multipart upload) and `tmp/` (bytes being received). Bytes go to a temporary file first and
are renamed into place (`os.replace`, after fsync) only once their size and MD5 match, so no
reader ever sees a partial blob and a killed server leaves only temporary files, which gc
removes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fieldsync.blobs.signing import LinkSigner
from fieldsync.blobs.store import (
    BlobError,
    BlobStat,
    ChecksumMismatchError,
    CompletedBlob,
    DownloadTarget,
    InvalidPartError,
    RasterLocation,
    SizeMismatchError,
    StoredBlob,
    UploadTarget,
    check_part_sizes,
    check_parts,
    check_whole,
    checksum_of,
    file_digest,
    is_blob_key,
)

LINK_PREFIX = "/blobs"
PUT_PATH = LINK_PREFIX + "/put/{key}"
PART_PATH = LINK_PREFIX + "/part/{upload_id}/{part_number}"
GET_PATH = LINK_PREFIX + "/get/{key}"
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COPY_CHUNK = 1024 * 1024


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """A temporary file inside the store that bytes are streamed into, with their MD5."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, suffix=".partial")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    def commit(self, target: Path) -> None:
        """Flush to disk and rename into `target` in one step."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        _fsync_directory(target.parent)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path, signer: LinkSigner | None, link_seconds: int) -> None:
        self.root = root
        self.signer = signer
        self.link_seconds = link_seconds
        self.description = f"file://{root}"

    # -- paths ---------------------------------------------------------------------------

    def blob_path(self, key: str) -> Path:
        if not is_blob_key(key):
            raise BlobError(f"{key[:80]!r} is not a blob key")
        return self.root / "blobs" / key

    def _upload_dir(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise InvalidPartError(f"{upload_id[:80]!r} is not an upload id")
        return self.root / "uploads" / upload_id

    def writer(self) -> BlobWriter:
        return BlobWriter(self.root / "tmp")

    def _sign(self, path: str, params: dict[str, str], base_url: str) -> str:
        if self.signer is None:
            raise BlobError("the local blob store has no link signer")
        return base_url.rstrip("/") + self.signer.sign_for(path, params, self.link_seconds)

    # -- single uploads ------------------------------------------------------------------

    def presign_put(
        self, key: str, byte_size: int, checksum: str, content_type: str | None, base_url: str
    ) -> UploadTarget:
        params = {"size": str(byte_size), "md5": checksum}
        headers = {"Content-MD5": checksum, "Content-Length": str(byte_size)}
        if content_type:
            params["type"] = content_type
            headers["Content-Type"] = content_type
        url = self._sign(PUT_PATH.format(key=key), params, base_url)
        return UploadTarget(url, headers)

    def commit_blob(self, writer: BlobWriter, key: str) -> None:
        """Rename the received bytes into `key` if they are exactly its bytes."""
        size, md5_hex = int(key.rsplit("-", 1)[1]), key.split("-", 1)[0]
        if writer.size != size:
            raise SizeMismatchError(
                f"received {writer.size} bytes, but byte_size {size} was declared: "
                "nothing was stored"
            )
        if writer.md5_hex() != md5_hex:
            raise ChecksumMismatchError(
                f"the bytes have MD5 {checksum_of(writer.md5_hex())}, but Content-MD5 "
                f"{checksum_of(md5_hex)} was declared: nothing was stored"
            )
        writer.commit(self.blob_path(key))

    # -- multipart -----------------------------------------------------------------------

    def staging_key(self, upload_id: str) -> str:
        return f"uploads/{upload_id}"

    def create_multipart(self, upload_id: str, content_type: str | None) -> str:
        self._upload_dir(upload_id).mkdir(parents=True, exist_ok=True)
        return upload_id

    def presign_part(
        self, upload_id: str, store_upload_id: str, part_number: int, base_url: str
    ) -> str:
        path = PART_PATH.format(upload_id=upload_id, part_number=part_number)
        return self._sign(path, {}, base_url)

    def commit_part(self, writer: BlobWriter, upload_id: str, part_number: int) -> str:
        """Keep a received part (a retry replaces it); its ETag, the quoted MD5 hex."""
        directory = self._upload_dir(upload_id)
        if not directory.is_dir():
            raise InvalidPartError(
                "this multipart upload was completed or aborted: create a new one"
            )
        writer.commit(directory / str(part_number))
        return f'"{writer.md5_hex()}"'

    def complete_multipart(
        self,
        upload_id: str,
        store_upload_id: str,
        parts: Sequence[tuple[int, str]],
        expected: tuple[int | None, str | None],
    ) -> CompletedBlob:
        directory = self._upload_dir(upload_id)
        ordered = check_parts(parts)
        sizes = [
            (number, self._part_file(directory, number).stat().st_size) for number, _ in ordered
        ]
        check_part_sizes(sizes)
        writer = self.writer()
        try:
            for number, etag in ordered:
                self._append_part(writer, self._part_file(directory, number), number, etag)
            check_whole(writer.size, writer.md5_hex(), expected)
            key = f"{writer.md5_hex()}-{writer.size}"
            writer.commit(self.blob_path(key))
        except BaseException:
            writer.discard()
            raise
        shutil.rmtree(directory, ignore_errors=True)
        return CompletedBlob(key, checksum_of(key.split("-", 1)[0]), int(key.rsplit("-", 1)[1]))

    def _part_file(self, directory: Path, number: int) -> Path:
        path = directory / str(number)
        if not path.is_file():
            raise InvalidPartError(
                f"part {number} was never uploaded: PUT it to its prepared url first"
            )
        return path

    def _append_part(self, writer: BlobWriter, path: Path, number: int, etag: str) -> None:
        part_md5 = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as part:
            while chunk := part.read(COPY_CHUNK):
                part_md5.update(chunk)
                writer.write(chunk)
        if part_md5.hexdigest() != etag:
            raise InvalidPartError(
                f"part {number}: etag {etag!r} is not the ETag its upload returned "
                f'("{part_md5.hexdigest()}"): send each part\'s ETag header'
            )

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None:
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    # -- reading and housekeeping --------------------------------------------------------

    def stat(self, key: str) -> BlobStat | None:
        try:
            result = self.blob_path(key).stat()
        except FileNotFoundError:
            return None
        return BlobStat(result.st_size, datetime.fromtimestamp(result.st_mtime, UTC))

    def delete(self, key: str) -> None:
        self.blob_path(key).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[StoredBlob]:
        directory = self.root / "blobs"
        if not directory.is_dir():
            return
        for entry in os.scandir(directory):
            if is_blob_key(entry.name):
                modified = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
                yield StoredBlob(entry.name, modified)

    def presign_get(self, target: DownloadTarget, base_url: str) -> str:
        params = {"filename": target.download_filename}
        if target.content_type:
            params["type"] = target.content_type
        return self._sign(GET_PATH.format(key=quote(target.key)), params, base_url)

    def local_copy(self, key: str, workdir: Path) -> Path:
        path = self.blob_path(key)
        if not path.is_file():
            raise BlobError(f"blob {key} is not in the store (removed, or never uploaded)")
        return path

    def store_file(self, path: Path, content_type: str | None) -> CompletedBlob:
        size, md5_hex = file_digest(path)
        key = f"{md5_hex}-{size}"
        target = self.blob_path(key)
        if not target.is_file():
            writer = self.writer()
            try:
                with path.open("rb") as source:
                    while chunk := source.read(COPY_CHUNK):
                        writer.write(chunk)
                writer.commit(target)
            except BaseException:
                writer.discard()
                raise
        return CompletedBlob(key, checksum_of(md5_hex), size)

    def raster_location(self, key: str) -> RasterLocation:
        """The blob's file, read by GDAL directly."""
        return RasterLocation(str(self.blob_path(key)))

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Temporary files and abandoned part directories last written before `older_than`."""
        removed = 0
        for entry in _entries(self.root / "tmp"):
            if _mtime(entry) < older_than:
                entry.unlink(missing_ok=True)
                removed += 1
        for entry in _entries(self.root / "uploads"):
            if _mtime(entry) < older_than:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except FileNotFoundError:
        return []
