"""a sync table's revision changes once per writing transaction on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

0006's statement trigger changed the table's revision with every statement, and a bulk load
runs one statement per row batch or per row (psycopg's executemany): 100,000 updates of one
`sync_revisions` row in a load of 100,000 images, 4 MB of dead row versions in an eight-row
table, which every snapshot then scanned at its BEGIN (0.6 ms a request until vacuumed). Now
the first statement of a transaction that writes the table changes the revision and notes so
in a transaction-local setting; the later ones leave it. A transaction still commits a new
revision for every table it wrote, and a savepoint rolled back takes its change and its note
with it. SQLite updates the row in place, so its row triggers stay as they are.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_FUNCTION = "fs_change_sync_revision"
# A bigint of 62 random bits (random() is a double in [0, 1)), as in 0006.
_NEW_REVISION = "(random() * 4611686018427387903)::bigint"
_CHANGED = "'fieldsync.sync_revision_changed_' || TG_TABLE_NAME"
_CHANGE = f"UPDATE sync_revisions SET revision = {_NEW_REVISION} WHERE table_name = TG_TABLE_NAME;"


def _replace_function(body: str) -> None:
    """The trigger function of 0006 with `body`, on PostgreSQL (SQLite has none)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body} RETURN NULL; END $$"
    )


def upgrade() -> None:
    _replace_function(
        f"IF current_setting({_CHANGED}, true) IS DISTINCT FROM 'on' THEN {_CHANGE} "
        f"PERFORM set_config({_CHANGED}, 'on', true); END IF;"
    )


def downgrade() -> None:
    _replace_function(_CHANGE)
