"""Hash lists written inline in a query, lifted out before parsing.

A sync call may carry its 100,000 held hashes as a list literal,
`content_hashes: ["…", "…", …]`, instead of a variable. graphql-core parses and validates such
a literal string by string (seconds for 100,000), and a document that differs in every call
cannot be cached. `lift_inline_lists` cuts each such list out of the query text with one
regular expression, leaving a small *skeleton* with a variable in its place
(`$__fieldsync_inline_0`), declared `[String!]!` on the operation by `declare_lifted`. The
skeleton is what is parsed, validated and cached; the strings become that variable's value.

A list is lifted only when it is plainly a list of simple string literals (no escapes, no
comments, no variables); a skeleton that does not validate, or whose execution reports any
error, is not used: the original document then runs as it came, so every answer and every
error message (with its locations) is the one graphql-core gives the original.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache

from graphql import (
    DocumentNode,
    ListTypeNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    VariableDefinitionNode,
    VariableNode,
)

PLACEHOLDER_PREFIX = "__fieldsync_inline_"
_IGNORED_CHARACTERS = " \t\r\n,\ufeff"
"""GraphQL's ignored characters (white space, line terminators, commas, the BOM), comments
aside."""
_IGNORED = f"[{re.escape(_IGNORED_CHARACTERS)}]"
_CONTROL_CHARACTERS = frozenset(chr(code) for code in range(0x20))
_ARGUMENT = "content_hashes"
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_")
_BEFORE_LIST = re.compile(rf"{_IGNORED}*:{_IGNORED}*(?=\[)")
"""What follows the argument's name up to its list."""
_SIMPLE_STRING = r'"[^"\\\x00-\x1f\ud800-\udfff]*"'
"""A string literal without escapes, control characters or surrogates (graphql-core refuses a
lone one). The list's strings must be apart, so that a block string (three quotes) is never
read as empty strings around a simple one."""
_STRING_LIST = re.compile(
    rf"\[{_IGNORED}*{_SIMPLE_STRING}(?:{_IGNORED}+{_SIMPLE_STRING})*{_IGNORED}*\]"
)


@dataclass(frozen=True, slots=True)
class LiftedQuery:
    skeleton: str
    """The query text with each lifted list replaced by a variable."""
    values: dict[str, list[str]]
    """Each placeholder variable's strings, by variable name."""
    strings: int
    """How many string tokens were lifted (the original has this many more tokens)."""


def lift_inline_lists(query: str) -> LiftedQuery | None:
    """The query with its inline `content_hashes` string lists lifted out, or None if it has
    none (or already uses the placeholder names)."""
    if PLACEHOLDER_PREFIX in query or _ARGUMENT not in query:
        return None
    parts: list[str] = []
    values: dict[str, list[str]] = {}
    position = 0
    for start in _list_starts(query):
        if start < position:
            continue
        lifted = _string_list(query, start)
        if lifted is None:
            continue
        name = f"{PLACEHOLDER_PREFIX}{len(values)}"
        values[name], end = lifted
        parts += (query[position:start], "$", name)
        position = end
    if not values:
        return None
    parts.append(query[position:])
    strings = sum(len(value) for value in values.values())
    return LiftedQuery("".join(parts), values, strings)


def _string_list(query: str, start: int) -> tuple[list[str], int] | None:
    """The strings of the simple string list at `start` (its `[`) and where the list ends,
    or None if it is not one."""
    close = query.find("]", start)
    if close == -1:
        return None
    strings = _evenly_separated_strings(query[start + 1 : close].strip(_IGNORED_CHARACTERS))
    if strings is not None:
        return strings, close + 1
    literal = _STRING_LIST.match(query, start)
    if literal is None:
        return None
    # Between the brackets: strings (without quotes inside) apart by ignored characters.
    return query[start + 1 : literal.end() - 1].split('"')[1::2], literal.end()


def _evenly_separated_strings(inner: str) -> list[str] | None:
    """The strings of `"a", "b", …` when every two are apart by the same run of ignored
    characters (the common case: one string a line, or `", "`), found with one split and
    checked with scans in C; None where that does not hold (the regular expression then
    decides).

    The split gives n parts; the text is a list of n simple strings exactly when it holds 2n
    quotes (two per string, none inside one), no backslash or surrogate, and no control
    character but the separators' own, n - 1 times theirs."""
    if len(inner) < 2 or inner[0] != '"' or inner[-1] != '"':
        return None
    second = inner.find('"', 1)
    third = inner.find('"', second + 1)
    if third == -1:
        strings, separator = [inner[1:-1]], ""
    else:
        separator = inner[second : third + 1]
        if len(separator) < 3 or separator[1:-1].strip(_IGNORED_CHARACTERS):
            return None
        strings = inner[1:-1].split(separator)
    if inner.count('"') != 2 * len(strings):
        return None
    controls = frozenset(separator) & _CONTROL_CHARACTERS
    gaps = len(strings) - 1
    if any(inner.count(c) != separator.count(c) * gaps for c in controls):
        return None
    if _escape_or_control_except(controls).search(inner):
        return None
    return strings


@cache
def _escape_or_control_except(allowed: frozenset[str]) -> re.Pattern[str]:
    """A backslash, a surrogate or a control character other than `allowed`."""
    others = "".join(re.escape(c) for c in sorted(_CONTROL_CHARACTERS - allowed))
    return re.compile(f"[\\\\{others}\ud800-\udfff]")


def _list_starts(query: str) -> Iterator[int]:
    """Where the list of each `content_hashes:` argument starts (found with `str.find`, which
    is many times faster than a regular expression over megabytes)."""
    found = query.find(_ARGUMENT)
    while found != -1:
        after = found + len(_ARGUMENT)
        if found == 0 or query[found - 1] not in _NAME_CHARACTERS:
            colon = _BEFORE_LIST.match(query, after)
            if colon is not None:
                yield colon.end()
        found = query.find(_ARGUMENT, after)


def _string_list_type() -> NonNullTypeNode:
    string = NonNullTypeNode(type=NamedTypeNode(name=NameNode(value="String")))
    return NonNullTypeNode(type=ListTypeNode(type=string))


def declare_lifted(document: DocumentNode, names: list[str]) -> DocumentNode | None:
    """The skeleton's document with the placeholder variables declared on its operation, or
    None unless it is a document of exactly one query."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return None
    operation = operations[0]
    declared = tuple(
        VariableDefinitionNode(
            variable=VariableNode(name=NameNode(value=name)),
            type=_string_list_type(),
            directives=(),
        )
        for name in names
    )
    widened = replace(
        operation, variable_definitions=(*(operation.variable_definitions or ()), *declared)
    )
    definitions = tuple(widened if d is operation else d for d in document.definitions)
    return replace(document, definitions=definitions)
