"""Resolvers: how each GraphQL field that is not a plain value of its object is computed.

Sync items travel as their stored representation (a dict shaped like the GraphQL object), so
most fields need no resolver. References (`created_by`, `mosaic`, `survey`, …) hold just a
sentera_id; they are expanded through the request's batching loader only when the query asks
for more than the id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import cache, cached_property
from typing import Any

from graphql import FieldNode
from graphql import GraphQLResolveInfo as _ResolveInfo

from fieldsync.api.context import RequestContext, organization_object
from fieldsync.errors import InvalidArgumentError
from fieldsync.ids import TypeCode, type_code_of
from fieldsync.model import kinds as k
from fieldsync.model.kinds import OWNER_CODES, EntityKind
from fieldsync.model.representation import action_of, iso
from fieldsync.storage import listings
from fieldsync.storage import tables as t
from fieldsync.storage.listings import Listing
from fieldsync.storage.logos import live_logos
from fieldsync.storage.memberships import members
from fieldsync.sync import service
from fieldsync.sync.engine import SyncPage, load_representations
from fieldsync.sync.scopes import readable_object

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100  # PaginationInput.page_size
GraphQLResolveInfo = _ResolveInfo[RequestContext]
Resolver = Callable[..., Any]


def _context(info: GraphQLResolveInfo) -> RequestContext:
    context: RequestContext = info.context
    return context


# -- references ----------------------------------------------------------------------------


IDENTITY_FIELDS = frozenset({"sentera_id", "__typename"})


def selected_names(field_nodes: Sequence[FieldNode]) -> frozenset[str] | None:
    """The names a field's selection asks for (None: it has fragments, or no selection)."""
    names: set[str] = set()
    for node in field_nodes:
        if node.selection_set is None:
            return None
        for selection in node.selection_set.selections:
            if not isinstance(selection, FieldNode):
                return None
            names.add(selection.name.value)
    return frozenset(names)


def selects_identity_only(field_nodes: Sequence[FieldNode]) -> bool:
    """Whether a reference field asks for nothing but `sentera_id` (and `__typename`)."""
    names = selected_names(field_nodes)
    return names is not None and names <= IDENTITY_FIELDS


def _asks_identity_only(info: GraphQLResolveInfo) -> bool:
    context = _context(info)
    key = id(info.field_nodes[0])
    if key not in context.identity_only:
        context.identity_only[key] = selects_identity_only(info.field_nodes)
    return context.identity_only[key]


def resolve_reference(source: Any, info: GraphQLResolveInfo) -> Any:
    """A referenced object: its id from the representation, the rest only if readable.

    Asked for its id only (`selects_identity_only`), it is the source's value as stored.

    A reference may cross tenants (a flight task pointing at another organization's field, an
    item created by another tenant's user); its id is part of the referring item, but its own
    values are shown only to its readers.
    """
    value = source.get(info.field_name) if isinstance(source, dict) else None
    if value is None or len(value) > 1 or _asks_identity_only(info):
        return value
    context, sentera_id = _context(info), value["sentera_id"]
    if type_code_of(sentera_id) is TypeCode.USER and not context.may_read(sentera_id):
        # `created_by` cannot be null: a user the caller may not see shows its id only.
        return {"__typename": "User", "sentera_id": sentera_id}
    return _load_readable(context, sentera_id)


def _load_readable(
    context: RequestContext, sentera_id: str, code: TypeCode | None = None
) -> dict[str, Any] | None:
    """The object behind an id if the caller may read it (and it is of type `code`)."""
    if code is not None and type_code_of(sentera_id) is not code:
        return None
    if not context.may_read(sentera_id):
        return None
    return context.loader.load(sentera_id)


