"""Helpers for changeset tests: sentera_ids, a small complete world, and reading rows back."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
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
        return {
            "actor_sentera_id": self.user,
            "upsert": {
                "organizations": [{"sentera_id": self.org, "name": "Acme"}],
                "users": [
                    {
                        "sentera_id": self.user,
                        "email": "ada@acme.test",
                        "first_name": "Ada",
                        "last_name": "Lovelace",
                        "organization_sentera_ids": [self.org],
                    }
                ],
                "fields": [
                    {
                        "sentera_id": self.field,
                        "organization_sentera_id": self.org,
                        "name": "North 40",
                        "latitude": 45.3,
                        "longitude": -93.5,
                    }
                ],
                "surveys": [
                    {
                        "sentera_id": self.survey,
                        "field_sentera_id": self.field,
                        "name": "June flight",
                        "start_time": "2024-06-01T14:00:00Z",
                        "end_time": "2024-06-01T14:40:00Z",
                    }
                ],
                "images": [
                    image_record(self.image, self.survey, "IMG_0001.jpg"),
                    image_record(self.image2, self.survey, "IMG_0002.jpg"),
                ],
                "mosaics": [
                    {
                        "sentera_id": self.mosaic,
                        "survey_sentera_id": self.survey,
                        "name": "Full RGB",
                        "mosaic_type": "RGB",
                        "quality": "FULL",
                        "area": {"value": 40.2, "unit": "ACRE"},
                        "image_sentera_ids": [self.image, self.image2],
                    }
                ],
                "cogs": [
                    {
                        "sentera_id": self.cog,
                        "mosaic_sentera_id": self.mosaic,
                        "status": "SUCCESS",
                        "max_zoom": 19,
                    }
                ],
                "feature_sets": [
                    {
                        "sentera_id": self.feature_set,
                        "owner_type": "SURVEY",
                        "owner_sentera_id": self.survey,
                        "name": "Stand count",
                        "type": "SV_PLANT_COUNT",
                    },
                    {
                        "sentera_id": self.field_feature_set,
                        "owner_type": "FIELD",
                        "owner_sentera_id": self.field,
                        "name": "Plot layout",
                        "type": "PLOT_LAYOUT",
                    },
                ],
                "logos": [
                    {"sentera_id": self.logo, "organization_sentera_id": self.org, "name": "Logo"}
                ],
                "files": [
                    file_record(self.survey_file, "SURVEY", self.survey, "log.txt"),
                    file_record(self.mosaic_file, "MOSAIC", self.mosaic, "ortho.tif"),
                    file_record(self.fs_file, "FEATURE_SET", self.feature_set, "stand.geojson"),
                    file_record(self.field_file, "FIELD", self.field, "boundary.shp"),
                    file_record(self.logo_file, "LOGO", self.logo, "logo.png"),
                ],
                "flight_tasks": [
                    {
                        "sentera_id": self.task,
                        "organization_sentera_id": self.org,
                        "status": "OPEN",
                        "name": "Scout",
                        "field_sentera_id": self.field,
                        "survey_sentera_id": self.survey,
                    }
                ],
            },
        }

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


def image_record(sentera_id: str, survey: str, filename: str, **extra: Any) -> dict[str, Any]:
    return {
        "sentera_id": sentera_id,
        "survey_sentera_id": survey,
        "filename": filename,
        "latitude": 45.328761,
        "longitude": -93.521094,
        "altitude": 120.5,
        "captured_at": "2024-06-01T14:03:11Z",
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
