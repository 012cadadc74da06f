"""Inline hash lists lifted out of the query text (`api/inline_lists.py`): what is lifted is
exactly what graphql-core reads in the original list, and a plain list of simple strings, apart
by any run of ignored characters, is always lifted (tests/test_fast_path.py runs the lifted
queries end to end)."""

from __future__ import annotations

import pytest
from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    parse,
    value_from_ast_untyped,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.api.inline_lists import lift_inline_lists

IGNORED = " \t\r\n,\ufeff"


def query_with(list_text: str) -> str:
    return (
        'query Q { sync_images(survey_sentera_id: "s", content_hashes: '
        f"{list_text}) {{ remaining_count }} }}"
    )


def graphql_core_strings(query: str) -> object:
    """The value graphql-core reads for the `content_hashes` argument."""
    operation = parse(query).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    field = operation.selection_set.selections[0]
    assert isinstance(field, FieldNode)
    argument = next(a for a in field.arguments or () if a.name.value == "content_hashes")
    assert isinstance(argument, ArgumentNode)
    return value_from_ast_untyped(argument.value)


simple_strings = st.lists(
    st.text(
        alphabet=st.characters(
            blacklist_characters='"\\', blacklist_categories=["Cs"], min_codepoint=0x20
        ),
        max_size=8,
    ),
    min_size=1,
    max_size=30,
)
separators = st.text(alphabet=IGNORED, min_size=1, max_size=4)
edges = st.text(alphabet=IGNORED, max_size=3)


@settings(max_examples=400)  # a pure function: many examples cost a fraction of a second
@given(simple_strings, separators, edges, edges)
def test_simple_strings_apart_by_one_separator_are_lifted_as_graphql_core_reads_them(
    strings: list[str], separator: str, before: str, after: str
) -> None:
    query = query_with("[" + before + separator.join(f'"{s}"' for s in strings) + after + "]")
    lifted = lift_inline_lists(query)
    assert lifted is not None
    assert lifted.values == {"__fieldsync_inline_0": strings}
    assert lifted.values["__fieldsync_inline_0"] == graphql_core_strings(query)
    assert lifted.skeleton == query_with("$__fieldsync_inline_0")


pieces = st.lists(
    st.sampled_from(
        ['"', '"a"', '""', '"""', "\\", '"\\u0041"', "b", "]", "[", "\t", "\ud800", *IGNORED]
    ),
    max_size=14,
)


@settings(max_examples=1000)
@given(pieces)
def test_whatever_is_lifted_is_what_graphql_core_reads(parts: list[str]) -> None:
    """Lists of any shape: a lifted list holds the strings graphql-core reads there. (Where
    the original is no valid document, its skeleton is none either, and the executor runs
    the original for graphql-core's error: tests/test_fast_path.py.)"""
    query = query_with("[" + "".join(parts) + "]")
    lifted = lift_inline_lists(query)
    if lifted is None:
        return
    try:
        expected = graphql_core_strings(query)
    except GraphQLSyntaxError:
        with pytest.raises(GraphQLSyntaxError):
            parse(lifted.skeleton)
        return
    assert lifted.values == {"__fieldsync_inline_0": expected}


def test_unevenly_separated_strings_are_lifted_too() -> None:
    lifted = lift_inline_lists(query_with('["a", "b","c"\n"d"]'))
    assert lifted is not None
    assert lifted.values["__fieldsync_inline_0"] == ["a", "b", "c", "d"]


def test_a_bracket_inside_a_string_ends_no_list() -> None:
    query = query_with('["a]", "b"]')
    lifted = lift_inline_lists(query)
    assert lifted is not None
    assert lifted.values["__fieldsync_inline_0"] == ["a]", "b"] == graphql_core_strings(query)


def test_escapes_block_strings_and_surrogates_are_left_to_the_parser() -> None:
    assert lift_inline_lists(query_with('["a", "\\u0041"]')) is None
    assert lift_inline_lists(query_with('["""a"""]')) is None
    assert lift_inline_lists(query_with('["a", "\ud800"]')) is None
    assert lift_inline_lists(query_with('["a",\n"\ud800"]')) is None
