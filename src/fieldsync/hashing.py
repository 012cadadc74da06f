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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HASH_BYTES = 12
HASH_CHARS = 16
# Matched with fullmatch: `$` would also accept a trailing newline.
_WELL_FORMED = re.compile(r"[A-Za-z0-9+/]{16}")


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
    held: Collection[bytes]
    """The same hashes as `raw`, for fast membership tests."""


def _decode_joined(texts: Sequence[str]) -> list[bytes] | None:
    """The 12-byte values of `texts` when every one is 16 characters of standard base64 (no
    padding), decoded in one call; None when any is not."""
    if not texts:
        return []
    joined = "".join(texts)
    if len(joined) != HASH_CHARS * len(texts) or max(map(len, texts)) != HASH_CHARS:
        return None  # every text is 16 characters long only if none is longer
    try:
        # Strict: anything but the 64 characters of the alphabet is an error, except padding,
        # which would make the result shorter than 12 bytes a text.
        blob = binascii.a2b_base64(joined, strict_mode=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        return None
    if len(blob) != HASH_BYTES * len(texts):
        return None
    return [blob[i : i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES)]


def parse_client_hashes(hashes: Iterable[str]) -> ClientHashes:
    """Decode what a client sent; duplicates count once.

    The common case (every string well formed) is decoded in one base64 call over the joined
    text and deduplicated on the decoded values (in order only when there are duplicates),
    which keeps a 100,000-hash request cheap.
    Otherwise the malformed strings are picked out and the rest decoded the same way.
    """
    texts = hashes if isinstance(hashes, list) else list(hashes)
    decoded = _decode_joined(texts)
    if decoded is not None:
        held = set(decoded)  # a set is built far faster than an ordered dict
        raw = decoded if len(held) == len(decoded) else list(dict.fromkeys(decoded))
        return ClientHashes(raw=raw, malformed=[], held=held)
    well_formed: list[str] = []
    malformed: list[str] = []
    for text in dict.fromkeys(texts):
        (well_formed if _WELL_FORMED.fullmatch(text) is not None else malformed).append(text)
    decoded = _decode_joined(well_formed)
    if decoded is None:  # pragma: no cover - each one is well formed
        raise AssertionError("a well-formed hash failed to decode")
    return ClientHashes(raw=decoded, malformed=malformed, held=set(decoded))
