"""A world whose ids match the five seed examples (`tests/fixtures/seeds/*.txt`).

One reader user belongs to the Sentera root organization and so reads every organization
below it: the SHORT1 survey of the sync_cogs / sync_mosaics / sync_images examples, the
organization of the sync_flight_tasks example (and its child), and the owners of the sync_files
example. The FEATURE_SET owner of the sync_files example lives in another tenant the reader
cannot read, so it is reported as an invalid owner, exactly as in the example.

Items named in the examples are created with the example's `created_at` (in 2021), so they come
first in every first page; bulk items (to exercise page sizes) are created afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from fieldsync.changeset import apply_changeset
from fieldsync.hashing import encode_hash
from fieldsync.ids import type_code_of
from fieldsync.model.kinds import KIND_BY_CODE
from tests.builder import (
    cog_record,
    feature_set_record,
    field_record,
    file_record,
    flight_task_record,
    image_record,
    logo_record,
    mosaic_record,
    numbered_id,
    organization_record,
    survey_record,
    user_record,
)

# -- organizations -------------------------------------------------------------------------

ROOT_ORG = "ezpt0wj_OR_8brhbkSentera_CV_deve_877281e47_210503_085333"
CHILD_ORG = "t8tcacm_OR_8t8cAcme_CV_stag_877281e47_210503_085336"
ACME_ORG = "gg0kacm_OR_gg0kAcme_CV_deve_72f524141_211118_090537"
LOGO_ORG = "vrw6acm_OR_vrw6Acme_CV_deve_5ccf1e6f4_220119_174649"
OTHER_ORG = "othr7nt_OR_zz9Other_CV_deve_72f524141_211118_090537"

# -- users ---------------------------------------------------------------------------------

READER = "qa7test_US_8brhbkSentera_CV_deve_877281e47_210503_085333"
IMAGE_CREATOR = "rczsi42_US_8brhbkSentera_CV_stag_e3e4835_210209_171134"
MOSAIC_CREATOR = "w7agap3_US_ljkuAcme_CV_deve_12421c42d_211221_133838"
LUITEL = "luitel1_US_gg0kAcme_CV_deve_72f524141_211118_090537"
ORTON = "orton01_US_gg0kAcme_CV_deve_72f524141_211118_090537"
LIOW = "liow001_US_gg0kAcme_CV_deve_72f524141_211118_090537"
ALLEN = "allen01_US_vrw6Acme_CV_deve_5ccf1e6f4_220119_174649"
OTHER_USER = "othr7us_US_zz9Other_CV_deve_72f524141_211118_090537"

# -- the SHORT1 survey (sync_cogs, sync_mosaics, sync_images) ------------------------------

SHORT1_FIELD = "short1f_AS_SHORT1_CV_test_dc0d87d_170907_235328"
SURVEY = "itqkn28_CO_SHORT1_CV_test_dc0d87d_170907_235328"
IMAGE = "jkxco43_IM_SHORT1_CV_test_dc0d87d_170907_235328"
IMAGE_DELETED = "dfaxv57_IM_SHORT1_CV_test_dc0d87d_170907_235328"
MOSAIC = "84mj0xz_MO_ljkuAcme_CV_deve_12421c42d_211221_133840"
MOSAIC_DELETED = "wivyzrk_MO_ljkuAcme_CV_deve_12421c42d_211221_133840"
COG_MOSAIC_A = "43ht9il_MO_ljkuAcme_CV_deve_12421c42d_211221_133840"
COG_MOSAIC_B = "22wq7nc_MO_ljkuAcme_CV_deve_12421c42d_211221_133840"
COG_FAIL = "84mj0xz_CG_ljkuAcme_CV_deve_12421c42d_211221_133840"
COG_SUCCESS = "02fg2zb_CG_ljkuAcme_CV_deve_12421c42d_211221_133840"
COG_DELETED = "wivyzrk_CG_ljkuAcme_CV_deve_12421c42d_211221_133840"
MOSAIC_IMAGES = [f"mimg{n:03d}_IM_SHORT1_CV_test_dc0d87d_170907_235328" for n in range(10)]

# -- flight tasks (sync_flight_tasks) ------------------------------------------------------

TASK = "w9n9629_TA_8t8cAcme_CV_stag_877281e47_210503_085336"
TASK_DELETED = "dfaxv57_TA_SHORT1_CV_stag_dc0d87d_170907_235328"
CHILD_TASKS = [f"chtask{n}_TA_8t8cAcme_CV_stag_877281e47_210503_085336" for n in range(3)]

# -- file owners (sync_files) --------------------------------------------------------------

ACME_FIELD = "j35az4m_AS_gg0kAcme_CV_deve_72f524141_211118_090537"
ACME_SURVEY = "j35az4m_CO_gg0kAcme_CV_deve_72f524141_211118_090537"
ACME_MOSAIC = "j35az4m_MO_gg0kAcme_CV_deve_72f524141_211118_090537"
FEATURE_SET = "j35az4m_FS_gg0kAcme_CV_deve_72f524141_211118_090537"
LOGO = "rm363yb_LO_vrw6Acme_CV_deve_5ccf1e6f4_220119_174649"
OTHER_FIELD = "othr7fl_AS_zz9Other_CV_deve_72f524141_211118_090537"
OTHER_SURVEY = "othr7sv_CO_zz9Other_CV_deve_72f524141_211118_090537"

SURVEY_FILE = "j35az4m_FI_gg0kAcme_CV_deve_72f524141_211118_090537"
MOSAIC_FILE = "k35az4m_FI_gg0kAcme_CV_deve_72f524141_211118_090537"
FIELD_FILE = "l35az4m_FI_gg0kAcme_CV_deve_72f524141_211118_090537"
LOGO_FILE = "1txyj94_FI_vrw6Acme_CV_deve_5ccf1e6f4_220119_174649"
DELETED_FILE = "m35az4m_FI_gg0kAcme_CV_deve_72f524141_211118_090537"
FEATURE_SET_FILE = "n35az4m_FI_gg0kAcme_CV_deve_72f524141_211118_090537"

FILE_OWNERS = {
    "SURVEY": ACME_SURVEY,
    "MOSAIC": ACME_MOSAIC,
    "FIELD": ACME_FIELD,
    "LOGO": LOGO,
}
"""The readable owners of the sync_files example (its FEATURE_SET owner is not readable)."""

# Page sizes of the documented queries (sync-semantics.md §2).
PAGE_SIZES = {
    "sync_cogs": 1000,
    "sync_mosaics": 2000,
    "sync_images": 1000,
    "sync_files": 2000,
    "sync_flight_tasks": 2000,
    "sync_fields": 300,
    "sync_surveys": 2000,
}


_SHORT1_TAIL = "SHORT1_CV_test_dc0d87d_170907_235328"
_ACME_TAIL = "gg0kAcme_CV_deve_72f524141_211118_090537"
_TASK_TAIL = "8brhbkSentera_CV_deve_877281e47_210503_085333"


@dataclass
class SeedWorld:
    """The ids the seed world holds, and the live sync items of each example's scope."""

    scopes: dict[str, set[str]] = field(default_factory=dict)
    """Example query name -> sentera_ids of the live items in the example's scope."""

    def delete(self, engine: Engine, *sentera_ids: str) -> None:
        """Delete items (and forget them in every scope)."""
        apply_changeset(engine, {"actor_sentera_id": READER, "delete": list(sentera_ids)})
        for members in self.scopes.values():
            members.difference_update(sentera_ids)


