"""The package layout is a contract: imports point one way, and no module is a knot.

Every import of every module is read with the AST, those inside functions included, and
checked against the table of what each package may import (README, "Architecture").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import toolchain

ROOT = Path(toolchain.__file__).parent
# What each package may import, besides itself. Everything imports `core`.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "artifact": {"core"},
    "config": {"core"},
    "localenv": {"core"},
    "runtime": {"core", "config"},
    "running": {"core", "config", "runtime"},
    "build": {"core", "artifact", "config", "localenv", "runtime"},
    "installer": {"core", "artifact", "config", "localenv", "runtime", "running"},
    "cli": {"core", "artifact", "config", "localenv", "runtime", "running", "build", "installer"},
}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the toolchain by dotted name (the packaged data left out)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        if "_data" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported toolchain module, line) for every import in the file, wherever it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known:  # `from toolchain.x import y`: y a module or a name
                yield target, node.lineno


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    return {name: dict(imports_of(name, path, known)) for name, path in found.items()}


def forbidden(edges: dict[str, dict[str, int]]) -> list[str]:
    """Imports that point where the table does not allow, as `module:line -> target`."""
    problems = []
    for module, targets in sorted(edges.items()):
        mine = package_of(module)
        for target, line in sorted(targets.items()):
            theirs = package_of(target)
            if module == "toolchain" or theirs == mine:
                if module == "toolchain" and target != "toolchain":
                    problems.append(f"{module}:{line} -> {target} (the root imports nothing)")
                continue
            if theirs not in ALLOWED.get(mine, set()):
                problems.append(f"{module}:{line} -> {target} ({mine} may not import {theirs})")
    return problems


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt == node or nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_every_package_is_in_the_table() -> None:
    packages = {package_of(m) for m in modules()} - {""}
    assert packages == set(ALLOWED)


def test_imports_point_one_way() -> None:
    assert forbidden(graph()) == []


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_no_module_is_too_long_and_the_top_level_is_small() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: c for n, c in long.items() if c > MAX_LINES} == {}
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert top == ["__init__.py"]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_says_what_it_is_for_and_imports_nothing(package: str) -> None:
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"toolchain/{package}/__init__.py has no docstring"
    assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]


def test_the_checker_sees_forbidden_imports_and_circles() -> None:
    edges = {
        "toolchain.core.a": {"toolchain.build.b": 3},
        "toolchain.build.b": {"toolchain.core.a": 1},
        "toolchain.running.c": {"toolchain.installer.d": 9},
        "toolchain.installer.d": {},
    }
    assert forbidden(edges) == [
        "toolchain.core.a:3 -> toolchain.build.b (core may not import build)",
        "toolchain.running.c:9 -> toolchain.installer.d (running may not import installer)",
    ]
    assert cycles(edges) == [["toolchain.build.b", "toolchain.core.a"]]
