"""sync table revisions, kept by triggers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

`sync_revisions` holds one value per sync table, changed by a trigger in the transaction of
every statement that inserts, updates or deletes rows of the table (PostgreSQL: also TRUNCATE).
A reader that sees the same value in a later snapshot knows the table is as it was, and may
reuse what it read from it (`fieldsync.sync.live_scans`). The value is random, not a counter:
it never repeats, not even for a database made again under the same name.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SYNC_TABLES = (
    "fields",
    "surveys",
    "images",
    "mosaics",
    "cogs",
    "feature_sets",
    "files",
    "flight_tasks",
)
_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")
_SQLITE_NEW_REVISION = "random()"
# A bigint of 62 random bits (random() is a double in [0, 1)).
_POSTGRESQL_NEW_REVISION = "(random() * 4611686018427387903)::bigint"
_POSTGRESQL_FUNCTION = "fs_change_sync_revision"


def _sqlite_trigger(table: str, event: str) -> str:
    return f"fs_{table}_{event.lower()}_sync_revision"


def _postgresql_trigger(table: str) -> str:
    return f"fs_{table}_sync_revision"


def upgrade() -> None:
    op.create_table(
        "sync_revisions",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_sync_revisions")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    new_revision = _POSTGRESQL_NEW_REVISION if postgresql else _SQLITE_NEW_REVISION
    for table in SYNC_TABLES:
        op.execute(
            f"INSERT INTO sync_revisions (table_name, revision) VALUES ('{table}', {new_revision})"
        )
    if postgresql:
        _create_postgresql_triggers()
    else:
        _create_sqlite_triggers()


def _create_sqlite_triggers() -> None:
    """Row triggers (SQLite has no others): each changes the value once per written row."""
    for table in SYNC_TABLES:
        for event in _SQLITE_EVENTS:
            op.execute(
                f"CREATE TRIGGER {_sqlite_trigger(table, event)} AFTER {event} ON {table} "
                f"BEGIN UPDATE sync_revisions SET revision = {_SQLITE_NEW_REVISION} "
                f"WHERE table_name = '{table}'; END"
            )


def _create_postgresql_triggers() -> None:
    """Statement triggers: a COPY of 100,000 rows changes the value once."""
    op.execute(
        f"CREATE FUNCTION {_POSTGRESQL_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN UPDATE sync_revisions SET revision = {_POSTGRESQL_NEW_REVISION} "
        "WHERE table_name = TG_TABLE_NAME; RETURN NULL; END $$"
    )
    for table in SYNC_TABLES:
        op.execute(
            f"CREATE TRIGGER {_postgresql_trigger(table)} "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_POSTGRESQL_FUNCTION}()"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in SYNC_TABLES:
        if postgresql:
            op.execute(f"DROP TRIGGER {_postgresql_trigger(table)} ON {table}")
        else:
            for event in _SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER {_sqlite_trigger(table, event)}")
    if postgresql:
        op.execute(f"DROP FUNCTION {_POSTGRESQL_FUNCTION}()")
    op.drop_table("sync_revisions")
