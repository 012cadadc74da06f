"""The server's SQL lives in `fieldsync.storage` alone: no other server module builds or sends a
statement. (The client's local mirror is the client's own store, outside this rule.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fieldsync"

SQL_BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "func",
        "bindparam",
        "and_",
        "or_",
        "not_",
        "false",
        "true",
        "literal",
        "column",
        "table",
        "union",
        "exists",
        "any_",
    }
)
"""SQLAlchemy names whose only use is to write a statement."""

SQL_SENDERS = frozenset({"exec_driver_sql", "scalar", "scalars"})
"""Connection methods that run a statement (`execute` is also the client transport's)."""


def server_modules() -> list[Path]:
    outside = (SRC / "storage", SRC / "client")
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if not any(path.is_relative_to(folder) for folder in outside)
        and path != SRC / "cli" / "client.py"
    ]


def sql_uses(source: Path) -> list[str]:
    """Where a module imports a statement builder of SQLAlchemy or runs SQL on a connection."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"line {node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name in SQL_BUILDERS or (node.module or "") == "sqlalchemy.sql"
            ]
        elif isinstance(node, ast.Attribute) and node.attr in SQL_SENDERS:
            holder = node.value
            if isinstance(holder, ast.Name) and holder.id in {"conn", "connection"}:
                found.append(f"line {node.lineno}: {holder.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            holder = node.func.value
            is_conn = isinstance(holder, ast.Name) and holder.id in {"conn", "connection"}
            is_self_conn = isinstance(holder, ast.Attribute) and holder.attr == "conn"
            if node.func.attr == "execute" and (is_conn or is_self_conn):
                found.append(f"line {node.lineno}: execute")
    return found


def test_the_rule_finds_sql_where_there_is_some() -> None:
    """The check itself: storage modules are full of what it looks for."""
    assert sql_uses(SRC / "storage" / "listings.py")
    assert sql_uses(SRC / "storage" / "item_writes.py")


@pytest.mark.parametrize("module", server_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_server_module_outside_storage_writes_or_runs_sql(module: Path) -> None:
    assert sql_uses(module) == [], f"{module.relative_to(SRC)}: move the SQL to fieldsync.storage"