def resolve_parent_organization(source: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    parent = source.get("parent_organization_id")
    return None if parent is None else _load_readable(_context(info), parent)


# -- sync queries --------------------------------------------------------------------------


def _sync_result(context: RequestContext, page: SyncPage) -> dict[str, Any]:
    context.prime_references(page.upserted)
    context.prime_references(page.deleted)
    return {
        "upserted": page.upserted,
        "deleted": page.deleted,
        "remaining_count": page.remaining_count,
        "failed": [asdict(error) for error in page.failed] or None,
    }


def _by_survey(kind: EntityKind) -> Resolver:
    def resolve(
        _source: Any, info: GraphQLResolveInfo, survey_sentera_id: str, content_hashes: list[str]
    ) -> dict[str, Any]:
        context = _context(info)
        page = service.sync_by_survey(
            context.conn, context.readable, kind, survey_sentera_id, content_hashes
        )
        return _sync_result(context, page)

    return resolve


def _by_organization(kind: EntityKind) -> Resolver:
    def resolve(
        _source: Any,
        info: GraphQLResolveInfo,
        organization_sentera_id: str,
        content_hashes: list[str],
        include_descendant_organizations: bool | None = False,
    ) -> dict[str, Any]:
        context = _context(info)
        page = service.sync_by_organization(
            context.conn,
            context.readable,
            kind,
            organization_sentera_id,
            bool(include_descendant_organizations),
            content_hashes,
        )
        return _sync_result(context, page)

    return resolve


def _by_owners(kind: EntityKind) -> Resolver:
    """sync_files and sync_feature_sets."""

    def resolve(
        _source: Any,
        info: GraphQLResolveInfo,
        owners: list[dict[str, str]],
        content_hashes: list[str],
    ) -> dict[str, Any]:
        context = _context(info)
        pairs = [(owner["owner_type"], owner["sentera_id"]) for owner in owners]
        page = service.sync_by_owners(context.conn, context.readable, kind, pairs, content_hashes)
        return _sync_result(context, page)

    return resolve


def resolve_sync_surveys(
    _source: Any, info: GraphQLResolveInfo, field_sentera_id: str, content_hashes: list[str]
) -> dict[str, Any]:
    context = _context(info)
    page = service.sync_surveys(context.conn, context.readable, field_sentera_id, content_hashes)
    return _sync_result(context, page)


# -- lookups -------------------------------------------------------------------------------


def resolve_me(_source: Any, info: GraphQLResolveInfo) -> Any:
    context = _context(info)
    return context.loader.load(context.viewer.sentera_id)


def _lookup(code: TypeCode) -> Resolver:
    def resolve(_source: Any, info: GraphQLResolveInfo, sentera_id: str) -> Any:
        return _load_readable(_context(info), sentera_id, code)

    return resolve


# -- collections ---------------------------------------------------------------------------


def _pagination(pagination: Mapping[str, int | None] | None) -> tuple[int, int]:
    """Page and page size, each checked; left out (or null) means the schema's default."""
    values = pagination or {}
    page = values.get("page")
    page_size = values.get("page_size")
    page = 1 if page is None else page
    page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if page < 1:
        raise InvalidArgumentError(
            f"pagination.page must be 1 or more (pages start at 1), not {page}"
        )
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            f"pagination.page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}"
        )
    return page, page_size


class Collection:
    """One page of a list: `{page, page_size, present, results, total_count}`, each computed
    only when asked (a sync page asking `images { total_count }` of 2,000 mosaics reads the
    count from their representations and runs no query). `listing` says which rows the list
    shows; it is called at the first value that needs it (finding a parent costs a query)."""

    def __init__(
        self,
        context: RequestContext,
        kind: EntityKind | None,
        listing: Callable[[], Listing],
        pagination: dict[str, int] | None,
        *,
        known_total: int | None = None,
    ) -> None:
        self.page, self.page_size = _pagination(pagination)
        self._context = context
        self._kind = kind
        self._listing = listing
        self._known_total = known_total

    @cached_property
    def listing(self) -> Listing:
        return self._listing()

    @cached_property
    def total_count(self) -> int:
        if self._known_total is not None:
            return self._known_total
        return listings.count(self._context.conn, self.listing)

    @cached_property
    def results(self) -> list[dict[str, Any]]:
        conn, offset = self._context.conn, (self.page - 1) * self.page_size
        if self._kind is None:
            rows = listings.organization_page(conn, self.listing, self.page_size, offset)
            return [organization_object(row) for row in rows]
        ids = listings.page_ids(conn, self.listing, self.page_size, offset)
        records = load_representations(conn, self._kind, ids)
        page = [records[item_id] for item_id in ids]
        self._context.prime_references(page)
        return page

    @property
    def present(self) -> int:
        return len(self.results)


