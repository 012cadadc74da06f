"""HTTP for the local blob store: PUT of signed upload links (whole files and multipart
parts) and GET/HEAD of signed download links. Transport only: the store checks the bytes.

Bodies stream to a temporary file in bounded memory; the GraphQL body limit does not apply,
the size signed into the link does. With an S3 store these routes answer 404: clients talk to
the bucket directly.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from fieldsync.api.execution import error_body
from fieldsync.blobs.context import BlobContext
from fieldsync.blobs.local import GET_PATH, PART_PATH, PUT_PATH, BlobWriter, LocalBlobStore
from fieldsync.blobs.signing import LinkSignatureError
from fieldsync.blobs.store import (
    MAX_SINGLE_PUT_BYTES,
    content_disposition,
    is_blob_key,
    key_md5_hex,
    key_size,
)
from fieldsync.errors import FieldSyncError

log = logging.getLogger("fieldsync.files")


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_body(message, code), status_code=status)


def _local_store(blobs: Callable[[], BlobContext]) -> LocalBlobStore:
    store = blobs().store
    if not isinstance(store, LocalBlobStore):
        raise _Refused(404, "this server keeps bytes in S3: use the bucket's links", "NOT_FOUND")
    return store


def _verified(request: Request, store: LocalBlobStore) -> dict[str, str]:
    assert store.signer is not None
    try:
        return store.signer.verify(request.url.path, dict(request.query_params))
    except LinkSignatureError as exc:
        raise _Refused(403, str(exc), exc.code) from None


def _declared_length(request: Request, maximum: int) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        raise _Refused(
            400, "Content-Length header is missing: send the body with its length", "BAD_REQUEST"
        )
    try:
        length = int(raw)
    except ValueError:
        raise _Refused(400, "Content-Length header is not a number", "BAD_REQUEST") from None
    if not 0 <= length <= maximum:
        raise _Refused(400, f"Content-Length must be from 0 to {maximum}", "BAD_REQUEST")
    return length


def _content_md5_hex(request: Request, *, required: bool) -> str | None:
    raw = request.headers.get("content-md5")
    if raw is None:
        if required:
            raise _Refused(
                400,
                "Content-MD5 header is missing: send exactly the headers the upload gave",
                "BAD_REQUEST",
            )
        return None
    try:
        digest = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise _Refused(400, "Content-MD5 is not the base64 of a 16-byte MD5", "BAD_REQUEST")
    return digest.hex()


async def _receive(request: Request, store: LocalBlobStore, length: int) -> BlobWriter:
    """The body in a temporary file, exactly `length` bytes, else refused (file removed)."""
    writer = await run_in_threadpool(store.writer)
    try:
        async for chunk in request.stream():
            if writer.size + len(chunk) > length:
                raise _Refused(
                    400, f"the body holds more than the {length} bytes declared", "SIZE_MISMATCH"
                )
            writer.write(chunk)
        if writer.size != length:
            raise _Refused(
                400,
                f"the body held {writer.size} bytes, fewer than the {length} declared",
                "SIZE_MISMATCH",
            )
    except ClientDisconnect:
        writer.discard()
        raise _Refused(
            400, "the client left before sending the whole body", "BAD_REQUEST"
        ) from None
    except BaseException:
        writer.discard()
        raise
    return writer


async def _commit(writer: BlobWriter, commit: Callable[[], object]) -> None:
    try:
        await run_in_threadpool(commit)
    except BaseException:
        await run_in_threadpool(writer.discard)
        raise


async def put_blob(request: Request, blobs: Callable[[], BlobContext]) -> Response:
    store = _local_store(blobs)
    params = _verified(request, store)
    key = request.path_params["key"]
    if not is_blob_key(key) or params.get("md5") is None:
        raise _Refused(403, "this is not an upload link", "FORBIDDEN")
    length = _declared_length(request, MAX_SINGLE_PUT_BYTES)
    if length != key_size(key):
        raise _Refused(
            400,
            f"Content-Length is {length}, but this upload is for {key_size(key)} bytes",
            "SIZE_MISMATCH",
        )
    if _content_md5_hex(request, required=True) != key_md5_hex(key):
        raise _Refused(
            400,
            f"Content-MD5 must be {params['md5']}, the checksum this upload was created with",
            "CHECKSUM_MISMATCH",
        )
    declared_type = params.get("type")
    given_type = request.headers.get("content-type")
    if declared_type and given_type != declared_type:
        raise _Refused(400, f"Content-Type must be {declared_type!r}", "BAD_REQUEST")
    writer = await _receive(request, store, length)
    await _commit(writer, lambda: store.commit_blob(writer, key))
    return Response(status_code=200, headers={"ETag": f'"{key_md5_hex(key)}"'})


async def put_part(request: Request, blobs: Callable[[], BlobContext]) -> Response:
    store = _local_store(blobs)
    _verified(request, store)
    upload_id = request.path_params["upload_id"]
    part_number = int(request.path_params["part_number"])
    length = _declared_length(request, MAX_SINGLE_PUT_BYTES)
    expected_md5 = _content_md5_hex(request, required=False)
    writer = await _receive(request, store, length)
    if expected_md5 is not None and writer.md5_hex() != expected_md5:
        await run_in_threadpool(writer.discard)
        raise _Refused(400, "the part's bytes do not match its Content-MD5", "CHECKSUM_MISMATCH")
    etags: list[str] = []
    await _commit(writer, lambda: etags.append(store.commit_part(writer, upload_id, part_number)))
    return Response(status_code=200, headers={"ETag": etags[0]})


async def get_blob(request: Request, blobs: Callable[[], BlobContext]) -> Response:
    store = _local_store(blobs)
    params = _verified(request, store)
    key = request.path_params["key"]
    if not is_blob_key(key) or "filename" not in params:
        raise _Refused(403, "this is not a download link", "FORBIDDEN")
    path = store.blob_path(key)
    try:
        stat = await run_in_threadpool(path.stat)
    except FileNotFoundError:
        raise _Refused(404, "these bytes are no longer stored", "NOT_FOUND") from None
    etag = f'"{key_md5_hex(key)}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": content_disposition(params["filename"]),
        "Cache-Control": "private, max-age=3600",
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    media_type = params.get("type") or "application/octet-stream"
    return FileResponse(path, headers=headers, media_type=media_type, stat_result=stat)


Endpoint = Callable[[Request, Callable[[], BlobContext]], Awaitable[Response]]


def _handler(
    endpoint: Endpoint, blobs: Callable[[], BlobContext]
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            response = await endpoint(request, blobs)
        except _Refused as exc:
            return _error(exc.status, str(exc), exc.code)
        except FieldSyncError as exc:
            return _error(400, str(exc), exc.code)
        return response

    return handle


def file_routes(blobs: Callable[[], BlobContext]) -> list[Route]:
    """The local store's signed-link routes; `blobs` gives the (lazily built) context."""
    return [
        Route(PUT_PATH, _handler(put_blob, blobs), methods=["PUT"]),
        Route(
            PART_PATH.replace("{part_number}", "{part_number:int}"),
            _handler(put_part, blobs),
            methods=["PUT"],
        ),
        Route(GET_PATH, _handler(get_blob, blobs), methods=["GET", "HEAD"]),
    ]
