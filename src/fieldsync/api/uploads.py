"""Resolvers of the upload mutations and of `url`: GraphQL in, `blobs.uploads` out.

Bytes never travel through GraphQL: a mutation hands out a signed URL (of the local store or a
presigned S3 one) and the client sends the bytes there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fieldsync.api.context import RequestContext
from fieldsync.blobs import uploads
from fieldsync.blobs.context import BlobContext
from fieldsync.errors import ForbiddenError, NoBlobStoreError

Resolver = Callable[..., Any]


def _uploader(info: Any) -> tuple[RequestContext, BlobContext]:
    """The request's context and blob store, for a caller that may write somewhere."""
    context: RequestContext = info.context
    if context.blobs is None:
        raise NoBlobStoreError
    if not context.write_access.writable:
        raise ForbiddenError(
            "uploading needs the editor or admin role in an organization; yours are viewer"
        )
    return context, context.blobs


def resolve_create_file_upload(
    _source: Any,
    info: Any,
    filename: str,
    byte_size: int,
    checksum: str,
    content_type: str,
) -> dict[str, Any]:
    context, blobs = _uploader(info)
    ticket = uploads.create_upload(
        context.conn,
        blobs,
        context.viewer.user_id,
        filename,
        byte_size,
        checksum,
        content_type,
        context.base_url,
        now=context.now,
    )
    return {"id": ticket.id, "upload_url": ticket.upload_url, "headers": ticket.headers}


def resolve_create_multipart_file_upload(
    _source: Any,
    info: Any,
    filename: str,
    content_type: str,
    byte_size: int | None = None,
    checksum: str | None = None,
) -> dict[str, Any]:
    context, blobs = _uploader(info)
    ticket = uploads.create_multipart_upload(
        context.conn,
        blobs,
        context.viewer.user_id,
        filename,
        content_type,
        byte_size,
        checksum,
        now=context.now,
    )
    return {"id": ticket.id, "s3_key": ticket.s3_key, "upload_id": ticket.upload_id}


def resolve_prepare_part(
    _source: Any, info: Any, part_number: int, s3_key: str, upload_id: str
) -> dict[str, Any]:
    context, blobs = _uploader(info)
    url = uploads.prepare_part(
        context.conn,
        blobs,
        context.viewer.user_id,
        s3_key,
        upload_id,
        part_number,
        context.base_url,
        now=context.now,
    )
    return {"url": url}


def resolve_complete_multipart(
    _source: Any, info: Any, parts: list[dict[str, Any]], s3_key: str, upload_id: str
) -> dict[str, Any]:
    context, blobs = _uploader(info)
    pairs = [(part["part_number"], part["etag"]) for part in parts]
    file_key = uploads.complete_multipart_upload(
        context.conn, blobs, context.viewer.user_id, s3_key, upload_id, pairs, now=context.now
    )
    return {"id": file_key}


def resolve_url(source: dict[str, Any], info: Any) -> str | None:
    """A signed link to an image's or file's bytes, valid 60 minutes; null without bytes."""
    context: RequestContext = info.context
    stored = source.get("blob")
    if stored is None or context.blobs is None:
        return None
    filename = source.get("download_filename") or source["filename"]
    return uploads.download_url(
        context.blobs, stored["key"], filename, stored["content_type"], context.base_url
    )


UPLOAD_RESOLVERS: dict[str, Resolver] = {
    "create_file_upload": resolve_create_file_upload,
    "create_multipart_file_upload": resolve_create_multipart_file_upload,
    "prepare_multipart_file_upload_part": resolve_prepare_part,
    "complete_multipart_file_upload": resolve_complete_multipart,
}