def _parent_id(context: RequestContext, code: TypeCode, sentera_id: str) -> int | None:
    """The internal id of a live parent the caller may read, else None (lists nothing).

    A parent can be a deleted entry, or an item that moved to another tenant: its children
    are then not the caller's to see.
    """
    found = readable_object(context.conn, context.readable, code, sentera_id)
    return None if found is None else found.id


def _children(kind: EntityKind, parent: TypeCode, column: str) -> Resolver:
    def resolve(
        source: dict[str, Any], info: GraphQLResolveInfo, pagination: dict[str, int] | None = None
    ) -> Collection:
        context = _context(info)

        def listing() -> Listing:
            parent_id = _parent_id(context, parent, source["sentera_id"])
            return listings.children(kind.table, column, parent_id)

        return Collection(context, kind, listing, pagination)

    return resolve


def _child_list(kind: EntityKind, parent: TypeCode, column: str) -> Resolver:
    collection = _children(kind, parent, column)

    def resolve(source: dict[str, Any], info: GraphQLResolveInfo) -> list[dict[str, Any]]:
        page: Collection = collection(source, info, {"page": 1, "page_size": MAX_PAGE_SIZE})
        return page.results

    return resolve


def _owned(kind: EntityKind, owner_type: str) -> Resolver:
    """The live items of `kind` (files or feature sets) of a readable owner, oldest first."""

    def resolve(source: dict[str, Any], info: GraphQLResolveInfo) -> list[dict[str, Any]]:
        context = _context(info)

        def listing() -> Listing:
            owner_id = _parent_id(context, OWNER_CODES[owner_type], source["sentera_id"])
            return listings.owned(kind.table, owner_type, owner_id)

        everything = {"page": 1, "page_size": MAX_PAGE_SIZE}
        return Collection(context, kind, listing, everything).results

    return resolve


def _owned_files(owner_type: str) -> Resolver:
    return _owned(k.FILE, owner_type)


def _owned_feature_sets(owner_type: str) -> Resolver:
    return _owned(k.FEATURE_SET, owner_type)


def resolve_mosaic_images(
    source: dict[str, Any], info: GraphQLResolveInfo, pagination: dict[str, int] | None = None
) -> Collection:
    """The mosaic's counted images: live, and in the mosaic's organization (`counted_links`)."""
    context = _context(info)

    def listing() -> Listing:
        return listings.counted_images(_parent_id(context, TypeCode.MOSAIC, source["sentera_id"]))

    known = (source.get("images") or {}).get("total_count")
    return Collection(context, k.IMAGE, listing, pagination, known_total=known)


def resolve_organizations(
    _source: Any, info: GraphQLResolveInfo, pagination: dict[str, int] | None = None
) -> Collection:
    context = _context(info)
    return Collection(
        context, None, lambda: listings.live_organizations(context.readable), pagination
    )


