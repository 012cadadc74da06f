"""File bytes through the GraphQL API, on each database and each blob store: an upload is
created by mutation, its bytes PUT to the signed URL, attached to a file or an image by
`file_key`, synced with their checksum, and downloaded through `url`, every byte checked."""

from __future__ import annotations

import base64
import hashlib
import os
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.blob_support import CREATE_UPLOAD, Api, BlobEnv, md5_b64
from tests.builder import Changeset, representation, sid, snapshot

FILE_FIELDS = "sentera_id content_hash action filename size checksum url"
RESULT = (
    f"succeeded {{ ... on File {{ {FILE_FIELDS} }} ... on Image {{ sentera_id content_hash "
    "filename size checksum url } } failed { index attributes { attribute key message } }"
)

UPSERT_FILES = f"""
mutation($owner: FileOwnerInput!, $files: [FileImport!]!) {{
  upsert_files(owner: $owner, files: $files) {{ {RESULT} }}
}}"""
UPSERT_IMAGES = f"""
mutation($survey: ID!, $images: [ImageImport!]!) {{
  upsert_images(survey_sentera_id: $survey, images: $images) {{ {RESULT} }}
}}"""
SYNC_FILES = f"""
query($owners: [FileOwnerInput!]!) {{
  sync_files(owners: $owners, content_hashes: []) {{
    upserted {{ ... on File {{ {FILE_FIELDS} }} }}
  }}
}}"""


def survey_owner(env: BlobEnv) -> dict[str, str]:
    return {"owner_type": "SURVEY", "sentera_id": env.world.survey}


def download(env: BlobEnv, url: str, **headers: str) -> httpx.Response:
    return env.server.http.get(url, headers=headers)


def test_a_file_gets_its_bytes_by_file_key_and_serves_them_through_url(blob_env: BlobEnv) -> None:
    api = Api(blob_env)
    content = os.urandom(300_000)
    file_key = api.upload(content)
    result = api.data(
        UPSERT_FILES,
        owner=survey_owner(blob_env),
        files=[
            {
                "filename": "notes.pdf",
                "download_filename": "north notes.pdf",
                "file_type": "DOCUMENT",
                "file_key": file_key,
            }
        ],
    )["upsert_files"]
    assert result["failed"] == []
    written = result["succeeded"][0]
    assert written["checksum"] == md5_b64(content) and written["size"] == str(len(content))
    synced = api.data(SYNC_FILES, owners=[survey_owner(blob_env)])["sync_files"]["upserted"]
    mine = next(item for item in synced if item["sentera_id"] == written["sentera_id"])
    assert mine["content_hash"] == written["content_hash"]
    assert mine["checksum"] == md5_b64(content)
    got = download(blob_env, mine["url"])
    assert got.status_code == 200
    assert got.content == content
    assert base64.b64encode(hashlib.md5(got.content).digest()).decode() == mine["checksum"]
    assert (
        "north notes.pdf" in got.headers["content-disposition"]
        or "north%20notes.pdf" in (got.headers["content-disposition"])
    )
    # The link is not part of the representation: the hash stays while the link is re-signed.
    assert "url" not in representation(blob_env.engine, written["sentera_id"])


def test_new_bytes_make_a_new_hash_and_an_image_serves_its_bytes(blob_env: BlobEnv) -> None:
    api = Api(blob_env)
    world = blob_env.world
    first, second = os.urandom(70_000), os.urandom(80_000)
    created = api.data(
        UPSERT_IMAGES,
        survey=world.survey,
        images=[{"filename": "IMG_1.jpg", "file_key": api.upload(first, "IMG_1.jpg")}],
    )["upsert_images"]["succeeded"][0]
    assert download(blob_env, created["url"]).content == first
    replaced = api.data(
        UPSERT_IMAGES,
        survey=world.survey,
        images=[{"sentera_id": created["sentera_id"], "file_key": api.upload(second, "IMG_1.jpg")}],
    )["upsert_images"]["succeeded"][0]
    assert replaced["content_hash"] != created["content_hash"]
    assert replaced["checksum"] == md5_b64(second) and replaced["size"] == str(len(second))
    assert download(blob_env, replaced["url"]).content == second


def test_bytes_not_uploaded_or_of_another_user_are_not_attached(blob_env: BlobEnv) -> None:
    api = Api(blob_env)
    content = b"never sent"
    ticket = api.data(
        CREATE_UPLOAD, name="a.txt", size=len(content), md5=md5_b64(content), type="text/plain"
    )
    other = sid("US")
    Changeset(actor=blob_env.world.user).add(
        "users",
        {
            "sentera_id": other,
            "email": "o@acme.test",
            "organization_sentera_ids": [blob_env.world.org],
        },
    ).apply(blob_env.engine)
    someone = Api(blob_env, other)
    theirs = someone.upload(b"their bytes", "b.txt")
    before = snapshot(blob_env.engine)
    result = api.data(
        UPSERT_FILES,
        owner=survey_owner(blob_env),
        files=[
            {
                "filename": "a.txt",
                "file_type": "DOCUMENT",
                "file_key": ticket["create_file_upload"]["id"],
            },
            {"filename": "b.txt", "file_type": "DOCUMENT", "file_key": theirs},
            {"filename": "c.txt", "file_type": "DOCUMENT", "file_key": "no-such-upload"},
        ],
    )["upsert_files"]
    assert result["succeeded"] == []
    assert [(e["index"], e["attributes"][0]["attribute"]) for e in result["failed"]] == [
        (0, "file_key"),
        (1, "file_key"),
        (2, "file_key"),
    ]
    assert result["failed"][0]["attributes"][0]["key"] == "upload_incomplete"
    assert (
        result["failed"][1]["attributes"][0]["key"] == result["failed"][2]["attributes"][0]["key"]
    )
    after = snapshot(blob_env.engine)
    for table in ("files", "item_versions"):
        assert after[table] == before[table]


