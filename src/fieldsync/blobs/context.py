"""Choosing a store from its URL, and what the upload services need to run: the store, the
link signer and the blob settings."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine

from fieldsync.blobs.local import LocalBlobStore
from fieldsync.blobs.signing import SECRET_NAME, LinkSigner
from fieldsync.blobs.store import BlobStore, BlobStoreUrlError
from fieldsync.storage.secrets import get_or_create_secret

DEFAULT_BLOB_STORE = "file://./fieldsync-blobs"
DEFAULT_UPLOAD_LIFETIME = 86_400
DEFAULT_GC_INTERVAL = 3_600
LINK_SECONDS = 3_600
"""Every upload and download link is valid this long (60 minutes)."""
SECRET_KEY_VARIABLE = "FIELDSYNC_SECRET_KEY"
log = logging.getLogger("fieldsync.blobs")


@dataclass(frozen=True, slots=True)
class BlobSettings:
    store_url: str = DEFAULT_BLOB_STORE
    upload_lifetime: int = DEFAULT_UPLOAD_LIFETIME
    """Seconds an upload may wait to be attached; bytes nothing references are kept as long."""
    gc_interval: int = DEFAULT_GC_INTERVAL
    public_url: str | None = None
    """The base of absolute links (else the request's own base URL)."""
    link_seconds: int = LINK_SECONDS


@dataclass(frozen=True, slots=True)
class BlobContext:
    store: BlobStore
    signer: LinkSigner
    settings: BlobSettings

    def base_url(self, request_base: str) -> str:
        return (self.settings.public_url or request_base).rstrip("/")


def _local_root(url: str) -> Path:
    if not url.startswith("file:"):
        return Path(url)
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost", ".", ".."):
            raise BlobStoreUrlError(
                f"blob store {url!r}: a file URL names no host; use file:///ABSOLUTE/PATH "
                "or file://./RELATIVE/PATH"
            )
        rest = (host + slash + path) if host in (".", "..") else slash + path
    if not rest:
        raise BlobStoreUrlError(f"blob store {url!r} names no directory")
    return Path(unquote(rest))


def open_blob_store(
    url: str, signer: LinkSigner | None = None, link_seconds: int = LINK_SECONDS
) -> BlobStore:
    """The store a URL names: `file:///PATH`, `file://./PATH`, a plain path, or
    `s3://BUCKET/PREFIX`. Nothing is created or contacted yet."""
    url = url.strip()
    if not url:
        raise BlobStoreUrlError("the blob store URL is empty: use file:///PATH or s3://BUCKET")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "s3":
        return _s3_store(url, link_seconds)
    if scheme not in ("", "file"):
        raise BlobStoreUrlError(
            f"blob store {url!r}: unknown scheme {scheme!r}; use file:///PATH or s3://BUCKET/PREFIX"
        )
    return LocalBlobStore(_local_root(url), signer, link_seconds)


def _s3_store(url: str, link_seconds: int) -> BlobStore:
    from fieldsync.blobs.s3 import S3BlobStore

    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket or parts.query or parts.fragment:
        raise BlobStoreUrlError(
            f"blob store {url!r}: use s3://BUCKET or s3://BUCKET/PREFIX (credentials and "
            "endpoint come from the AWS_* variables)"
        )
    return S3BlobStore(bucket, unquote(parts.path), link_seconds)


def signing_key(engine: Engine) -> bytes:
    """FIELDSYNC_SECRET_KEY, else the key kept in the database (made on first use)."""
    configured = os.environ.get(SECRET_KEY_VARIABLE, "")
    if configured.strip():
        return configured.strip().encode("utf-8")
    return get_or_create_secret(engine, SECRET_NAME, lambda: secrets.token_hex(32)).encode()


def blob_context(engine: Engine, settings: BlobSettings) -> BlobContext:
    """The store of `settings` with a signer on the deployment's shared key."""
    signer = LinkSigner(signing_key(engine))
    store = open_blob_store(settings.store_url, signer, settings.link_seconds)
    return BlobContext(store, signer, settings)


class LazyBlobContext:
    """The context, built on first use and then kept: a server may start while its database
    is down (the signing key is read from it), and every request shares one store client."""

    def __init__(self, engine: Engine, settings: BlobSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._context: BlobContext | None = None
        self._lock = threading.Lock()
        open_blob_store(settings.store_url)  # a bad URL fails now, not at the first upload

    def __call__(self) -> BlobContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = blob_context(self._engine, self._settings)
        return self._context

    def warm(self) -> None:
        """Build it now if the database answers (the server starts either way)."""
        try:
            self()
        except Exception as exc:
            log.warning("blob store context not ready yet (%s); built on first use", exc)
