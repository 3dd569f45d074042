"""The code's shape, kept by tests: small modules, no import cycles, the HTTP API on
pgq's public modules only, and every named statement used by some code path."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgq._queries import QUERIES
from pgq.bench.queries import BENCH_QUERIES
from tests.conftest import ROOT

MAX_LINES = 300
LONG_REASON = "Longer than 300 lines because"


def _sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "api":
        parts.insert(0, "pgq")  # installed as pgq.api
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports executed at import time: module level, outside ``if TYPE_CHECKING``."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                yield inner


def test_modules_stay_under_300_lines_unless_they_say_why() -> None:
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _sources("pgq", "api")
        if (n := len(p.read_text().splitlines())) > MAX_LINES and LONG_REASON not in p.read_text()
    ]
    assert not long, f"split these, or say at their top why not ({LONG_REASON} ...): {long}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, as the chain of modules that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state and name != "pgq":
            visit(name, [name])
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_pgq_has_no_import_cycles() -> None:
    modules = {_module_name(p): p for p in _sources("pgq", "api")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                deps.update(subs)
                if len(subs) < len(node.names):
                    deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        # A package's own __init__ is imported first by Python anyway: edges to it are not cycles.
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    cycles = _cycles(graph)
    assert not [c for c in cycles if "pgq" not in c], cycles


_PRIVATE = re.compile(r"\bpgq(\.[a-z_]+)*\._[a-z]|\bfrom pgq(\.[a-z_]+)* import .*\b_[a-z]")


def test_the_http_api_imports_only_public_pgq_modules() -> None:
    offending = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in _sources("api")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if line.lstrip().startswith(("import ", "from ")) and _PRIVATE.search(line) and "# private:" not in line
    ]
    assert not offending, "api/ reads through pgq's public modules (pgq.db, pgq.spec, ...): " + str(offending)


@pytest.mark.parametrize(
    ("queries", "folders"),
    [(QUERIES, ("pgq", "api", "migrations")), (BENCH_QUERIES, ("pgq/bench", "benchmarks"))],
)
def test_every_named_statement_is_used(queries: dict[str, str], folders: tuple[str, ...]) -> None:
    code = "\n".join(p.read_text() for folder in folders for p in (ROOT / folder).rglob("*.py"))
    unused = [name for name in queries if f'"{name}"' not in code]
    assert not unused, f"named statements no code uses: {unused}"