def test_a_viewer_may_not_upload(blob_env: BlobEnv) -> None:
    viewer = sid("US")
    Changeset(actor=blob_env.world.user).add(
        "users",
        {
            "sentera_id": viewer,
            "email": "v@acme.test",
            "memberships": [{"organization_sentera_id": blob_env.world.org, "role": "viewer"}],
        },
    ).apply(blob_env.engine)
    body = Api(blob_env, viewer).call(
        CREATE_UPLOAD, name="a", size=1, md5=md5_b64(b"a"), type="text/plain"
    )
    assert body["data"] == {"create_file_upload": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_tampered_download_link_is_refused(blob_env: BlobEnv) -> None:
    api = Api(blob_env)
    content = os.urandom(1000)
    written = api.data(
        UPSERT_FILES,
        owner=survey_owner(blob_env),
        files=[
            {"filename": "x.bin", "file_type": "OTHER", "file_key": api.upload(content, "x.bin")}
        ],
    )["upsert_files"]["succeeded"][0]
    parts = urlsplit(written["url"])
    tampered = urlunsplit(parts._replace(query=parts.query.replace("x.bin", "y.bin")))
    assert tampered != written["url"]
    assert download(blob_env, tampered).status_code == 403
    assert download(blob_env, written["url"]).content == content


MULTIPART = """
mutation($name: String!, $size: BigInt, $md5: String) {
  create_multipart_file_upload(
    filename: $name, content_type: "image/tiff", byte_size: $size, checksum: $md5
  ) {
    id s3_key upload_id
  }
}"""
PART = """
mutation($n: Int!, $key: String!, $upload: String!) {
  prepare_multipart_file_upload_part(part_number: $n, s3_key: $key, upload_id: $upload) { url }
}"""
COMPLETE = """
mutation($parts: [MultipartFileUploadPartInput!]!, $key: String!, $upload: String!) {
  complete_multipart_file_upload(parts: $parts, s3_key: $key, upload_id: $upload) { id }
}"""


def test_a_multipart_upload_in_any_order_attaches_and_downloads(blob_env: BlobEnv) -> None:
    api = Api(blob_env)
    part_size = 5 * 1024 * 1024
    content = os.urandom(2 * part_size + 12_345)
    ticket = api.data(MULTIPART, name="ortho.tif", size=len(content), md5=md5_b64(content))[
        "create_multipart_file_upload"
    ]
    pieces = [content[i : i + part_size] for i in range(0, len(content), part_size)]
    etags: dict[int, str] = {}
    for number in (3, 1, 2):
        url = api.data(PART, n=number, key=ticket["s3_key"], upload=ticket["upload_id"])[
            "prepare_multipart_file_upload_part"
        ]["url"]
        answer = blob_env.server.http.put(url, content=pieces[number - 1])
        assert answer.status_code == 200, answer.text
        etags[number] = answer.headers["etag"]
    parts = [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]
    done = api.data(COMPLETE, parts=parts, key=ticket["s3_key"], upload=ticket["upload_id"])
    assert done["complete_multipart_file_upload"]["id"] == ticket["id"]
    written = api.data(
        UPSERT_FILES,
        owner={"owner_type": "MOSAIC", "sentera_id": blob_env.world.mosaic},
        files=[{"filename": "ortho.tif", "file_type": "MOSAIC", "file_key": ticket["id"]}],
    )["upsert_files"]["succeeded"][0]
    assert written["checksum"] == md5_b64(content)
    resumed = download(blob_env, written["url"], Range=f"bytes={part_size}-")
    assert resumed.status_code == 206
    assert download(blob_env, written["url"]).content[:part_size] + resumed.content == content


def test_a_nul_character_in_an_upload_argument_is_a_clear_error(blob_env: BlobEnv) -> None:
    """PostgreSQL's text holds no NUL: a key with one names no upload, and a filename with one
    is refused, instead of the driver's error surfacing as an internal one."""
    api = Api(blob_env)
    ticket = api.data(MULTIPART, name="big.tif", size=None, md5=None)
    multipart = ticket["create_multipart_file_upload"]
    for key, upload in (
        (multipart["s3_key"], multipart["upload_id"] + "\x00"),
        (multipart["s3_key"] + "\x00", multipart["upload_id"]),
    ):
        body = api.call(PART, n=1, key=key, upload=upload)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
    body = api.call(COMPLETE, parts=[], key=multipart["s3_key"], upload="x\x00")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
    body = api.call(CREATE_UPLOAD, name="a\x00.txt", size=1, md5=md5_b64(b"a"), type="text/plain")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "NUL" in body["errors"][0]["message"]
    result = api.data(
        UPSERT_FILES,
        owner=survey_owner(blob_env),
        files=[{"filename": "a.txt", "file_type": "DOCUMENT", "file_key": "k\x00"}],
    )["upsert_files"]
    assert [e["attributes"][0]["attribute"] for e in result["failed"]] == ["file_key"]
