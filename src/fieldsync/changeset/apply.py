"""Applying one changeset file: parse, validate as a whole, write in one transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from fieldsync.storage.database import write_transaction
from fieldsync.storage.item_writes import refresh_statistics
from fieldsync.write.plan import ChangesetError, ChangesetIssue, Planner
from fieldsync.write.writer import WriteSummary, write_plan

__all__ = [
    "ChangesetError",
    "ChangesetIssue",
    "ChangesetSummary",
    "apply_changeset",
    "parse_changeset",
]

ChangesetSummary = WriteSummary
# Changesets writing at least this many items refresh planner statistics (PostgreSQL).
ANALYZE_AFTER_ROWS = 10_000


def parse_changeset(text: str | bytes) -> Any:
    """Parse changeset JSON, turning a syntax error into a ChangesetError with its position."""
    if not text or text.isspace():  # scans without copying a large file
        raise ChangesetError(
            [ChangesetIssue("", "the changeset is empty: write a JSON object, e.g. {}")]
        )
    try:
        return json.loads(text)
    except RecursionError:
        raise ChangesetError(
            [ChangesetIssue("", "not valid JSON for a changeset: nested too deeply")]
        ) from None
    except json.JSONDecodeError as exc:
        raise ChangesetError(
            [
                ChangesetIssue(
                    "", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                )
            ]
        ) from None
    except UnicodeDecodeError:
        raise ChangesetError(
            [ChangesetIssue("", "not valid JSON: the file is not UTF-8")]
        ) from None


def apply_changeset(
    engine: Engine, document: Any, *, now: datetime | None = None
) -> ChangesetSummary:
    """Validate and apply one changeset, all or nothing. Raises ChangesetError on any problem."""
    with write_transaction(engine) as conn:
        plan = Planner(conn, document).build()
        summary = write_plan(conn, plan, now or datetime.now(UTC))
    if summary.created + summary.updated + summary.deleted >= ANALYZE_AFTER_ROWS:
        refresh_statistics(engine, {record.kind.table for record in plan.records})
    return summary