def _org(sentera_id: str, name: str, parent: str | None = None) -> dict[str, Any]:
    return organization_record(sentera_id, name, parent_sentera_id=parent)


def _user(sentera_id: str, first: str, last: str, org: str) -> dict[str, Any]:
    email = f"{first.lower()}.{last.lower()}@example.test"
    return user_record(sentera_id, email, [org], first_name=first, last_name=last)


def seed_changeset(
    *,
    images: int = 0,
    cogs: int = 0,
    mosaics: int = 0,
    files: int = 0,
    flight_tasks: int = 0,
) -> dict[str, Any]:
    """A changeset creating the seed world, with extra bulk items of each kind.

    The bulk counts add that many more items to the scope of the matching example
    (images/cogs/mosaics to the SHORT1 survey, files spread over the four readable owners,
    flight tasks to the example's organization), so a test can go past a page size.
    """
    example_images = [
        image_record(
            IMAGE,
            SURVEY,
            "86d4b80ce100-FW00024.jpg",
            located=False,
            latitude=45.328761,
            longitude=-93.521094,
            created_by_sentera_id=IMAGE_CREATOR,
            created_at="2017-09-07T23:53:28Z",
        ),
        image_record(
            IMAGE_DELETED,
            SURVEY,
            "86d4b80ce100-FW00025.jpg",
            located=False,
            latitude=45.328801,
            longitude=-93.521101,
            created_by_sentera_id=IMAGE_CREATOR,
            created_at="2017-09-07T23:53:29Z",
        ),
    ] + [
        image_record(
            sentera_id,
            SURVEY,
            f"mosaic-source-{n:03d}.jpg",
            located=False,
            latitude=45.3288 + n / 10000,
            longitude=-93.5211,
            created_by_sentera_id=IMAGE_CREATOR,
            created_at="2017-09-07T23:54:00Z",
        )
        for n, sentera_id in enumerate(MOSAIC_IMAGES)
    ]
    bulk_images = [
        image_record(
            numbered_id("bi", n, "IM", _SHORT1_TAIL),
            SURVEY,
            f"bulk-{n:05d}.jpg",
            located=False,
            latitude=45.0 + n / 100000,
            longitude=-93.0,
        )
        for n in range(images)
    ]

    def mosaic(sentera_id: str, created_at: str, **extra: Any) -> dict[str, Any]:
        made_by = {"created_by_sentera_id": MOSAIC_CREATOR, "created_at": created_at}
        defaults = {"mosaic_type": "RGB", "quality": "FULL", **made_by}
        return mosaic_record(sentera_id, SURVEY, **(defaults | extra))

    example_mosaics = [
        mosaic(
            MOSAIC,
            "2021-12-21T19:38:40Z",
            name="Example",
            mosaic_type="WEED_DETECTION",
            area={"value": 100, "unit": "ACRE"},
            captured_at="2021-12-16T21:23:53Z",
            image_status="AVAILABLE",
            is_from_sentera_sensor=True,
            message="Example message",
            released=True,
            image_sentera_ids=MOSAIC_IMAGES,
        ),
        mosaic(MOSAIC_DELETED, "2021-12-21T19:39:40Z", name="Old"),
        mosaic(COG_MOSAIC_A, "2021-12-21T19:40:40Z", name="COG source A"),
        mosaic(COG_MOSAIC_B, "2021-12-21T19:41:40Z", name="COG source B"),
    ]
    bulk_mosaics = [
        mosaic_record(
            numbered_id("bm", n, "MO", _SHORT1_TAIL), SURVEY, mosaic_type="NDVI", quality="PREVIEW"
        )
        for n in range(mosaics)
    ]
    example_cogs = [
        cog_record(
            COG_FAIL,
            COG_MOSAIC_A,
            "FAIL",
            clipped=True,
            error=(
                "Failed to ungrayscale input image: Expected number of bands to be in (2, 4), "
                "but found 1"
            ),
            max_zoom=None,
            created_at="2021-12-21T19:38:40Z",
        ),
        cog_record(
            COG_SUCCESS,
            COG_MOSAIC_B,
            "SUCCESS",
            clipped=False,
            error=None,
            max_zoom=19,
            created_at="2021-12-21T19:42:40Z",
        ),
        cog_record(COG_DELETED, COG_MOSAIC_B, "PENDING", created_at="2021-12-21T19:43:40Z"),
    ]
    bulk_cogs = [
        cog_record(
            numbered_id("bc", n, "CG", _SHORT1_TAIL),
            (COG_MOSAIC_A, COG_MOSAIC_B)[n % 2],
            "SUCCESS",
            max_zoom=n % 31,
        )
        for n in range(cogs)
    ]

    def file(
        sentera_id: str, owner_type: str, owner: str, filename: str, creator: str, created: str
    ) -> dict[str, Any]:
        return file_record(
            sentera_id,
            owner_type,
            owner,
            filename,
            download_filename=filename,
            version=1,
            created_by_sentera_id=creator,
            created_at=created,
        )

    example_files = [
        file(SURVEY_FILE, "SURVEY", ACME_SURVEY, "example.txt", LUITEL, "2021-11-18T09:05:37Z"),
        file(MOSAIC_FILE, "MOSAIC", ACME_MOSAIC, "example.tif", ORTON, "2021-11-18T09:06:37Z"),
        file(FIELD_FILE, "FIELD", ACME_FIELD, "example.csv", LIOW, "2021-11-18T09:07:37Z"),
        file(LOGO_FILE, "LOGO", LOGO, "logo.png", ALLEN, "2022-01-19T17:46:49Z"),
        file(DELETED_FILE, "SURVEY", ACME_SURVEY, "example.prj", LUITEL, "2021-11-18T09:08:37Z"),
        file(
            FEATURE_SET_FILE,
            "FEATURE_SET",
            FEATURE_SET,
            "hidden.geojson",
            OTHER_USER,
            "2021-11-18T09:09:37Z",
        ),
    ]
    owners = list(FILE_OWNERS.items())
    bulk_files = [
        file_record(
            numbered_id("bf", n, "FI", _ACME_TAIL),
            *owners[n % len(owners)],
            f"bulk-{n:05d}.bin",
            file_type="DOCUMENT",
            size=1024 + n,
        )
        for n in range(files)
    ]
    example_tasks = [
        flight_task_record(TASK, ROOT_ORG, name="Scout", created_at="2021-05-03T08:53:36Z"),
        flight_task_record(
            TASK_DELETED, ROOT_ORG, "COMPLETED", name="Done", created_at="2021-05-03T08:54:36Z"
        ),
    ] + [
        flight_task_record(sentera_id, CHILD_ORG, "IN_PROGRESS", name=f"Child task {n}")
        for n, sentera_id in enumerate(CHILD_TASKS)
    ]
    bulk_tasks = [
        flight_task_record(numbered_id("bt", n, "TA", _TASK_TAIL), ROOT_ORG, "WAITING_FOR_UPLOAD")
        for n in range(flight_tasks)
    ]

    return {
        "actor_sentera_id": READER,
        "upsert": {
            "organizations": [
                _org(ROOT_ORG, "Sentera"),
                _org(CHILD_ORG, "Acme child", ROOT_ORG),
                _org(ACME_ORG, "Acme", ROOT_ORG),
                _org(LOGO_ORG, "Acme logos", ROOT_ORG),
                _org(OTHER_ORG, "Other tenant"),
            ],
            "users": [
                _user(READER, "Quinn", "Tester", ROOT_ORG),
                _user(IMAGE_CREATOR, "Ima", "Pilot", ROOT_ORG),
                _user(MOSAIC_CREATOR, "Mo", "Saic", ROOT_ORG),
                _user(LUITEL, "Sagar", "Luitel", ACME_ORG),
                _user(ORTON, "Olive", "Orton", ACME_ORG),
                _user(LIOW, "Lee", "Liow", ACME_ORG),
                _user(ALLEN, "Alex", "Allen", LOGO_ORG),
                _user(OTHER_USER, "Otto", "Other", OTHER_ORG),
            ],
            "fields": [
                field_record(SHORT1_FIELD, ROOT_ORG, name="S1"),
                field_record(ACME_FIELD, ACME_ORG, name="Acme"),
                field_record(OTHER_FIELD, OTHER_ORG, name="O"),
            ],
            "surveys": [
                survey_record(SURVEY, SHORT1_FIELD, name="SHORT1"),
                survey_record(ACME_SURVEY, ACME_FIELD, name="Acme"),
                survey_record(OTHER_SURVEY, OTHER_FIELD, name="Other"),
            ],
            "images": example_images + bulk_images,
            "mosaics": [
                *example_mosaics,
                mosaic_record(ACME_MOSAIC, ACME_SURVEY, mosaic_type="RGB", quality="FULL"),
                *bulk_mosaics,
            ],
            "cogs": example_cogs + bulk_cogs,
            "feature_sets": [
                feature_set_record(
                    FEATURE_SET,
                    "SURVEY",
                    OTHER_SURVEY,
                    name="Not yours",
                    type="SV_PLANT_COUNT",
                    created_by_sentera_id=OTHER_USER,
                )
            ],
            "logos": [logo_record(LOGO, LOGO_ORG, name="Acme")],
            "files": example_files + bulk_files,
            "flight_tasks": example_tasks + bulk_tasks,
        },
    }


