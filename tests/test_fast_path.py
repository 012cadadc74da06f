"""The fast execution path answers exactly as graphql-core does, where it takes shortcuts.

Each case runs the same request through `GraphQLExecutor(fast_path=True)` and
`fast_path=False` (plain graphql-core) over one seed world and compares status and body,
errors and their locations included: inline hash lists lifted out of the query
(`api/inline_lists.py`), string-list variables taken without coercion, and stored values a
field's type does not take as they are (`api/fast_execution.py`). The generated documents of
tests/test_fast_path_differential.py cover the rest of the schema.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import parse
from graphql.execution.executor import Executor
from sqlalchemy import Engine, select, update

from fieldsync.api.completed_items import COMPLETED_ITEMS
from fieldsync.api.execution import GraphQLExecutor, GraphQLRequest, GraphQLResponse
from fieldsync.api.inline_lists import lift_inline_lists
from fieldsync.api.limits import Limits
from fieldsync.api.schema import build_fieldsync_schema
from fieldsync.changeset import apply_changeset
from fieldsync.storage import tables as t
from fieldsync.sync.representation_cache import REPRESENTATIONS
from fieldsync.tokens import create_token
from tests import seed_world as sw

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

IMAGES = """
query Images($survey: ID!, $hashes: [String!]!) {
  sync_images(survey_sentera_id: $survey, content_hashes: $hashes) {
    remaining_count
    upserted { sentera_id content_hash ... on Image { filename latitude } }
    deleted { sentera_id content_hash }
    failed { key message code details }
  }
}
"""

MOSAICS = """
query Mosaics($survey: ID!) {
  sync_mosaics(survey_sentera_id: $survey, content_hashes: []) {
    upserted {
      __typename sentera_id
      ... on Mosaic { name mosaic_type released area { value unit } survey { sentera_id } }
    }
  }
}
"""


@dataclass
class Paths:
    fast: GraphQLExecutor
    standard: GraphQLExecutor
    token: str

    def both(
        self, query: str, variables: dict[str, Any] | None = None
    ) -> tuple[GraphQLResponse, GraphQLResponse]:
        request = GraphQLRequest(query, variables)
        fast = self.fast.run(self.token, request)
        standard = self.standard.run(self.token, request)
        assert (fast.status, fast.body) == (standard.status, standard.body)
        return fast, standard


@pytest.fixture
def paths(engine: Engine) -> Iterator[Paths]:
    sw.build_seed_world(engine)
    schema = build_fieldsync_schema()
    yield Paths(
        GraphQLExecutor(schema, engine, fast_path=True),
        GraphQLExecutor(schema, engine, fast_path=False),
        create_token(engine, sw.READER),
    )


def image_hashes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        survey = conn.execute(
            select(t.surveys.c.id).where(t.surveys.c.sentera_id == sw.SURVEY)
        ).scalar_one()
        ids = conn.execute(
            select(t.images.c.sentera_id).where(t.images.c.survey_id == survey)
        ).scalars()
        return sorted(sw.current_hashes(engine, list(ids)).values())


def inline(hashes: list[str], survey: str = sw.SURVEY, separator: str = ",\n  ") -> str:
    literals = separator.join(json.dumps(h) for h in hashes)
    return (
        "query Images {\n"
        f'  sync_images(survey_sentera_id: "{survey}", content_hashes: [\n  {literals}\n]) {{\n'
        "    remaining_count\n"
        "    upserted { sentera_id content_hash }\n"
        "    deleted { sentera_id content_hash }\n"
        "    failed { key message details }\n"
        "  }\n}\n"
    )


# -- inline hash lists ------------------------------------------------------------------------


def test_inline_hashes_are_lifted_and_answer_as_the_variable_does(
    paths: Paths, engine: Engine
) -> None:
    hashes = image_hashes(engine)
    held = [*hashes[1:], "AAAAAAAAAAAAAAAA", "not a hash"]
    query = inline(held)
    assert lift_inline_lists(query) is not None
    fast, _ = paths.both(query)
    assert fast.status == 200 and "errors" not in fast.body
    by_variable = paths.fast.run(
        paths.token, GraphQLRequest(IMAGES, {"survey": sw.SURVEY, "hashes": held})
    )
    page = fast.body["data"]["sync_images"]
    assert page["remaining_count"] == by_variable.body["data"]["sync_images"]["remaining_count"]
    assert [item["content_hash"] for item in page["upserted"]] == [hashes[0]]
    assert [entry["details"] for entry in page["failed"]] == [{"content_hash": "not a hash"}]


def test_an_error_after_a_lifted_list_has_the_originals_locations(paths: Paths) -> None:
    """A field after a 40-line list fails: its error's line is the original document's
    (40 lines below the skeleton's), because the original then runs."""
    held = ",\n  ".join(['"AAAAAAAAAAAAAAAA"'] * 40)
    query = (
        "{\n"
        f'  a: sync_images(survey_sentera_id: "{sw.SURVEY}", content_hashes: [\n  {held}\n]) {{\n'
        "    remaining_count\n"
        "  }\n"
        '  b: sync_images(survey_sentera_id: "nosuch1_CO_none", content_hashes: []) {\n'
        "    remaining_count\n"
        "  }\n"
        "}\n"
    )
    fast, _ = paths.both(query)
    line = query.splitlines().index(next(x for x in query.splitlines() if "b: " in x)) + 1
    assert fast.body["errors"][0]["locations"] == [{"line": line, "column": 3}]
    assert fast.body["data"]["a"]["remaining_count"] >= 0


@pytest.mark.parametrize(
    "query",
    [
        # a block string is not three simple strings
        '{ sync_images(survey_sentera_id: "%s", content_hashes: ["""AAAAAAAAAAAAAAAA"""]) '
        "{ remaining_count failed { details } } }",
        # a list in a comment is not an argument; the real list is the variable's
        '# content_hashes: ["AAAAAAAAAAAAAAAA"]\n'
        '{ sync_images(survey_sentera_id: "%s", content_hashes: []) { remaining_count } }',
        # escapes are left to the parser
        '{ sync_images(survey_sentera_id: "%s", content_hashes: ["\\u0041AAAAAAAAAAAAAAA"]) '
        "{ remaining_count failed { details } } }",
        # a list given where the argument is of another type fails validation, as it would
        '{ survey(sentera_id: "%s", content_hashes: ["x"]) { sentera_id } }',
        # two operations: not lifted
        '{ a: sync_images(survey_sentera_id: "%s", content_hashes: ["x"]) { remaining_count } }'
        " query B { me { sentera_id } }",
    ],
)
def test_lists_that_only_look_liftable_answer_as_graphql_core_does(
    paths: Paths, query: str
) -> None:
    paths.both(query.replace("%s", sw.SURVEY))


def test_the_token_limit_counts_the_lifted_strings(engine: Engine) -> None:
    """A document of exactly max_tokens tokens passes; one more string is refused, with the
    same message the parser's own limit gives."""
    sw.build_seed_world(engine)
    token = create_token(engine, sw.READER)
    query = inline(["AAAAAAAAAAAAAAAA"] * 50)
    tokens = parse(query).token_count
    for limit, status in ((tokens, 200), (tokens - 1, 400)):
        answers = [
            GraphQLExecutor(
                build_fieldsync_schema(), engine, Limits(max_tokens=limit), fast_path=fast
            ).run(token, GraphQLRequest(query))
            for fast in (True, False)
        ]
        assert [(a.status, a.body) for a in answers[1:]] == [(answers[0].status, answers[0].body)]
        assert answers[0].status == status
        if status == 400:
            assert answers[0].body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"


# -- variables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hashes",
    [
        ["AAAAAAAAAAAAAAAA"],
        [],
        ["AAAAAAAAAAAAAAAA", 7],
        ["AAAAAAAAAAAAAAAA", None],
        "AAAAAAAAAAAAAAAA",  # a single value stands for a list of one
        None,
        {"a": 1},
    ],
)
def test_hash_variables_coerce_as_graphql_core_coerces_them(paths: Paths, hashes: Any) -> None:
    paths.both(IMAGES, {"survey": sw.SURVEY, "hashes": hashes})


