"""Content hashes: canonical serialization of a representation and its 16-character digest.

A content hash is the first 12 bytes of SHA-256 over the canonical JSON of an item's
representation, written as 16 characters of standard base64 (12 bytes need no padding).
The database keeps the 12 raw bytes; clients only ever see the base64 text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

HASH_BYTES = 12
HASH_CHARS = 16
# Matched with fullmatch: `$` would also accept a trailing newline.
_WELL_FORMED = re.compile(r"[A-Za-z0-9+/]{16}")
_ALL_WELL_FORMED = re.compile(r"[A-Za-z0-9+/]*")


def canonical_json(value: Mapping[str, Any]) -> str:
    """One serialization per value: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(canonical: str) -> bytes:
    return hashlib.sha256(canonical.encode("utf-8")).digest()[:HASH_BYTES]


def encode_hash(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_well_formed(text: str) -> bool:
    return _WELL_FORMED.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ClientHashes:
    """The hashes a client sent, split into decoded well-formed ones and malformed strings."""

    raw: list[bytes]
    """Distinct well-formed hashes as 12-byte values, in first-seen order."""
    malformed: list[str]
    """Distinct malformed strings, in first-seen order."""


def parse_client_hashes(hashes: Iterable[str]) -> ClientHashes:
    """Decode what a client sent; duplicates count once.

    The common case (every string well formed) is decoded in one base64 call over the joined
    text, which keeps a 100,000-hash request cheap.
    """
    distinct = list(dict.fromkeys(hashes))
    joined = "".join(distinct)
    if len(joined) == HASH_CHARS * len(distinct) and _ALL_WELL_FORMED.fullmatch(joined):
        try:
            blob = base64.b64decode(joined, validate=True)
        except binascii.Error:  # pragma: no cover - the regex admits only valid input
            blob = b""
        if len(blob) == HASH_BYTES * len(distinct):
            return ClientHashes(
                raw=[blob[i : i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES)],
                malformed=[],
            )
    raw: list[bytes] = []
    malformed: list[str] = []
    for text in distinct:
        if is_well_formed(text):
            raw.append(base64.b64decode(text))
        else:
            malformed.append(text)
    return ClientHashes(raw=raw, malformed=malformed)
