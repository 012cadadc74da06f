"""HMAC-SHA256 signed, expiring links for the local store (uploads and downloads).

A link is a path and a query; the signature covers the path and every other query parameter
(including `expires`, seconds since the epoch), so changing any of them breaks it. The key is
`FIELDSYNC_SECRET_KEY` when set, else one generated once and kept in the database
(`server_secrets`), so every worker and node signs and verifies alike.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from fieldsync.errors import FieldSyncError

SIGNATURE = "signature"
EXPIRES = "expires"
SECRET_NAME = "link_signing_key"


MIN_SECRET_KEY_BYTES = 16


class LinkSignatureError(FieldSyncError):
    """A link whose signature does not match, or that has expired (HTTP 403)."""

    code = "FORBIDDEN"


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_SECRET_KEY_BYTES:
            raise ValueError(
                f"the link signing key must hold at least {MIN_SECRET_KEY_BYTES} bytes"
            )
        self._key = key

    def _signature(self, path: str, params: Mapping[str, str]) -> str:
        canonical = "\n".join(
            [
                path,
                *(
                    f"{quote(name, safe='')}={quote(value, safe='')}"
                    for name, value in sorted(params.items())
                ),
            ]
        )
        return hmac.new(self._key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()

    def sign(self, path: str, params: Mapping[str, str], expires_at: int) -> str:
        """`path?query` with `expires` and `signature` added to `params`."""
        signed = {**params, EXPIRES: str(expires_at)}
        signed[SIGNATURE] = self._signature(path, signed)
        return f"{path}?{urlencode(signed, quote_via=quote)}"

    def sign_for(self, path: str, params: Mapping[str, str], seconds: int) -> str:
        return self.sign(path, params, int(time.time()) + seconds)

    def verify(
        self, path: str, query: Mapping[str, str], now: float | None = None
    ) -> dict[str, str]:
        """The signed parameters (without `signature`); LinkSignatureError when tampered
        with or expired."""
        params = {name: value for name, value in query.items() if name != SIGNATURE}
        given = query.get(SIGNATURE, "")
        if not hmac.compare_digest(given.encode(), self._signature(path, params).encode()):
            raise LinkSignatureError(
                "the link's signature does not match: use the link exactly as FieldSync gave it"
            )
        try:
            expires_at = int(params[EXPIRES])
        except (KeyError, ValueError):
            raise LinkSignatureError(
                "the link has no expiry: ask FieldSync for a new one"
            ) from None
        if (time.time() if now is None else now) > expires_at:
            raise LinkSignatureError("the link has expired: ask FieldSync for a new one")
        return params
