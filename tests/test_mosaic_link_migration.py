"""Migration 0003 recounts every live mosaic's image links under the organization rule, so a
database written before the rule stops showing images of another tenant through its mosaics."""

from __future__ import annotations

import json

from sqlalchemy import Engine, text, update

from fieldsync.hashing import canonical_json, digest
from fieldsync.storage import tables as t
from fieldsync.storage.migrate import schema_status, upgrade
from tests.worlds import build_world, representation, row, versions_of


def test_upgrading_past_0003_recounts_links_that_an_older_rule_counted(engine: Engine) -> None:
    world = build_world(engine)
    correct = representation(engine, world.mosaic)
    correct_hash = row(engine, world.mosaic)["content_hash"]
    # As an older FieldSync stored it: one more linked image (since moved to another tenant).
    stale = correct | {"images": {"total_count": correct["images"]["total_count"] + 1}}
    stale_json = canonical_json(stale)
    with engine.begin() as conn:
        conn.execute(
            update(t.mosaics)
            .where(t.mosaics.c.sentera_id == world.mosaic)
            .values(representation=stale_json, content_hash=digest(stale_json))
        )
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    assert not schema_status(engine).up_to_date
    versions_before = versions_of(engine, world.mosaic)

    assert upgrade(engine, "0003").current == "0003"

    recounted = representation(engine, world.mosaic)
    assert recounted["images"] == correct["images"]
    new_hash = row(engine, world.mosaic)["content_hash"]
    assert new_hash not in (digest(stale_json), correct_hash)  # a new version clients will see
    versions_after = versions_of(engine, world.mosaic)
    assert set(versions_after) - set(versions_before) == {new_hash}
    # Untouched: the image, whose representation never depended on the rule.
    assert json.loads(row(engine, world.image)["representation"])["sentera_id"] == world.image


def test_0003_leaves_mosaics_that_already_follow_the_rule_alone(engine: Engine) -> None:
    world = build_world(engine)
    before = row(engine, world.mosaic)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))

    upgrade(engine, "0003")

    after = row(engine, world.mosaic)
    assert (after["content_hash"], after["updated_at"]) == (
        before["content_hash"],
        before["updated_at"],
    )