def resolve_organization_children(source: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    def listing() -> Listing:
        return listings.children(t.organizations, "parent_id", source["_id"])

    page = Collection(_context(info), None, listing, {"page": 1, "page_size": MAX_PAGE_SIZE})
    return page.results


def resolve_organization_fields(
    source: dict[str, Any], info: GraphQLResolveInfo, pagination: dict[str, int] | None = None
) -> Collection:
    def listing() -> Listing:
        return listings.children(t.fields, "organization_id", source["_id"])

    return Collection(_context(info), k.FIELD, listing, pagination)


def resolve_action(source: dict[str, Any], _info: GraphQLResolveInfo) -> str:
    return action_of(source)


def resolve_organization_memberships(
    source: dict[str, Any], info: GraphQLResolveInfo
) -> list[dict[str, Any]]:
    """The members of a readable organization itself, with their roles."""
    context = _context(info)
    if _parent_id(context, TypeCode.ORGANIZATION, source["sentera_id"]) is None:
        return []
    organization = {"sentera_id": source["sentera_id"]}
    return [
        {"user": {"sentera_id": user}, "organization": organization, "role": role}
        for user, role in members(context.conn, source["_id"])
    ]


def resolve_organization_logos(
    source: dict[str, Any], info: GraphQLResolveInfo
) -> list[dict[str, Any]]:
    """The live logos of a readable organization (logos are not sync items)."""
    context = _context(info)
    if _parent_id(context, TypeCode.ORGANIZATION, source["sentera_id"]) is None:
        return []
    organization = {"sentera_id": source["sentera_id"]}
    return [
        {
            "__typename": "Logo",
            "sentera_id": logo.sentera_id,
            "name": logo.name,
            "organization": organization,
            "created_at": iso(logo.created_at),
            "updated_at": iso(logo.updated_at),
        }
        for logo in live_logos(context.conn, source["_id"])
    ]


REFERENCE_FIELDS = {
    "Image": ("survey",),
    "Mosaic": ("survey",),
    "Cog": ("mosaic", "survey"),
    "Survey": ("field",),
    "Field": ("organization",),
    "FlightTask": ("organization", "field", "survey"),
}

# -- values read from the source alone (the fast execution path) -------------------------------

RUN_RESOLVER = object()
"""A source reader's answer when the value cannot be read from the source: run the resolver."""
SourceReader = Callable[[dict[str, Any]], Any]


@cache
def _reference_reader(field_name: str, selected: frozenset[str] | None) -> SourceReader | None:
    if selected is None or not selected <= IDENTITY_FIELDS:
        return None
    return lambda source: source.get(field_name)


def _action_reader(_field_name: str, _selected: frozenset[str] | None) -> SourceReader:
    return action_of


@cache
def _image_count_reader(_field_name: str, selected: frozenset[str] | None) -> SourceReader | None:
    """`images { total_count }` of a mosaic: the count its representation holds."""
    if selected is None or not selected <= {"total_count", "__typename"}:
        return None

    def read(source: dict[str, Any]) -> Any:
        known = (source.get("images") or {}).get("total_count")
        return RUN_RESOLVER if known is None else {"total_count": known}

    return read


SOURCE_READERS: dict[Resolver, Callable[[str, frozenset[str] | None], SourceReader | None]] = {
    resolve_action: _action_reader,
    resolve_reference: _reference_reader,
    resolve_mosaic_images: _image_count_reader,
}
"""Resolvers whose value, for some selections and without arguments, is read from the source
dict alone. Given the field's name and the names its selection asks for, each gives the
function of the source that reads the value the resolver would return (or RUN_RESOLVER), or
None when the selection needs the resolver."""

RESOLVERS: dict[str, dict[str, Resolver]] = {
    "Query": {
        "me": resolve_me,
        "organizations": resolve_organizations,
        "organization": _lookup(TypeCode.ORGANIZATION),
        "field": _lookup(TypeCode.FIELD),
        "survey": _lookup(TypeCode.SURVEY),
        "feature_set": _lookup(TypeCode.FEATURE_SET),
        "sync_cogs": _by_survey(k.COG),
        "sync_mosaics": _by_survey(k.MOSAIC),
        "sync_images": _by_survey(k.IMAGE),
        "sync_files": _by_owners(k.FILE),
        "sync_feature_sets": _by_owners(k.FEATURE_SET),
        "sync_flight_tasks": _by_organization(k.FLIGHT_TASK),
        "sync_fields": _by_organization(k.FIELD),
        "sync_surveys": resolve_sync_surveys,
    },
    "Organization": {
        "parent": resolve_parent_organization,
        "children": resolve_organization_children,
        "memberships": resolve_organization_memberships,
        "fields": resolve_organization_fields,
        "feature_sets": _owned_feature_sets("ORGANIZATION"),
        "logos": resolve_organization_logos,
    },
    "Field": {
        "surveys": _children(k.SURVEY, TypeCode.FIELD, "field_id"),
        "files": _owned_files("FIELD"),
        "feature_sets": _owned_feature_sets("FIELD"),
    },
    "Survey": {
        "images": _children(k.IMAGE, TypeCode.SURVEY, "survey_id"),
        "mosaics": _children(k.MOSAIC, TypeCode.SURVEY, "survey_id"),
        "files": _owned_files("SURVEY"),
        "feature_sets": _owned_feature_sets("SURVEY"),
    },
    "Mosaic": {
        "images": resolve_mosaic_images,
        "cogs": _child_list(k.COG, TypeCode.MOSAIC, "mosaic_id"),
        "files": _owned_files("MOSAIC"),
    },
    "FeatureSet": {"files": _owned_files("FEATURE_SET")},
    "Logo": {"organization": resolve_reference, "files": _owned_files("LOGO")},
}