def update_changeset() -> dict[str, Any]:
    """Updates two example files, so their `action` is UPDATE as in the sync_files example."""
    return {
        "actor_sentera_id": READER,
        "upsert": {
            "files": [
                {"sentera_id": SURVEY_FILE, "version": 2, "updated_by_sentera_id": LUITEL},
                {"sentera_id": LOGO_FILE, "version": 2, "updated_by_sentera_id": ALLEN},
            ]
        },
    }


def build_seed_world(engine: Engine, **bulk: int) -> SeedWorld:
    """Apply the seed world (with `bulk` extra items, see `seed_changeset`) and its updates."""
    document = seed_changeset(**bulk)
    apply_changeset(engine, document)
    apply_changeset(engine, update_changeset())
    upsert = document["upsert"]
    short1_mosaics = {m["sentera_id"] for m in upsert["mosaics"]} - {ACME_MOSAIC}
    return SeedWorld(
        scopes={
            "sync_images": {i["sentera_id"] for i in upsert["images"]},
            "sync_mosaics": short1_mosaics,
            "sync_cogs": {c["sentera_id"] for c in upsert["cogs"]},
            "sync_files": {
                f["sentera_id"] for f in upsert["files"] if f["sentera_id"] != FEATURE_SET_FILE
            },
            "sync_flight_tasks": {
                task["sentera_id"]
                for task in upsert["flight_tasks"]
                if task["organization_sentera_id"] == ROOT_ORG
            },
        }
    )


def current_hashes(engine: Engine, sentera_ids: set[str] | list[str]) -> dict[str, str]:
    """The current content hash (as clients see it) of each named item, live or deleted."""
    by_code: dict[Any, list[str]] = {}
    for sentera_id in sentera_ids:
        by_code.setdefault(type_code_of(sentera_id), []).append(sentera_id)
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for code, ids in by_code.items():
            table = KIND_BY_CODE[code].table
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                rows = conn.execute(
                    select(table.c.sentera_id, table.c.content_hash).where(
                        table.c.sentera_id.in_(part)
                    )
                )
                found.update({r.sentera_id: encode_hash(r.content_hash) for r in rows})
    return found