# -- stored values a field's type does not take as they are ------------------------------------


def mosaics_survey() -> str:
    survey: str = sw.seed_changeset()["upsert"]["mosaics"][0]["survey_sentera_id"]
    return survey


@pytest.fixture
def uncached_representations() -> Iterator[None]:
    """The process's decoded representations forgotten before and after a test that changes a
    stored representation in place, without giving it a new hash (which no write path does):
    other tests' worlds have the same ids and hashes."""
    REPRESENTATIONS.clear()
    yield
    REPRESENTATIONS.clear()


@pytest.mark.usefixtures("uncached_representations")
@pytest.mark.parametrize(
    "changes",
    [
        {"name": 5},  # a number in a String: graphql-core serializes it as "5"
        {"mosaic_type": "NOT_A_TYPE"},  # an enum value the type does not know
        {"released": None},  # null in a non-null field: the item becomes null, then the list
        {"area": {"value": "wide", "unit": "ACRE"}},  # a string in a Float
        {"survey": None},  # a null reference in a nullable field
    ],
)
def test_stored_values_outside_the_type_answer_as_graphql_core(
    paths: Paths, engine: Engine, changes: dict[str, Any]
) -> None:
    survey = mosaics_survey()
    with engine.begin() as conn:
        row = conn.execute(
            select(t.mosaics.c.id, t.mosaics.c.representation).where(
                t.mosaics.c.sentera_id == sw.MOSAIC
            )
        ).one()
        representation = json.loads(row.representation) | changes
        conn.execute(
            update(t.mosaics)
            .where(t.mosaics.c.id == row.id)
            .values(representation=json.dumps(representation))
        )
    fast, _ = paths.both(MOSAICS, {"survey": survey})
    assert fast.status == 200


