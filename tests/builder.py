"""The one builder of test worlds: sentera_ids, records of every kind, changeset documents,
a small complete world, and reading rows back.

Every test world (this module's `World`, the tenants of the access tests, the bigger worlds of
the CLI, migration and concurrency tests, the seed world) is made of these records, so a record
of a kind has one shape everywhere; each world adds only the values it needs. `sid` is the one
id helper: ids are unique within a process, and each test has a database of its own.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import RowMapping

from fieldsync.changeset import ChangesetSummary, apply_changeset
from fieldsync.ids import type_code_of
from fieldsync.model.kinds import ALL_KINDS, KIND_BY_CODE
from fieldsync.storage import tables as t

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 6, 2, 12, 0, 0, tzinfo=UTC)
T2 = datetime(2024, 6, 3, 12, 0, 0, tzinfo=UTC)

_counter = itertools.count(1)


def sid(code: str, org_key: str = "Acme") -> str:
    """A fresh, well-formed sentera_id of the given type code (unique within the process)."""
    return f"t{next(_counter):06d}_{code}_{org_key}_CV_test_abc123_240101_000000"


def numbered_id(prefix: str, n: int, code: str, tail: str) -> str:
    """A well-formed sentera_id with a fixed tail (organization key and the rest), for bulk
    items that must sort after ids of a given tail: `prefix` + `n` (5 digits) + `code` + tail."""
    return f"{prefix}{n:05d}_{code}_{tail}"


# -- records: one constructor per kind; keyword arguments add (or override) keys -------------

LOCATION: dict[str, Any] = {
    "latitude": 45.328761,
    "longitude": -93.521094,
    "altitude": 120.5,
    "captured_at": "2024-06-01T14:03:11Z",
}
"""Where and when `image_record` places an image unless told otherwise."""


def organization_record(sentera_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"sentera_id": sentera_id, "name": name, **extra}


def user_record(
    sentera_id: str, email: str, organizations: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "email": email,
        **extra,
        "organization_sentera_ids": organizations,
    }


def field_record(sentera_id: str, organization: str, **extra: Any) -> dict[str, Any]:
    return {"sentera_id": sentera_id, "organization_sentera_id": organization, **extra}


def survey_record(sentera_id: str, field: str, **extra: Any) -> dict[str, Any]:
    return {"sentera_id": sentera_id, "field_sentera_id": field, **extra}


def mosaic_record(
    sentera_id: str, survey: str, images: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A mosaic; it links `images` when they are given."""
    links = {} if images is None else {"image_sentera_ids": images}
    return {"sentera_id": sentera_id, "survey_sentera_id": survey, **extra, **links}


def cog_record(sentera_id: str, mosaic: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"sentera_id": sentera_id, "mosaic_sentera_id": mosaic, "status": status, **extra}


def feature_set_record(
    sentera_id: str, owner_type: str, owner: str, **extra: Any
) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "owner_type": owner_type,
        "owner_sentera_id": owner,
        **extra,
    }


def logo_record(sentera_id: str, organization: str, **extra: Any) -> dict[str, Any]:
    return {"sentera_id": sentera_id, "organization_sentera_id": organization, **extra}


def flight_task_record(
    sentera_id: str, organization: str, status: str = "OPEN", **extra: Any
) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "organization_sentera_id": organization,
        "status": status,
        **extra,
    }


@dataclass
class Changeset:
    """A changeset document built up record by record."""

    actor: str | None = None
    upsert: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)

    def add(self, key: str, *records: dict[str, Any]) -> Changeset:
        """Append records to one upsert list (`"images"`, `"files"`, ...)."""
        self.upsert.setdefault(key, []).extend(records)
        return self

    def merge(self, upsert: dict[str, list[dict[str, Any]]]) -> Changeset:
        """Append every list of another upsert section."""
        for key, records in upsert.items():
            self.add(key, *records)
        return self

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.actor is not None:
            document["actor_sentera_id"] = self.actor
        if self.upsert:
            document["upsert"] = self.upsert
        if self.delete:
            document["delete"] = self.delete
        return document

    def apply(self, engine: Engine, *, now: datetime | None = None) -> ChangesetSummary:
        return apply_changeset(engine, self.document(), now=now)


def table_of(sentera_id: str) -> Any:
    code = type_code_of(sentera_id)
    assert code is not None, sentera_id
    return KIND_BY_CODE[code].table


def row(engine: Engine, sentera_id: str) -> RowMapping:
    """The row (live or tombstone) an id names."""
    table = table_of(sentera_id)
    with engine.connect() as conn:
        found = conn.execute(select(table).where(table.c.sentera_id == sentera_id)).mappings()
        result = found.one()
    return result


def exists(engine: Engine, sentera_id: str) -> bool:
    table = table_of(sentera_id)
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(table).where(table.c.sentera_id == sentera_id)
        ).scalar_one()
    return bool(count)


