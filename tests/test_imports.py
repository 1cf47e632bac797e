"""carlib's modules import one another without cycles, counting imports under ``TYPE_CHECKING`` too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "carlib"


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def module_level_imports(path: Path, name: str, known: set[str], inside_functions: bool = False) -> set[str]:
    """The package modules ``path`` imports outside function bodies (``if TYPE_CHECKING:`` blocks included),
    or anywhere with ``inside_functions`` (a deferred import still ties the two modules together)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not inside_functions:
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    package = package[: len(package) - child.level + 1]
                    base = ".".join([*package, base] if base else package)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {module for module in found if module in known and module != name}


def import_cycles(package: Path, inside_functions: bool = False) -> list[list[str]]:
    """Groups of modules that import one another (strongly connected components of size > 1)."""
    names = module_names(package)
    graph = {name: module_level_imports(path, name, set(names), inside_functions) for name, path in names.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            connect(node)
    return groups


def test_carlib_has_no_import_cycle():
    assert import_cycles(ROOT) == []


def test_carlib_has_no_import_cycle_even_through_imports_deferred_into_functions():
    """A function-level import avoids an import-time error, not the tie: `apps.cli` -> `apps.reproduce` ->
    `apps.cli.main` was such a cycle; none is left."""
    assert import_cycles(ROOT, inside_functions=True) == []


def test_the_cycle_finder_sees_a_cycle_hidden_under_type_checking(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import other\nthing = 1\n"
    )
    (package / "c.py").write_text("def late():\n    from pkg.a import x\n")  # a function-level import: no cycle
    (package / "d.py").write_text("from . import c\n")
    assert import_cycles(package) == [["pkg.a", "pkg.b"]]


def test_the_deep_cycle_finder_sees_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "e.py").write_text("def late():\n    from pkg.f import y\n")
    (package / "f.py").write_text("from pkg.e import late\ny = 1\n")
    (package / "g.py").write_text("def later():\n    from pkg.e import late\n")  # one way only: no cycle
    assert import_cycles(package) == []
    assert import_cycles(package, inside_functions=True) == [["pkg.e", "pkg.f"]]
