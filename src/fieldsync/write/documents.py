"""One changeset-shaped document planned and written as a whole, with uploaded bytes attached.

Used where FieldSync writes several related items at once: importing a mosaic (with the
caller's `WriteAccess`) and COG processing recording its progress (as the operator, for the
user who imported the mosaic).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from fieldsync.write.access import WriteAccess
from fieldsync.write.mutations import StoredBytes, give_bytes
from fieldsync.write.plan import Planner
from fieldsync.write.writer import write_plan


def write_document(
    conn: Connection,
    document: Mapping[str, Any],
    access: WriteAccess | None,
    now: datetime,
    stored: Mapping[str, StoredBytes] | None = None,
) -> None:
    """Plan `document` (raising ChangesetError with every issue) and write it.

    `stored` gives bytes to attach by the sentera_id of a record of the document.
    """
    plan = Planner(conn, dict(document), access).build()
    planned = {record.sentera_id: record for record in plan.records}
    for sentera_id, found in (stored or {}).items():
        give_bytes(planned[sentera_id], found)
    write_plan(conn, plan, now)
