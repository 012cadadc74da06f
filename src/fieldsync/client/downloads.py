"""Fetching an item's bytes to disk: resumable (`Range` from a `.part` file), verified against
the server's size and MD5, and retried with back-off when the connection breaks."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from fieldsync.client.checksums import file_checksum
from fieldsync.client.errors import ClientError, DiskFullError
from fieldsync.client.transport import Transport

CHUNK_BYTES = 1024 * 1024
PART_SUFFIX = ".part"


class LinkExpiredError(ClientError):
    """The signed link was refused (403): it expired, so it must be asked for again."""


class BytesGoneError(ClientError):
    """The server has no bytes behind the link any more (404)."""


class CorruptDownloadError(ClientError):
    """The bytes received do not match the size or checksum the server announced."""


class _TransientStatus(Exception):
    """A 429 or 5xx answer to a download: worth another try."""


@dataclass(frozen=True)
class Wanted:
    """Bytes to have at `target`: `size` bytes (when known) whose MD5 is `checksum` (base64)."""

    url: str
    target: Path
    size: int | None
    checksum: str


def safe_name(name: str | None, fallback: str) -> str:
    """A file name that stays inside its directory: no separators, no `..`, not empty."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    base = re.sub(r"[\x00-\x1f]", "", base)
    return fallback if base in ("", ".", "..") else base


def is_complete(path: Path, size: int | None, checksum: str) -> bool:
    """True when `path` holds exactly the announced bytes."""
    try:
        if size is not None and path.stat().st_size != size:
            return False
        return file_checksum(path) == checksum
    except FileNotFoundError:
        return False


def download(
    transport: Transport, wanted: Wanted, on_bytes: Callable[[int], None] | None = None
) -> None:
    """Bring `wanted.target` to the announced bytes, resuming a `.part` left by an earlier try.

    The finished file appears at `target` only once verified (renamed from the `.part`), so a
    reader never sees a partial file under the real name. Broken connections are retried from
    where they stopped; a resumed `.part` that does not verify is fetched again whole once; a
    mismatch after that deletes the `.part` and raises CorruptDownloadError.
    """
    part = wanted.target.with_name(wanted.target.name + PART_SUFFIX)
    try:
        wanted.target.parent.mkdir(parents=True, exist_ok=True)
        resumed = part.exists() and part.stat().st_size > 0
        _fetch_into(transport, wanted, part, on_bytes)
        if resumed and not is_complete(part, wanted.size, wanted.checksum):
            part.unlink()  # the bytes kept from before were not the right ones: start over
            _fetch_into(transport, wanted, part, on_bytes)
        if not is_complete(part, wanted.size, wanted.checksum):
            part.unlink(missing_ok=True)
            raise CorruptDownloadError(
                f"the bytes received for {wanted.target.name} do not match the server's "
                "checksum; they will be fetched again on the next pull"
            )
        os.replace(part, wanted.target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(wanted.target.parent) from None
        raise


def _fetch_into(
    transport: Transport, wanted: Wanted, part: Path, on_bytes: Callable[[int], None] | None
) -> None:
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if wanted.size is not None and offset > wanted.size:
            part.unlink()
            offset = 0
        if wanted.size is not None and offset == wanted.size:
            return
        try:
            _stream(transport, wanted.url, part, offset, on_bytes)
            return
        except (httpx.TransportError, _TransientStatus) as exc:
            attempt += 1
            if attempt >= transport.retry.attempts:
                raise ClientError(
                    f"the download of {wanted.target.name} kept breaking ({exc}); "
                    "run the pull again to resume it"
                ) from None
            transport.sleep(transport.retry.delay(attempt - 1, None))


def _stream(
    transport: Transport,
    url: str,
    part: Path,
    offset: int,
    on_bytes: Callable[[int], None] | None,
) -> None:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with transport.client.stream("GET", url, headers=headers) as response:
        transport.count(requests=1)
        if response.status_code == 416:
            return  # nothing past `offset`: the .part is whole, verification decides
        if response.status_code in (401, 403):
            raise LinkExpiredError("the download link expired", status=response.status_code)
        if response.status_code == 404:
            raise BytesGoneError("the server no longer has these bytes", status=404)
        if response.status_code == 429 or response.status_code >= 500:
            raise _TransientStatus(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ClientError(
                f"the download failed with HTTP {response.status_code}", status=response.status_code
            )
        mode = "ab" if response.status_code == 206 else "wb"
        with part.open(mode) as sink:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                sink.write(chunk)
                transport.count(received=len(chunk))
                if on_bytes is not None:
                    on_bytes(len(chunk))
