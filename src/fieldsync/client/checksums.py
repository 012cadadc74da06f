"""The MD5 checksum FieldSync gives bytes: base64, as in a Content-MD5 header."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

READ_BYTES = 1024 * 1024


def file_checksum(path: Path) -> str:
    """The MD5 of a file's bytes in base64 (the server's `checksum`), read in bounded memory."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(READ_BYTES):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")
