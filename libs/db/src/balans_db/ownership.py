"""Check the database contract in the services' source: a package names in SQL only the
tables its service owns; it reads other owners' tables through the query functions the
owner publishes in :mod:`balans_db.queries`.

What counts as naming a table (``OWNERS`` in :mod:`balans_db.tables`):

- SQL text in a string or f-string (one with ``select``, ``insert``, ``update``,
  ``delete``, ``copy``, ``truncate`` or ``create`` in it): ``from``, ``join``, ``into``,
  ``update``, ``copy``, ``table``, ``truncate`` followed by the table's name;
- a string that is exactly the name of a table with ``_`` in it
  (``copy_records_to_table("pulse_readings")``; ``"meters"`` alone may be a word);
- importing a table's declaration from :mod:`balans_db.tables`, or using one as an
  attribute of that module (``tables.heat_allocation``).

Docstrings are prose and are skipped. Run ``python -m balans_db.ownership [ROOT]`` (``make
lint`` does); it prints one line per violation and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from balans_db.tables import OWNERS

SQL_STATEMENT = re.compile(r"\b(?:select|insert|update|delete|copy|truncate|create)\b", re.I)
SQL_NAME = re.compile(
    r"\b(?:from|join|into|update|copy|table|truncate)\s+(?:only\s+)?([a-z_][a-z0-9_]*)", re.I
)

# Libraries that run inside a service's process and write its tables on its behalf: the
# M-Bus decoder stores its readings in the persister's transaction.
RUNS_IN = {"mbus": "ingest"}

# Packages whose SQL is the contract itself (declarations, migrations, published queries).
EXEMPT = {"db"}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    package: str
    table: str

    def __str__(self) -> str:
        owner = OWNERS[self.table]
        return (
            f"{self.path}:{self.line}: balans_{self.package} names {self.table} "
            f"(owned by {owner}); use balans_db.queries or ask {owner} to publish a query"
        )


def owned_by(package: str) -> set[str]:
    """The tables code of ``package`` (``allocation`` for balans_allocation) may name."""
    owners = {package, RUNS_IN.get(package, package)}
    return {table for table, owner in OWNERS.items() if owner in owners}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "?"
            for v in node.values
        )
    return None


def _table_modules(tree: ast.AST) -> set[str]:
    """Local names bound to ``balans_db.tables`` or one of its modules."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {
                a.asname for a in node.names if a.asname and a.name.startswith("balans_db.tables")
            }
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("balans_db"):
            for a in node.names:
                if f"{node.module}.{a.name}".startswith("balans_db.tables"):
                    names.add(a.asname or a.name)
    return names


def tables_named(source: str) -> Iterator[tuple[int, str]]:
    """(line, table) for every table the Python ``source`` names in SQL or imports."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    modules = _table_modules(tree)
    inside_fstring = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("balans_db.tables"):
            for alias in node.names:
                if alias.name in OWNERS:
                    yield node.lineno, alias.name
            continue
        if (
            isinstance(node, ast.Attribute)
            and node.attr in OWNERS
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            yield node.lineno, node.attr
            continue
        if not isinstance(node, ast.expr) or id(node) in skip or id(node) in inside_fstring:
            continue
        text = _text(node)
        if text is None:
            continue
        if text in OWNERS and "_" in text:
            yield node.lineno, text
        elif SQL_STATEMENT.search(text):
            for match in SQL_NAME.finditer(text):
                if match.group(1).lower() in OWNERS:
                    yield node.lineno, match.group(1).lower()


def package_sources(root: Path) -> Iterator[tuple[str, Path]]:
    """(package, file) for every module of every service and library but the exempt ones."""
    for src in sorted([*root.glob("services/*/src"), *root.glob("libs/*/src")]):
        for package_dir in sorted(src.glob("balans_*")):
            package = package_dir.name.removeprefix("balans_")
            if package in EXEMPT:
                continue
            for path in sorted(package_dir.rglob("*.py")):
                yield package, path


def violations(root: Path) -> list[Violation]:
    found = []
    for package, path in package_sources(root):
        allowed = owned_by(package)
        for line, table in tables_named(path.read_text()):
            if table not in allowed:
                found.append(Violation(path.relative_to(root), line, package, table))
    return found


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = violations(root)
    for violation in found:
        print(violation)
    if found:
        print(f"{len(found)} reads or writes of another service's table (docs/database.md)")
        sys.exit(1)


if __name__ == "__main__":
    main()