# -- completed items served again ---------------------------------------------------------------


def mosaic_query(selection: str) -> str:
    """A first `sync_mosaics` page asking for `selection` of each mosaic."""
    released = ", $released: Boolean = true" if "$released" in selection else ""
    return (
        f"query Mosaics($survey: ID!{released}) {{\n"
        "  sync_mosaics(survey_sentera_id: $survey, content_hashes: []) {\n"
        f"    upserted {{ __typename sentera_id content_hash ... on Mosaic {{ {selection} }} }}\n"
        "  }\n}\n"
    )


@pytest.mark.usefixtures("uncached_representations")
@pytest.mark.parametrize(
    ("first", "second", "second_variables"),
    [
        ("name released", "label: name released", {}),  # an alias
        ("name @include(if: $released)", "name @include(if: $released)", {"released": False}),
        ("area { value }", "area { unit }", {}),  # another selection of an object field
        ("survey { sentera_id }", "survey { sentera_id name }", {}),  # then a resolver
        ("name", "name @skip(if: true)", {}),
        ("name", "... on Mosaic { name }", {}),  # the same fields, collected alike
    ],
)
def test_kept_completions_answer_as_graphql_core(
    paths: Paths, first: str, second: str, second_variables: dict[str, Any]
) -> None:
    """An item completed once is served again only to a selection completing it alike."""
    survey = mosaics_survey()
    COMPLETED_ITEMS.clear()
    paths.both(mosaic_query(first), {"survey": survey})
    assert len(COMPLETED_ITEMS) > 0
    paths.both(mosaic_query(second), {"survey": survey} | second_variables)


@pytest.mark.usefixtures("uncached_representations")
def test_the_same_document_is_answered_with_the_kept_items(paths: Paths) -> None:
    query = GraphQLRequest(mosaic_query("name area { value unit }"), {"survey": mosaics_survey()})
    first = paths.fast.run(paths.token, query).body["data"]["sync_mosaics"]["upserted"]
    again = paths.fast.run(paths.token, query).body["data"]["sync_mosaics"]["upserted"]
    assert first == again and len(first) > 1
    assert all(kept is item for kept, item in zip(first, again, strict=True))


@pytest.mark.usefixtures("uncached_representations")
def test_a_selection_with_a_resolver_is_not_kept(paths: Paths) -> None:
    COMPLETED_ITEMS.clear()
    paths.both(mosaic_query("name survey { sentera_id name }"), {"survey": mosaics_survey()})
    assert len(COMPLETED_ITEMS) == 0


@pytest.mark.usefixtures("uncached_representations")
def test_an_updated_item_is_completed_anew(paths: Paths, engine: Engine) -> None:
    survey = mosaics_survey()
    query = mosaic_query("name")
    fast, _ = paths.both(query, {"survey": survey})
    names = {
        item["sentera_id"]: item["name"] for item in fast.body["data"]["sync_mosaics"]["upserted"]
    }
    assert names[sw.MOSAIC] != "Renamed"
    (mosaic,) = [
        m for m in sw.seed_changeset()["upsert"]["mosaics"] if m["sentera_id"] == sw.MOSAIC
    ]
    apply_changeset(
        engine,
        {"actor_sentera_id": sw.READER, "upsert": {"mosaics": [mosaic | {"name": "Renamed"}]}},
    )
    fast, _ = paths.both(query, {"survey": survey})
    names = {
        item["sentera_id"]: item["name"] for item in fast.body["data"]["sync_mosaics"]["upserted"]
    }
    assert names[sw.MOSAIC] == "Renamed"


# -- memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_a_request_leaves_nothing_for_the_garbage_collector(engine: Engine, fast: bool) -> None:
    """The executor and the request's variables are freed by reference counting when the
    request ends. A reference cycle would keep a 100,000-hash list alive until the collector's
    next full pass, which a server doing little else but sync calls seldom reaches (its RSS
    grew by the size of every request's variables)."""
    sw.build_seed_world(engine)
    executor = GraphQLExecutor(build_fieldsync_schema(), engine, fast_path=fast)
    token = create_token(engine, sw.READER)
    request = GraphQLRequest(IMAGES, {"survey": sw.SURVEY, "hashes": ["AAAAAAAAAAAAAAAA"] * 50})
    assert executor.run(token, request).status == 200  # documents and statements cached
    gc.collect()
    gc.disable()
    try:
        assert executor.run(token, request).status == 200
        left = [o for o in gc.get_objects() if isinstance(o, Executor)]
    finally:
        gc.enable()
    assert left == []