def representation(engine: Engine, sentera_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(row(engine, sentera_id)["representation"])
    return loaded


def is_deleted(engine: Engine, sentera_id: str) -> bool:
    return row(engine, sentera_id)["deleted_at"] is not None


def versions_of(engine: Engine, sentera_id: str) -> dict[bytes, RowMapping]:
    """Every hash ever issued for an item, with the scope key of that version."""
    code = type_code_of(sentera_id)
    assert code is not None
    kind = KIND_BY_CODE[code]
    item_id = row(engine, sentera_id)["id"]
    iv = t.item_versions
    with engine.connect() as conn:
        rows = conn.execute(
            select(iv).where(iv.c.kind == kind.name, iv.c.item_id == item_id)
        ).mappings()
        return {r["content_hash"]: r for r in rows}


ALL_TABLES = [kind.table for kind in ALL_KINDS] + [
    t.memberships,
    t.mosaic_images,
    t.api_tokens,
    t.item_versions,
]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, to compare a database before and after a failed write."""
    with engine.connect() as conn:
        return {
            table.name: sorted((tuple(map(repr, r)) for r in conn.execute(select(table))), key=repr)
            for table in ALL_TABLES
        }


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in ALL_TABLES
        }


@dataclass
class World:
    """One of everything: ids of a small, complete world."""

    org: str
    user: str
    field: str
    survey: str
    image: str
    image2: str
    mosaic: str
    cog: str
    feature_set: str
    fs_file: str
    logo: str
    logo_file: str
    survey_file: str
    mosaic_file: str
    field_file: str
    field_feature_set: str
    task: str

    @classmethod
    def fresh(cls) -> World:
        return cls(
            org=sid("OR"),
            user=sid("US"),
            field=sid("AS"),
            survey=sid("CO"),
            image=sid("IM"),
            image2=sid("IM"),
            mosaic=sid("MO"),
            cog=sid("CG"),
            feature_set=sid("FS"),
            fs_file=sid("FI"),
            logo=sid("LO"),
            logo_file=sid("FI"),
            survey_file=sid("FI"),
            mosaic_file=sid("FI"),
            field_file=sid("FI"),
            field_feature_set=sid("FS"),
            task=sid("TA"),
        )

    def document(self) -> dict[str, Any]:
        """A changeset creating the whole world, attributed to the world's user."""
        return (
            Changeset(self.user)
            .add("organizations", organization_record(self.org, "Acme"))
            .add(
                "users",
                user_record(
                    self.user, "ada@acme.test", [self.org], first_name="Ada", last_name="Lovelace"
                ),
            )
            .add(
                "fields",
                field_record(self.field, self.org, name="North 40", latitude=45.3, longitude=-93.5),
            )
            .add(
                "surveys",
                survey_record(
                    self.survey,
                    self.field,
                    name="June flight",
                    start_time="2024-06-01T14:00:00Z",
                    end_time="2024-06-01T14:40:00Z",
                ),
            )
            .add(
                "images",
                image_record(self.image, self.survey, "IMG_0001.jpg"),
                image_record(self.image2, self.survey, "IMG_0002.jpg"),
            )
            .add(
                "mosaics",
                mosaic_record(
                    self.mosaic,
                    self.survey,
                    [self.image, self.image2],
                    name="Full RGB",
                    mosaic_type="RGB",
                    quality="FULL",
                    area={"value": 40.2, "unit": "ACRE"},
                ),
            )
            .add("cogs", cog_record(self.cog, self.mosaic, "SUCCESS", max_zoom=19))
            .add(
                "feature_sets",
                feature_set_record(
                    self.feature_set,
                    "SURVEY",
                    self.survey,
                    name="Stand count",
                    type="SV_PLANT_COUNT",
                ),
                feature_set_record(
                    self.field_feature_set,
                    "FIELD",
                    self.field,
                    name="Plot layout",
                    type="PLOT_LAYOUT",
                ),
            )
            .add("logos", logo_record(self.logo, self.org, name="Logo"))
            .add(
                "files",
                file_record(self.survey_file, "SURVEY", self.survey, "log.txt"),
                file_record(self.mosaic_file, "MOSAIC", self.mosaic, "ortho.tif"),
                file_record(self.fs_file, "FEATURE_SET", self.feature_set, "stand.geojson"),
                file_record(self.field_file, "FIELD", self.field, "boundary.shp"),
                file_record(self.logo_file, "LOGO", self.logo, "logo.png"),
            )
            .add(
                "flight_tasks",
                flight_task_record(
                    self.task,
                    self.org,
                    name="Scout",
                    field_sentera_id=self.field,
                    survey_sentera_id=self.survey,
                ),
            )
            .document()
        )

    @property
    def sync_items(self) -> list[str]:
        return [
            self.field,
            self.survey,
            self.image,
            self.image2,
            self.mosaic,
            self.cog,
            self.feature_set,
            self.field_feature_set,
            self.survey_file,
            self.mosaic_file,
            self.fs_file,
            self.field_file,
            self.logo_file,
            self.task,
        ]

    @property
    def all_items(self) -> list[str]:
        return [self.org, self.user, self.logo, *self.sync_items]


def image_record(
    sentera_id: str, survey: str, filename: str, *, located: bool = True, **extra: Any
) -> dict[str, Any]:
    """An image; at `LOCATION` unless `located=False` (then only the keys given)."""
    return {
        "sentera_id": sentera_id,
        "survey_sentera_id": survey,
        "filename": filename,
        **(LOCATION if located else {}),
        **extra,
    }


def file_record(
    sentera_id: str, owner_type: str, owner: str, filename: str, **extra: Any
) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "owner_type": owner_type,
        "owner_sentera_id": owner,
        "filename": filename,
        "file_type": "OTHER",
        **extra,
    }


def build_world(engine: Engine, *, now: datetime = T0) -> World:
    world = World.fresh()
    summary = apply_changeset(engine, world.document(), now=now)
    assert summary == ChangesetSummary(created=len(world.all_items))
    return world
