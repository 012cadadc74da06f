"""The S3 blob store (AWS S3, MinIO, Ceph...) through boto3: clients PUT and GET the bytes
straight to the bucket with presigned SigV4 URLs; FieldSync never proxies them.

Credentials, endpoint and region come from the standard AWS variables (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3`, `AWS_REGION`). A single PUT goes to the content
key with `Content-MD5` and `Content-Length` signed, so S3 itself refuses other bytes. A
multipart upload goes to a staging key; once complete it is read back once (bounded memory),
its size and MD5 checked, and copied to the content key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fieldsync.blobs.store import (
    BlobStat,
    BlobStoreUnavailableError,
    CompletedBlob,
    DownloadTarget,
    InvalidPartError,
    RasterLocation,
    StoredBlob,
    UploadTarget,
    check_part_sizes,
    check_parts,
    check_whole,
    checksum_of,
    content_disposition,
    file_digest,
    is_blob_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

READ_CHUNK = 1024 * 1024
DEFAULT_REGION = "us-east-1"


def s3_client() -> S3Client:
    """A boto3 S3 client from the standard AWS variables, always signing with SigV4.

    A custom endpoint (MinIO, Ceph, a local test server) is addressed path-style."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
    )
    client: S3Client = boto3.client(
        "s3", region_name=region, endpoint_url=endpoint or None, config=config
    )
    return client


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(exc: Exception, what: str) -> BlobStoreUnavailableError:
    detail = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return BlobStoreUnavailableError(f"the S3 blob store failed to {what} ({detail}): try again")


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, link_seconds: int, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.link_seconds = link_seconds
        self.client: S3Client = client or s3_client()
        self.description = f"s3://{bucket}/{self.prefix}"

    def _key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def object_key(self, key: str) -> str:
        return self._key("blobs", key)

    def staging_key(self, upload_id: str) -> str:
        return self._key("uploads", upload_id)

    def _presign(self, operation: str, params: dict[str, Any]) -> str:
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=self.link_seconds
        )
        return url

    def presign_put(
        self, key: str, byte_size: int, checksum: str, content_type: str | None, base_url: str
    ) -> UploadTarget:
        params: dict[str, Any] = {
            "Key": self.object_key(key),
            "ContentMD5": checksum,
            "ContentLength": byte_size,
        }
        headers = {"Content-MD5": checksum, "Content-Length": str(byte_size)}
        if content_type:
            params["ContentType"] = content_type
            headers["Content-Type"] = content_type
        return UploadTarget(self._presign("put_object", params), headers)

    def create_multipart(self, upload_id: str, content_type: str | None) -> str:
        staging = self.staging_key(upload_id)
        try:
            if content_type:
                created = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=staging, ContentType=content_type
                )
            else:
                created = self.client.create_multipart_upload(Bucket=self.bucket, Key=staging)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc, "start a multipart upload") from None
        return created["UploadId"]

    def presign_part(
        self, upload_id: str, store_upload_id: str, part_number: int, base_url: str
    ) -> str:
        params = {
            "Key": self.staging_key(upload_id),
            "UploadId": store_upload_id,
            "PartNumber": part_number,
        }
        return self._presign("upload_part", params)

    def complete_multipart(
        self,
        upload_id: str,
        store_upload_id: str,
        parts: Sequence[tuple[int, str]],
        expected: tuple[int | None, str | None],
    ) -> CompletedBlob:
        staging = self.staging_key(upload_id)
        ordered = check_parts(parts)
        self._check_uploaded_parts(staging, store_upload_id, ordered)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=staging,
                UploadId=store_upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in ordered]
                },
            )
        except ClientError as exc:
            raise InvalidPartError(
                f"the store refused to complete the upload ({_error_code(exc)}): check every "
                "part's etag and that every part but the last holds at least 5 MiB"
            ) from None
        try:
            size, md5_hex = self._digest(staging)
            check_whole(size, md5_hex, expected)
            key = f"{md5_hex}-{size}"
            self.client.copy(
                {"Bucket": self.bucket, "Key": staging}, self.bucket, self.object_key(key)
            )
        finally:
            self._delete_object(staging)
        return CompletedBlob(key, checksum_of(md5_hex), size)

    def _check_uploaded_parts(
        self, staging: str, store_upload_id: str, ordered: list[tuple[int, str]]
    ) -> None:
        """Every listed part was uploaded with that etag, and sizes are allowed."""
        uploaded: dict[int, tuple[int, str]] = {}
        try:
            paginator = self.client.get_paginator("list_parts")
            pages = paginator.paginate(Bucket=self.bucket, Key=staging, UploadId=store_upload_id)
            for page in pages:
                for part in page.get("Parts", []):
                    etag = part["ETag"].strip('"').lower()
                    uploaded[part["PartNumber"]] = (part["Size"], etag)
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload":
                raise InvalidPartError(
                    "this multipart upload was completed or aborted: create a new one"
                ) from None
            raise _unavailable(exc, "list the uploaded parts") from None
        for number, etag in ordered:
            if number not in uploaded:
                raise InvalidPartError(
                    f"part {number} was never uploaded: PUT it to its prepared url first"
                )
            if uploaded[number][1] != etag:
                raise InvalidPartError(
                    f"part {number}: etag {etag!r} is not the ETag its upload returned "
                    f'("{uploaded[number][1]}"): send each part\'s ETag header'
                )
        check_part_sizes([(number, uploaded[number][0]) for number, _ in ordered])

    def _digest(self, object_key: str) -> tuple[int, str]:
        """Size and MD5 of an object, read once in bounded memory."""
        body = self.client.get_object(Bucket=self.bucket, Key=object_key)["Body"]
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        for chunk in body.iter_chunks(READ_CHUNK):
            md5.update(chunk)
            size += len(chunk)
        return size, md5.hexdigest()

    def _delete_object(self, object_key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc, "delete an object") from None

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.staging_key(upload_id), UploadId=store_upload_id
            )
        except ClientError as exc:
            if _error_code(exc) not in ("NoSuchUpload", "404"):
                raise _unavailable(exc, "abort a multipart upload") from None
        self._delete_object(self.staging_key(upload_id))

    def stat(self, key: str) -> BlobStat | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _unavailable(exc, "look up an object") from None
        except BotoCoreError as exc:
            raise _unavailable(exc, "look up an object") from None
        return BlobStat(head["ContentLength"], head["LastModified"].astimezone(UTC))

    def delete(self, key: str) -> None:
        self._delete_object(self.object_key(key))

    def list_blobs(self) -> Iterator[StoredBlob]:
        prefix = self._key("blobs") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if is_blob_key(name):
                    yield StoredBlob(name, item["LastModified"].astimezone(UTC))

    def presign_get(self, target: DownloadTarget, base_url: str) -> str:
        params = {
            "Key": self.object_key(target.key),
            "ResponseContentDisposition": content_disposition(target.download_filename),
        }
        if target.content_type:
            params["ResponseContentType"] = target.content_type
        return self._presign("get_object", params)

    def local_copy(self, key: str, workdir: Path) -> Path:
        target = workdir / key
        try:
            self.client.download_file(self.bucket, self.object_key(key), str(target))
        except (ClientError, BotoCoreError) as exc:
            target.unlink(missing_ok=True)
            raise _unavailable(exc, "download an object") from None
        return target

    def store_file(self, path: Path, content_type: str | None) -> CompletedBlob:
        size, md5_hex = file_digest(path)
        key = f"{md5_hex}-{size}"
        extra = {"ContentType": content_type} if content_type else {}
        try:  # boto3's transfer manager goes multipart for large files
            self.client.upload_file(str(path), self.bucket, self.object_key(key), ExtraArgs=extra)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc, "upload an object") from None
        return CompletedBlob(key, checksum_of(md5_hex), size)

    def raster_location(self, key: str) -> RasterLocation:
        """A presigned GET read through GDAL's `/vsicurl/` (HTTP range requests).

        A presigned URL carries its own authorization, so no credentials go into GDAL's
        process-wide configuration, and it reaches any endpoint the links already reach."""
        url = self._presign("get_object", {"Key": self.object_key(key)})
        options = {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            # A URL presigned for GET does not authorize HEAD: size comes from a ranged GET.
            "CPL_VSIL_CURL_USE_HEAD": "NO",
            "GDAL_HTTP_MAX_RETRY": "2",
        }
        return RasterLocation("/vsicurl/" + url, options)

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Staging objects left behind (a server stopped between complete and copy)."""
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("uploads") + "/"):
            for item in page.get("Contents", []):
                if item["LastModified"].astimezone(UTC) < older_than:
                    self._delete_object(item["Key"])
                    removed += 1
        return removed
