"""The sync queries as plain functions: arguments in, one `SyncPage` out.

This is what the GraphQL resolvers call; it needs only a connection in a read snapshot and
the caller's readable organizations.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from fieldsync.hashing import parse_client_hashes
from fieldsync.ids import TypeCode
from fieldsync.model import kinds as k
from fieldsync.model.kinds import EntityKind
from fieldsync.sync.engine import Scope, SyncError, SyncPage, compute_page, invalid_hash_errors
from fieldsync.sync.scopes import organization_scope, owners_scope, parent_scope


def _page(
    conn: Connection, scope: Scope, content_hashes: Sequence[str], failed: list[SyncError]
) -> SyncPage:
    client = parse_client_hashes(content_hashes)
    page = compute_page(conn, scope, client)
    page.failed = failed + invalid_hash_errors(client.malformed)
    return page


def sync_by_survey(
    conn: Connection,
    readable: set[int],
    kind: EntityKind,
    survey_sentera_id: str,
    content_hashes: Sequence[str],
) -> SyncPage:
    """sync_cogs, sync_mosaics and sync_images."""
    scope = parent_scope(conn, readable, kind, TypeCode.SURVEY, survey_sentera_id)
    return _page(conn, scope, content_hashes, [])


def sync_by_organization(
    conn: Connection,
    readable: set[int],
    kind: EntityKind,
    organization_sentera_id: str,
    include_descendants: bool,
    content_hashes: Sequence[str],
) -> SyncPage:
    """sync_flight_tasks and sync_fields."""
    scope = organization_scope(conn, readable, kind, organization_sentera_id, include_descendants)
    return _page(conn, scope, content_hashes, [])


def sync_surveys(
    conn: Connection, readable: set[int], field_sentera_id: str, content_hashes: Sequence[str]
) -> SyncPage:
    scope = parent_scope(conn, readable, k.SURVEY, TypeCode.FIELD, field_sentera_id)
    return _page(conn, scope, content_hashes, [])


def sync_by_owners(
    conn: Connection,
    readable: set[int],
    kind: EntityKind,
    owners: Sequence[tuple[str, str]],
    content_hashes: Sequence[str],
) -> SyncPage:
    """sync_files and sync_feature_sets: `owners` are (owner type, sentera_id) pairs."""
    scope, failed = owners_scope(conn, readable, kind, owners)
    return _page(conn, scope, content_hashes, failed)
