"""Which of a mosaic's image links count (its `images` in the API and in its content hash)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, select

from fieldsync.storage import tables as t
from fieldsync.storage.sql import chunks


def counted_links(*columns: Any) -> Select[Any]:
    """`columns` of the mosaic image links that count, over `mosaic_images` and `images`.

    A link counts while its image is live and belongs to the same organization as the mosaic.
    Any other link is kept but hidden: it counts again when the image (or the mosaic) comes
    back. Whoever reads a mosaic reads its organization, and so every image that counts; the
    representation is therefore the same for every caller and never shows another tenant's
    image.
    """
    mi, i, m = t.mosaic_images, t.images, t.mosaics
    image_survey, image_field = t.surveys.alias("image_survey"), t.fields.alias("image_field")
    mosaic_survey = t.surveys.alias("mosaic_survey")
    mosaic_field = t.fields.alias("mosaic_field")
    return (
        select(*columns)
        .select_from(mi)
        .join(i, i.c.id == mi.c.image_id)
        .join(image_survey, image_survey.c.id == i.c.survey_id)
        .join(image_field, image_field.c.id == image_survey.c.field_id)
        .join(m, m.c.id == mi.c.mosaic_id)
        .join(mosaic_survey, mosaic_survey.c.id == m.c.survey_id)
        .join(mosaic_field, mosaic_field.c.id == mosaic_survey.c.field_id)
        .where(
            i.c.deleted_at.is_(None),
            image_field.c.organization_id == mosaic_field.c.organization_id,
        )
    )


def counted_image_sentera_ids(conn: Connection, mosaic_ids: list[int]) -> dict[int, list[str]]:
    """The sentera_ids of each mosaic's counted images (`counted_links`), sorted."""
    mi, i = t.mosaic_images, t.images
    links: dict[int, list[str]] = {mosaic_id: [] for mosaic_id in mosaic_ids}
    for part in chunks(mosaic_ids):
        rows = conn.execute(
            counted_links(mi.c.mosaic_id, i.c.sentera_id).where(mi.c.mosaic_id.in_(part))
        )
        for row in rows:
            links[row.mosaic_id].append(row.sentera_id)
    for sentera_ids in links.values():
        sentera_ids.sort()
    return links
