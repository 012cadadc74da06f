"""Alembic migration scripts; `fieldsync.storage.migrate` runs them."""
