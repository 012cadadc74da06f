"""The fast execution path answers exactly like graphql-core's standard execution.

Documents are generated over the whole `Query` type by hypothesis-graphql, then rewritten with
this module's strategies so they also carry aliases (two aliases of one field with different
arguments among them), named and inline fragments (on the `SyncItem` interface and on concrete
types inside `deleted`/`upserted`, matching or not), `__typename` at several levels,
`@skip`/`@include` with literals and variables, variables for arguments (with and without
defaults), and arguments that name the world's real ids and hold its real, stale and malformed
content hashes. Every document runs through `GraphQLExecutor(fast_path=True)` and
`GraphQLExecutor(fast_path=False)` over the same database with the same token; the status, the
headers and the body (`data` and `errors`, key order and list order included) must be the same.

The world (`build_world`) has every synced kind in two tenants, items deleted and moved (so
`deleted` entries exist, some moved to the other tenant), references across tenants, nullable
values left null, and items created by a user the reader may not see. A stored representation
cannot make a non-null field null (every non-null field of a representation comes from a
NOT NULL column or an inner join, and enums are checked on write), so the non-null cases are
the resolvers' own: an argument error under a non-null field, by hand below.

`FIELDSYNC_DIFFERENTIAL_EXAMPLES` sets the number of generated documents per database
(docs/testing.md).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis_graphql
import pytest
from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLCompositeType,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    ast_from_value,
    get_named_type,
    parse_type,
    print_ast,
    value_from_ast_untyped,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest, GraphQLResponse
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.hashing import encode_hash
from fieldsync.ids import type_code_of
from fieldsync.model.kinds import ALL_KINDS
from fieldsync.storage import tables as t
from fieldsync.tokens import create_token
from tests.builder import (
    Changeset,
    cog_record,
    feature_set_record,
    field_record,
    file_record,
    flight_task_record,
    image_record,
    logo_record,
    mosaic_record,
    organization_record,
    sid,
    survey_record,
    user_record,
)

EXAMPLES = int(os.environ.get("FIELDSYNC_DIFFERENTIAL_EXAMPLES", "200"))
SCHEMA: GraphQLSchema = build_fieldsync_schema()
SYNC_ITEM = SCHEMA.get_type("SyncItem")
assert isinstance(SYNC_ITEM, GraphQLInterfaceType)

# The GraphQL type of the items each sync query returns, and its id type code.
SYNC_TYPES = {
    "sync_cogs": "Cog",
    "sync_mosaics": "Mosaic",
    "sync_images": "Image",
    "sync_files": "File",
    "sync_feature_sets": "FeatureSet",
    "sync_flight_tasks": "FlightTask",
    "sync_fields": "Field",
    "sync_surveys": "Survey",
}
# The type code of the id each id argument names (by argument, or by field for `sentera_id`).
ID_CODES = {
    "survey_sentera_id": "CO",
    "field_sentera_id": "AS",
    "organization_sentera_id": "OR",
    "organization": "OR",
    "field": "AS",
    "survey": "CO",
    "feature_set": "FS",
}
OWNER_CODES = {
    "SURVEY": "CO",
    "MOSAIC": "MO",
    "FIELD": "AS",
    "FEATURE_SET": "FS",
    "LOGO": "LO",
    "ORGANIZATION": "OR",
}
IDENTITY = ("sentera_id", "content_hash")
MALFORMED_HASHES = ("short", "not-a-hash!!!!!!", "AAAAAAAAAAAAAAA=", "")
NEVER_ISSUED = "AAAAAAAAAAAAAAAA"


# -- the world -----------------------------------------------------------------------------


@dataclass
class DiffWorld:
    """Ids and hashes of the world both paths answer over."""

    readers: list[str]
    """Users whose tokens the documents run with: a root member and a child member."""
    primary: dict[str, str]
    """Type code -> the scope (or owner) of that type where items were deleted and moved."""
    ids: dict[str, list[str]] = field(default_factory=dict)
    """Every sentera_id of the world (live, deleted, moved, the other tenant's), by type code."""
    current: dict[str, list[str]] = field(default_factory=dict)
    """GraphQL type -> the current hashes of its items (live and deleted)."""
    stale: dict[str, list[str]] = field(default_factory=dict)
    """GraphQL type -> hashes of older versions (before an update or a move)."""
    unknown: list[str] = field(default_factory=lambda: [sid(c) for c in ("OR", "CO", "AS")])
    """Well-formed ids that name nothing."""

    def all_ids(self) -> list[str]:
        return sorted(i for ids in self.ids.values() for i in ids)

    def all_hashes(self) -> list[str]:
        found = itertools.chain(*self.current.values(), *self.stale.values())
        return sorted(set(found))


def _user(sentera_id: str, email: str, org: str, **names: Any) -> dict[str, Any]:
    return user_record(sentera_id, email, [org], **names)


def build_world(engine: Engine) -> DiffWorld:
    """Two tenants (A with a child A1, and B) with one or more of every synced kind, then
    updates, moves (within A and to B) and deletions, so stale hashes and tombstones exist."""
    a, a1, b, gone = sid("OR"), sid("OR"), sid("OR"), sid("OR")
    ua, ua1, ub = sid("US"), sid("US"), sid("US")
    fa, fa_bare, fa1, fb, f_moving, f_doomed = (sid("AS") for _ in range(6))
    sa, sa_bare, sa1, sb, s_doomed = (sid("CO") for _ in range(5))
    ia, ia2, ia_bare, i_moving, i_leaving, i_doomed, ia1, ib, i_by_b = (sid("IM") for _ in range(9))
    ma, ma_bare, m_doomed, m_moving, mb = (sid("MO") for _ in range(5))
    ca, ca_bare, c_doomed, c_moving, cb = (sid("CG") for _ in range(5))
    fs_survey, fs_field, fs_org, fs_doomed, fs_b = (sid("FS") for _ in range(5))
    logo_a, logo_b = sid("LO"), sid("LO")
    files = {name: sid("FI") for name in ("SURVEY", "MOSAIC", "FIELD", "FEATURE_SET", "LOGO")}
    fi_bare, fi_doomed, fi_moving, fi_b = (sid("FI") for _ in range(4))
    ta, ta_cross, ta_bare, t_doomed, ta1, tb = (sid("TA") for _ in range(6))

    created = (
        Changeset(ua)
        .add(
            "organizations",
            organization_record(a, "Alpha"),
            organization_record(a1, "Alpha child", parent_sentera_id=a),
            organization_record(gone, "Gone", parent_sentera_id=a),
            organization_record(b, "Bravo"),
        )
        .add(
            "users",
            _user(ua, "ada@alpha.test", a, first_name="Ada", last_name="Lovelace"),
            _user(ua1, "child@alpha.test", a1, last_name="Achebe"),
            _user(ub, "bo@bravo.test", b),
        )
        .add(
            "fields",
            field_record(fa, a, name="North 40", latitude=45.3, longitude=-93.5),
            field_record(fa_bare, a, name="Bare"),
            field_record(fa1, a1, name="Child field", latitude=1.5, longitude=2.5),
            field_record(fb, b, name="Bravo field"),
            field_record(f_moving, a, name="Sold"),
            field_record(f_doomed, a, name="Flooded"),
        )
        .add(
            "surveys",
            survey_record(
                sa,
                fa,
                name="June flight",
                start_time="2024-06-01T14:00:00Z",
                end_time="2024-06-01T14:40:00Z",
                notes="windy",
            ),
            survey_record(sa_bare, fa),
            survey_record(sa1, fa1, name="Child survey"),
            survey_record(sb, fb, name="Bravo survey"),
            survey_record(s_doomed, fa, name="Cancelled"),
        )
        .add(
            "images",
            image_record(ia, sa, "IMG_0001.jpg", size=123456789012),
            image_record(ia2, sa, "IMG_0002.jpg"),
            image_record(ia_bare, sa, "IMG_bare.jpg", located=False),
            image_record(i_moving, sa, "IMG_moving.jpg"),
            image_record(i_leaving, sa, "IMG_leaving.jpg"),
            image_record(i_doomed, sa, "IMG_doomed.jpg"),
            image_record(ia1, sa1, "IMG_child.jpg"),
            image_record(ib, sb, "IMG_bravo.jpg"),
        )
        .add(
            "mosaics",
            mosaic_record(
                ma,
                sa,
                [ia, ia2, i_leaving],
                name="Full RGB",
                mosaic_type="RGB",
                quality="FULL",
                area={"value": 40.2, "unit": "ACRE"},
                message="ok",
                released=True,
            ),
            mosaic_record(ma_bare, sa, mosaic_type="NDVI", quality="PREVIEW"),
            mosaic_record(m_doomed, sa, [ia], mosaic_type="RGB", quality="FULL"),
            mosaic_record(m_moving, sa, mosaic_type="THERMAL", quality="FULL", name="Moving"),
            mosaic_record(mb, sb, [ib], mosaic_type="RGB", quality="FULL", name="Bravo"),
        )
        .add(
            "cogs",
            cog_record(ca, ma, "SUCCESS", max_zoom=19, clipped=True),
            cog_record(ca_bare, ma_bare, "PENDING"),
            cog_record(c_doomed, m_doomed, "FAIL", error="broken"),
            cog_record(c_moving, m_moving, "PROCESSING"),
            cog_record(cb, mb, "SUCCESS"),
        )
        .add(
            "feature_sets",
            feature_set_record(fs_survey, "SURVEY", sa, name="Stand count", type="SV_PLANT_COUNT"),
            feature_set_record(fs_field, "FIELD", fa, name="Plot layout", type="PLOT_LAYOUT"),
            feature_set_record(fs_org, "ORGANIZATION", a, name="Org log", type="FLIGHT_LOG"),
            feature_set_record(fs_doomed, "SURVEY", sa, name="Weeds", type="WEEDS_GROUND_TRUTH"),
            feature_set_record(fs_b, "SURVEY", sb, name="Bravo count", type="TASSEL_COUNT"),
        )
        .add("logos", logo_record(logo_a, a, name="Alpha logo"), logo_record(logo_b, b))
        .add(
            "files",
            file_record(files["SURVEY"], "SURVEY", sa, "log.txt", path="logs/log.txt", size=7),
            file_record(files["MOSAIC"], "MOSAIC", ma, "ortho.tif", version=2),
            file_record(files["FIELD"], "FIELD", fa, "boundary.shp"),
            file_record(files["FEATURE_SET"], "FEATURE_SET", fs_survey, "stand.geojson"),
            file_record(files["LOGO"], "LOGO", logo_a, "logo.png"),
            file_record(fi_bare, "SURVEY", sa_bare, "bare.bin"),
            file_record(fi_doomed, "SURVEY", sa, "doomed.txt"),
            file_record(fi_moving, "SURVEY", sa, "moving.txt"),
            file_record(fi_b, "SURVEY", sb, "bravo.txt"),
        )
        .add(
            "flight_tasks",
            flight_task_record(
                ta, a, name="Scout", notes="north end", field_sentera_id=fa, survey_sentera_id=sa
            ),
            # References across tenants: A's task points at B's field and survey.
            flight_task_record(
                ta_cross, a, "IN_PROGRESS", name="Cross", field_sentera_id=fb, survey_sentera_id=sb
            ),
            flight_task_record(ta_bare, a, "OPEN"),
            flight_task_record(t_doomed, a, "CANCELED", name="Doomed"),
            flight_task_record(ta1, a1, "COMPLETED", field_sentera_id=fa1),
            flight_task_record(tb, b, "FAILED", field_sentera_id=fa, survey_sentera_id=sa),
        )
    )
    created.apply(engine)
    # Made in A's survey by B's user, whom A's members may not see: created_by shows its id.
    Changeset(ub).add("images", image_record(i_by_b, sa, "IMG_by_b.jpg")).apply(engine)
    # Updates and moves leave older versions behind (stale hashes).
    (
        Changeset(ua)
        .add("images", {"sentera_id": ia, "filename": "IMG_0001_v2.jpg"})
        .add("images", {"sentera_id": i_moving, "survey_sentera_id": sa1})
        .add("images", {"sentera_id": i_leaving, "survey_sentera_id": sb})
        .add("mosaics", {"sentera_id": m_moving, "survey_sentera_id": sa1})
        .add("fields", {"sentera_id": f_moving, "organization_sentera_id": b})
        .add("files", {"sentera_id": fi_moving, "owner_type": "SURVEY", "owner_sentera_id": sb})
        .add("flight_tasks", {"sentera_id": ta_bare, "status": "IN_PROGRESS"})
        .add("cogs", {"sentera_id": ca, "max_zoom": 20})
        .apply(engine)
    )
    Changeset(
        ua, delete=[i_doomed, m_doomed, fs_doomed, fi_doomed, t_doomed, s_doomed, f_doomed, gone]
    ).apply(engine)
    primary = {"OR": a, "AS": fa, "CO": sa, "MO": ma, "FS": fs_survey, "LO": logo_a}
    world = DiffWorld(readers=[ua, ua1], primary=primary)
    _read_ids_and_hashes(engine, world)
    return world


def _read_ids_and_hashes(engine: Engine, world: DiffWorld) -> None:
    """Every id of the world by type code; current and older hashes by GraphQL type."""
    versions = t.item_versions
    with engine.connect() as conn:
        for kind in ALL_KINDS:
            table = kind.table
            if kind.sync is None:
                rows = conn.execute(select(table.c.sentera_id)).all()
                for row in rows:
                    code = type_code_of(row.sentera_id)
                    assert code is not None
                    world.ids.setdefault(code.value, []).append(row.sentera_id)
                continue
            type_name = kind.sync.graphql_type
            current = set()
            for row in conn.execute(select(table.c.sentera_id, table.c.content_hash)):
                code = type_code_of(row.sentera_id)
                assert code is not None
                world.ids.setdefault(code.value, []).append(row.sentera_id)
                current.add(bytes(row.content_hash))
            every = {
                bytes(h)
                for h in conn.execute(
                    select(versions.c.content_hash).where(versions.c.kind == kind.name)
                ).scalars()
            }
            world.current[type_name] = sorted(encode_hash(h) for h in current)
            world.stale[type_name] = sorted(encode_hash(h) for h in every - current)
    for ids in world.ids.values():
        ids.sort()


# -- documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


def _possible(graphql_type: GraphQLNamedType) -> set[str]:
    if isinstance(graphql_type, GraphQLInterfaceType):
        return {o.name for o in SCHEMA.get_possible_types(graphql_type)}
    return {graphql_type.name}


def _overlap(a: GraphQLNamedType, b: GraphQLNamedType) -> bool:
    return bool(_possible(a) & _possible(b))


def _leaf_fields(object_type: GraphQLObjectType) -> list[str]:
    """Fields of a type that take no arguments and need no selection."""
    return sorted(
        name
        for name, graphql_field in object_type.fields.items()
        if not graphql_field.args
        and isinstance(get_named_type(graphql_field.type), GraphQLScalarType | GraphQLEnumType)
    )


def _name(value: str) -> NameNode:
    return NameNode(value=value)


class Rewriter:
    """Rewrites one generated operation: arguments, variables, aliases, fragments, directives."""

    def __init__(self, draw: st.DrawFn, world: DiffWorld) -> None:
        self.draw = draw
        self.world = world
        self.variable_definitions: list[VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[FragmentDefinitionNode] = []
        self.fragment_types: dict[str, GraphQLNamedType] = {}
        self._names = itertools.count()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self._names)}"

    def chance(self, p: float) -> bool:
        # Shrinks towards False: a failing document loses what it does not need.
        return self.draw(st.integers(0, 99)) >= 100 - int(p * 100)

    # -- values --

    def sentera_id(self, code: str | None) -> str:
        world = self.world
        own = world.ids.get(code or "", [])
        choice = self.draw(st.integers(0, 19))
        if code in world.primary and choice < 10:
            return world.primary[code]
        if own and choice < 16:
            return self.draw(st.sampled_from(own))
        if choice < 18:
            return self.draw(st.sampled_from(world.all_ids()))
        return self.draw(st.sampled_from([*world.unknown, "not-an-id", ""]))

    def held_hashes(self, type_name: str) -> list[str]:
        """A client's held list: empty, or some current, stale, other kinds', malformed."""
        world = self.world
        own = world.current.get(type_name, []) + world.stale.get(type_name, [])
        others = [world.all_hashes(), list(MALFORMED_HASHES), [NEVER_ISSUED]]
        entry = st.one_of(*[st.sampled_from(own)] * 4, *(st.sampled_from(p) for p in others))
        # Every version of the kind but a few (those are upserted again), and some noise.
        most = st.tuples(st.sets(st.sampled_from(own)), st.lists(entry, max_size=4)).map(
            lambda parts: [h for h in own if h not in parts[0]] + parts[1]
        )
        # The first choice is what the simplest examples get: a client holding much.
        return self.draw(most | st.lists(entry, max_size=16) | st.just([]))

    def owners(self, field_name: str) -> list[dict[str, str]]:
        owner_types = ["SURVEY", "MOSAIC", "FIELD", "FEATURE_SET", "LOGO"]
        if field_name == "sync_feature_sets":
            owner_types = ["SURVEY", "FIELD", "ORGANIZATION"]
        count = self.draw(st.integers(0, 4))
        found = []
        for _ in range(count):
            owner_type = self.draw(st.sampled_from(owner_types))
            matching = self.chance(0.8)
            found.append(
                {
                    "owner_type": owner_type,
                    "sentera_id": self.sentera_id(OWNER_CODES[owner_type] if matching else None),
                }
            )
        return found

    def argument_value(
        self, field_name: str, name: str, argument: GraphQLArgument, generated: ValueNode
    ) -> Any:
        """The Python (JSON) value of one argument: the world's ids and hashes for sync and
        lookup arguments, small pages for pagination, else what was generated."""
        if name == "content_hashes":
            return self.held_hashes(SYNC_TYPES[field_name])
        if name == "owners":
            return self.owners(field_name)
        if name.endswith("sentera_id"):
            return self.sentera_id(ID_CODES.get(name if name != "sentera_id" else field_name))
        if name == "pagination":
            small = st.none() | st.integers(-1, 3)
            return self.draw(
                st.none()
                | st.fixed_dictionaries(
                    {}, optional={"page": small, "page_size": small | st.just(1001)}
                )
            )
        if name == "include_descendant_organizations":
            return self.draw(st.sampled_from([True, False, None]))
        return value_from_ast_untyped(generated)

    def arguments(
        self, field_name: str, definition: GraphQLField, nodes: tuple[ArgumentNode, ...]
    ) -> tuple[ArgumentNode, ...]:
        rewritten = []
        for node in nodes:
            name = node.name.value
            argument = definition.args[name]
            value = self.argument_value(field_name, name, argument, node.value)
            rewritten.append(ArgumentNode(name=node.name, value=self.value_node(argument, value)))
        return tuple(rewritten)

    def value_node(self, argument: GraphQLArgument, value: Any) -> ValueNode:
        """A literal, or a variable (with or without a default) holding the value."""
        literal = ast_from_value(value, argument.type)
        assert literal is not None, (argument, value)
        how = self.draw(st.sampled_from(["literal", "variable", "default", "default omitted"]))
        if how == "literal":
            return literal
        name = self.fresh("v")
        graphql_type = argument.type
        default = None
        if how != "variable":
            default = literal
            if isinstance(graphql_type, GraphQLNonNull):
                graphql_type = graphql_type.of_type  # a default makes a nullable variable fit
        self.variable_definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=_name(name)),
                type=parse_type(str(graphql_type)),
                default_value=default,
                directives=(),
            )
        )
        if how != "default omitted":
            self.variables[name] = value
        return VariableNode(name=_name(name))

    # -- directives --

    def directives(self) -> tuple[DirectiveNode, ...]:
        """None mostly; else @skip or @include with a literal or a variable."""
        if not self.chance(0.25):
            return ()
        directive = self.draw(st.sampled_from(["skip", "include"]))
        flag = self.draw(st.booleans())
        how = self.draw(st.sampled_from(["literal", "variable", "default", "default omitted"]))
        value: ValueNode
        if how == "literal":
            value = BooleanValueNode(value=flag)
        else:
            name = self.fresh("d")
            has_default = how != "variable"
            self.variable_definitions.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=_name(name)),
                    type=parse_type("Boolean" if has_default else "Boolean!"),
                    default_value=BooleanValueNode(value=flag) if has_default else None,
                    directives=(),
                )
            )
            if how != "default omitted":
                self.variables[name] = flag if how == "variable" else self.draw(st.booleans())
            value = VariableNode(name=_name(name))
        argument = ArgumentNode(name=_name("if"), value=value)
        return (DirectiveNode(name=_name(directive), arguments=(argument,)),)

    # -- selections --

    def selection_set(
        self, node: SelectionSetNode, parent: GraphQLCompositeType
    ) -> SelectionSetNode:
        selections: list[SelectionNode] = []
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                selections.extend(self.field(selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                condition = parent
                if selection.type_condition is not None:
                    named = SCHEMA.get_type(selection.type_condition.name.value)
                    assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
                    condition = named
                selections.append(
                    InlineFragmentNode(
                        type_condition=selection.type_condition,
                        directives=self.directives(),
                        selection_set=self.selection_set(selection.selection_set, condition),
                    )
                )
            else:
                selections.append(selection)
        if self.chance(0.3):
            typename = FieldNode(
                alias=_name(self.fresh("t")) if self.chance(0.3) else None,
                name=_name("__typename"),
                arguments=(),
                directives=self.directives(),
            )
            selections.insert(self.draw(st.integers(0, len(selections))), typename)
        if parent is SYNC_ITEM:
            if self.chance(0.5):
                # What every sync client asks (generated documents often leave it out).
                identity = [FieldNode(name=_name(n), arguments=(), directives=()) for n in IDENTITY]
                selections[0:0] = identity
            if self.chance(0.5):
                selections.append(self.concrete_fragment())
        if selections and self.chance(0.4):
            selections = self.group(selections, parent)
        return SelectionSetNode(selections=tuple(selections))

    def field(self, node: FieldNode, parent: GraphQLCompositeType) -> list[FieldNode]:
        name = node.name.value
        if name == "__typename":
            return [node]
        assert isinstance(parent, GraphQLObjectType | GraphQLInterfaceType), parent
        definition = parent.fields[name]
        child = get_named_type(definition.type)
        selection_set = None
        if node.selection_set is not None:
            assert isinstance(child, GraphQLObjectType | GraphQLInterfaceType)
            selection_set = self.selection_set(node.selection_set, child)
        rewritten = [
            FieldNode(
                alias=_name(self.fresh("a")) if self.chance(0.2) else None,
                name=node.name,
                arguments=self.arguments(name, definition, node.arguments or ()),
                directives=self.directives(),
                selection_set=selection_set,
            )
        ]
        if definition.args and self.chance(0.25):
            # The same field again under another alias, with arguments of its own.
            rewritten.append(
                FieldNode(
                    alias=_name(self.fresh("twin")),
                    name=node.name,
                    arguments=self.arguments(name, definition, node.arguments or ()),
                    directives=(),
                    selection_set=selection_set,
                )
            )
        return rewritten

    def concrete_fragment(self) -> SelectionNode:
        """A fragment on one concrete sync item type (often not the page's), of aliased
        leaf fields: items of other types answer it with nothing."""
        type_name = self.draw(st.sampled_from(sorted(SYNC_TYPES.values())))
        object_type = SCHEMA.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        names = self.draw(
            st.lists(st.sampled_from(_leaf_fields(object_type)), min_size=1, max_size=3)
        )
        selections = tuple(
            FieldNode(alias=_name(self.fresh("c")), name=_name(n), arguments=(), directives=())
            for n in names
        )
        return self.fragment(selections, object_type)

    def group(
        self, selections: list[SelectionNode], parent: GraphQLCompositeType
    ) -> list[SelectionNode]:
        """Move a run of selections into an inline or a named fragment."""
        start = self.draw(st.integers(0, len(selections) - 1))
        end = self.draw(st.integers(start + 1, len(selections)))
        run = selections[start:end]
        conditions: list[GraphQLObjectType | GraphQLInterfaceType | None] = [None]
        if isinstance(parent, GraphQLObjectType):
            conditions += [parent, *parent.interfaces]
        elif isinstance(parent, GraphQLInterfaceType):
            conditions += [parent, *SCHEMA.get_possible_types(parent)]
        fitting = [c for c in conditions if c is None or all(self.fits(s, c) for s in run)]
        condition = self.draw(st.sampled_from(fitting))
        if condition is None:
            fragment: SelectionNode = InlineFragmentNode(
                type_condition=None,
                directives=self.directives(),
                selection_set=SelectionSetNode(selections=tuple(run)),
            )
        else:
            fragment = self.fragment(tuple(run), condition)
        return [*selections[:start], fragment, *selections[end:]]

    def fragment(
        self,
        selections: tuple[SelectionNode, ...],
        condition: GraphQLObjectType | GraphQLInterfaceType,
    ) -> SelectionNode:
        """An inline fragment or a spread of a new named fragment, on `condition`."""
        selection_set = SelectionSetNode(selections=selections)
        type_condition = NamedTypeNode(name=_name(condition.name))
        if self.chance(0.5):
            return InlineFragmentNode(
                type_condition=type_condition,
                directives=self.directives(),
                selection_set=selection_set,
            )
        name = self.fresh("F")
        self.fragments.append(
            FragmentDefinitionNode(
                name=_name(name),
                type_condition=type_condition,
                directives=(),
                selection_set=selection_set,
                variable_definitions=None,
            )
        )
        self.fragment_types[name] = condition
        return FragmentSpreadNode(name=_name(name), directives=self.directives())

    def fits(
        self, selection: SelectionNode, condition: GraphQLObjectType | GraphQLInterfaceType
    ) -> bool:
        """Whether a selection stays valid inside a fragment on `condition`."""
        if isinstance(selection, FieldNode):
            name = selection.name.value
            return name == "__typename" or name in condition.fields
        if isinstance(selection, InlineFragmentNode):
            if selection.type_condition is None:
                return all(self.fits(s, condition) for s in selection.selection_set.selections)
            named = SCHEMA.get_type(selection.type_condition.name.value)
            assert named is not None
            return _overlap(named, condition)
        assert isinstance(selection, FragmentSpreadNode)
        return _overlap(self.fragment_types[selection.name.value], condition)


assert SCHEMA.query_type is not None
ROOT_FIELDS = sorted(SCHEMA.query_type.fields)


def _queries(fields: tuple[str, ...]) -> st.SearchStrategy[DocumentNode]:
    return hypothesis_graphql.queries(
        SCHEMA, fields=fields, print_ast=lambda document: document, allow_x00=False
    )


# One or two root fields a document, mostly sync queries (two sync fields share a request's
# temporary table); hypothesis-graphql picks the rest over the whole schema.
_ROOT_FIELD = st.one_of(st.sampled_from(sorted(SYNC_TYPES)), st.sampled_from(ROOT_FIELDS))
GENERATED_QUERIES = st.lists(_ROOT_FIELD, min_size=1, max_size=2, unique=True).flatmap(
    lambda fields: _queries(tuple(sorted(fields)))
)


def documents(world: DiffWorld) -> st.SearchStrategy[Generated]:
    @st.composite
    def rewritten(draw: st.DrawFn) -> Generated:
        generated = draw(GENERATED_QUERIES)
        assert isinstance(generated, DocumentNode)
        operation = generated.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        rewriter = Rewriter(draw, world)
        assert SCHEMA.query_type is not None
        selection_set = rewriter.selection_set(operation.selection_set, SCHEMA.query_type)
        named = draw(st.booleans())
        document = DocumentNode(
            definitions=(
                OperationDefinitionNode(
                    operation=OperationType.QUERY,
                    name=_name("Differential") if named else None,
                    variable_definitions=tuple(rewriter.variable_definitions),
                    directives=(),
                    selection_set=selection_set,
                ),
                *rewriter.fragments,
            )
        )
        return Generated(
            print_ast(document),
            rewriter.variables or None,
            "Differential" if named and draw(st.booleans()) else None,
        )

    return rewritten()


# -- both paths ----------------------------------------------------------------------------


@dataclass
class BothPaths:
    fast: GraphQLExecutor
    plain: GraphQLExecutor
    tokens: list[str]

    def run(self, token: str, request: GraphQLRequest) -> GraphQLResponse:
        """Run on both paths; the answers must be the same, byte for byte once serialized."""
        fast = self.fast.run(token, request)
        plain = self.plain.run(token, request)
        context = f"query:\n{request.query}\nvariables: {request.variables}"
        assert (fast.status, fast.headers) == (plain.status, plain.headers), context
        assert fast.body == plain.body, context
        assert json.dumps(fast.body) == json.dumps(plain.body), f"key order differs; {context}"
        return plain


@pytest.fixture
def world(engine: Engine) -> DiffWorld:
    return build_world(engine)


@pytest.fixture
def both(engine: Engine, world: DiffWorld) -> BothPaths:
    schema = build_fieldsync_schema()
    return BothPaths(
        fast=GraphQLExecutor(schema, engine, fast_path=True),
        plain=GraphQLExecutor(schema, engine, fast_path=False),
        tokens=[create_token(engine, reader) for reader in world.readers],
    )


@pytest.mark.slow
def test_generated_documents_answer_alike_on_both_paths(world: DiffWorld, both: BothPaths) -> None:
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    # Mostly the root member, who reads the scopes where items were deleted and moved.
    @given(generated=documents(world), reader=st.sampled_from([0, 0, 0, 1]))
    def check(generated: Generated, reader: int) -> None:
        request = GraphQLRequest(generated.query, generated.variables, generated.operation_name)
        answer = both.run(both.tokens[reader], request)
        statuses.append(answer.status)
        event(f"status {answer.status}")
        if answer.status == 200:
            event("with errors" if "errors" in answer.body else "without errors")

    check()
    # The generator keeps producing documents that run (not only ones refused up front).
    assert statuses.count(200) >= len(statuses) // 2, statuses


# -- by hand: what generators rarely hit ----------------------------------------------------

HandCase = Callable[[DiffWorld], tuple[GraphQLRequest, Callable[[GraphQLResponse], None]]]


def _non_null_error_in_a_list(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    """An error under a non-null field of an item in a list: the null goes up to the nearest
    nullable field (`sync_mosaics`), the error's path has the item's index."""
    query = """query($s: ID!) {
      sync_mosaics(survey_sentera_id: $s, content_hashes: []) {
        remaining_count
        upserted { sentera_id ... on Mosaic { images(pagination: {page: 0}) { total_count } } }
      }
      me { sentera_id }
    }"""

    def check(answer: GraphQLResponse) -> None:
        assert answer.status == 200, answer.body
        assert answer.body["data"]["sync_mosaics"] is None
        assert answer.body["data"]["me"] is not None
        paths = [error["path"] for error in answer.body["errors"]]
        assert ["sync_mosaics", "upserted", 0, "images"] in paths, paths

    return GraphQLRequest(query, {"s": world.primary["CO"]}), check


def _non_null_error_at_the_root(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    """An error in a non-null root field: `data` itself becomes null."""
    query = "{ me { sentera_id } organizations(pagination: {page_size: 0}) { total_count } }"

    def check(answer: GraphQLResponse) -> None:
        assert answer.status == 200, answer.body
        assert answer.body["data"] is None
        assert [error["path"] for error in answer.body["errors"]] == [["organizations"]]

    return GraphQLRequest(query), check


def _typename_on_the_interface(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    """`__typename` asked on `SyncItem` (and in a fragment on it) names the concrete type, in
    `deleted` (every hash ever issued is held, so moved and deleted images are there) and in
    `upserted`."""
    query = """query($s: ID!, $held: [String!]!) {
      sync_images(survey_sentera_id: $s, content_hashes: $held) {
        deleted { __typename kind: __typename ... on SyncItem { __typename sentera_id } }
        upserted { __typename }
      }
    }"""
    held = world.current["Image"] + world.stale["Image"]

    def check(answer: GraphQLResponse) -> None:
        result = answer.body["data"]["sync_images"]
        assert result["deleted"], "the world has deleted and moved images"
        for entry in result["deleted"]:
            assert entry["__typename"] == entry["kind"] == "Image"

    return GraphQLRequest(query, {"s": world.primary["CO"], "held": held}), check


def _fragment_on_another_type(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    """A spread of a fragment on a type the items are not: each item is an empty object."""
    query = """query($s: ID!) {
      sync_images(survey_sentera_id: $s, content_hashes: []) { upserted { ...OnCog } }
    }
    fragment OnCog on Cog { status mosaic { sentera_id } }"""

    def check(answer: GraphQLResponse) -> None:
        upserted = answer.body["data"]["sync_images"]["upserted"]
        assert upserted and all(item == {} for item in upserted), upserted

    return GraphQLRequest(query, {"s": world.primary["CO"]}), check


def _unknown_operation_name(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    query = "query One { me { sentera_id } } query Two { me { first_name } }"

    def check(answer: GraphQLResponse) -> None:
        assert answer.status == 400, answer.body
        assert "Unknown operation named 'Three'" in answer.body["errors"][0]["message"]

    return GraphQLRequest(query, operation_name="Three"), check


def _variables_with_defaults(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    """Defaults for every variable, none sent: the defaults are the arguments."""
    survey = json.dumps(world.primary["CO"])
    query = f"""query($s: ID = {survey}, $held: [String!] = ["short"], $on: Boolean = true,
        $off: Boolean = false) {{
      sync_images(survey_sentera_id: $s, content_hashes: $held) @include(if: $on) {{
        remaining_count failed {{ key details }} upserted @skip(if: $off) {{ sentera_id }}
      }}
    }}"""

    def check(answer: GraphQLResponse) -> None:
        result = answer.body["data"]["sync_images"]
        assert result["failed"] == [
            {"key": "invalid_content_hash", "details": {"content_hash": "short"}}
        ]
        assert result["upserted"]

    return GraphQLRequest(query), check


def _missing_required_variable(world: DiffWorld) -> tuple[GraphQLRequest, Any]:
    query = """query($s: ID!, $held: [String!]!) {
      sync_images(survey_sentera_id: $s, content_hashes: $held) { remaining_count }
    }"""

    def check(answer: GraphQLResponse) -> None:
        assert answer.status == 400, answer.body
        messages = [error["message"] for error in answer.body["errors"]]
        assert messages == [
            "Variable '$s' has invalid value: "
            "Expected a value of non-null type 'ID!' to be provided."
        ]

    return GraphQLRequest(query, {"held": []}), check


HAND_CASES: dict[str, HandCase] = {
    "non-null error in a list": _non_null_error_in_a_list,
    "non-null error at the root": _non_null_error_at_the_root,
    "__typename on the interface": _typename_on_the_interface,
    "fragment on another type": _fragment_on_another_type,
    "unknown operation name": _unknown_operation_name,
    "variables with defaults": _variables_with_defaults,
    "missing required variable": _missing_required_variable,
}


def test_hand_written_documents_answer_alike_on_both_paths(
    world: DiffWorld, both: BothPaths
) -> None:
    """Each case answers the same on both paths, and as the case says (so it is really hit)."""
    for case, make in HAND_CASES.items():
        request, check = make(world)
        answer = both.run(both.tokens[0], request)
        try:
            check(answer)
        except AssertionError as error:
            raise AssertionError(f"{case}: {error}") from error
