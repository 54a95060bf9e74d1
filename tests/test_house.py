"""House rules for ``ser_pipeline/`` (issue 20): no module over 400 lines, no class over
250, no import cycle among the package's modules.

Each rule is a small function over source text (or an import graph), so the tests below
check the real tree and, on made-up fixtures, that each rule does fail.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ser_pipeline"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


# -- the rules ------------------------------------------------------------------------------
def module_name(path: Path, root: Path = ROOT) -> str:
    """``ser_pipeline/a/b.py`` -> ``ser_pipeline.a.b``; a package's ``__init__`` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_lines(source: str) -> int:
    return len(source.splitlines())


def long_classes(source: str, *, limit: int = MAX_CLASS_LINES) -> list[tuple[str, int]]:
    """``(name, lines)`` of every class (nested ones too) longer than ``limit`` lines."""
    sizes = [(node.name, node.end_lineno - node.lineno + 1)
             for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
    return [(name, lines) for name, lines in sizes if lines > limit]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported: not function bodies, not
    ``if TYPE_CHECKING:`` blocks (an import inside a function is how a cycle is broken)."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_time_statements(node.orelse)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _import_time_statements(getattr(node, field, None) or [])


def _known(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules``."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imported_modules(source: str, module: str, modules: set[str], *,
                     is_package: bool = False) -> set[str]:
    """The modules of ``modules`` that ``module`` imports when it is imported.

    ``from a.b import c`` is the module ``a.b.c`` when that is a module, else ``a.b``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_time_statements(ast.parse(source).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        found.update(hit for target in targets if (hit := _known(target, modules)))
    found.discard(module)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets, as a path ``[a, b, ..., a]``."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


# -- the tree -------------------------------------------------------------------------------
@functools.cache
def sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def import_graph(files: dict[Path, str], root: Path = ROOT) -> dict[str, set[str]]:
    names = {path: module_name(path, root) for path in files}
    modules = set(names.values())
    return {names[path]: imported_modules(source, names[path], modules,
                                          is_package=path.name == "__init__.py")
            for path, source in files.items()}


def test_no_module_over_the_limit() -> None:
    long = {str(path.relative_to(ROOT)): module_lines(source)
            for path, source in sources().items() if module_lines(source) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them at a seam): {long}"


def test_no_class_over_the_limit() -> None:
    long = {f"{path.relative_to(ROOT)}:{name}": lines for path, source in sources().items()
            for name, lines in long_classes(source)}
    assert not long, f"classes over {MAX_CLASS_LINES} lines: {long}"


def test_no_import_cycles() -> None:
    graph = import_graph(sources())
    assert len(graph) == len(sources())
    assert "ser_pipeline.teacher.core" in graph["ser_pipeline.teacher.onnx"]  # sees the edges
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (move an import into the function that needs it, or " \
        "move the shared code down a layer):\n" + "\n".join(" -> ".join(c) for c in cycles)


# -- each rule can fail -----------------------------------------------------------------------
def test_module_lines_counts_lines() -> None:
    assert module_lines("a = 1\n" * (MAX_MODULE_LINES + 1)) > MAX_MODULE_LINES
    assert module_lines("a = 1\nb = 2") == 2


@pytest.mark.parametrize(("source", "expected"), [
    ("class Small:\n    a = 1\n", []),
    ("class Big:\n" + "    a = 1\n" * MAX_CLASS_LINES, [("Big", MAX_CLASS_LINES + 1)]),
    ("def f():\n    class Inner:\n" + "        a = 1\n" * MAX_CLASS_LINES,
     [("Inner", MAX_CLASS_LINES + 1)]),
], ids=["small", "big", "nested"])
def test_long_classes(source: str, expected: list[tuple[str, int]]) -> None:
    assert long_classes(source) == expected


MODULES = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}


@pytest.mark.parametrize(("source", "expected"), [
    ("import p.a\nfrom p import b\n", {"p.a", "p.b"}),
    ("from p.sub.c import name\nimport os\n", {"p.sub.c"}),
    ("from p import not_a_module\n", {"p"}),
    ("from . import b\nfrom .sub import c\n", {"p.b", "p.sub.c"}),
    ("def f():\n    import p.a\n", set()),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.a\nelse:\n"
     "    import p.b\n", {"p.b"}),
    ("try:\n    import p.a\nexcept ImportError:\n    import p.b\n", {"p.a", "p.b"}),
], ids=["absolute", "from-module", "from-name", "relative", "in-function", "type-checking",
        "try"])
def test_imported_modules(source: str, expected: set[str]) -> None:
    assert imported_modules(source, "p.x", MODULES) == expected


def test_relative_imports_in_a_package_init() -> None:
    assert imported_modules("from .c import f\nfrom .. import a\n", "p.sub", MODULES,
                            is_package=True) == {"p.sub.c", "p.a"}


@pytest.mark.parametrize(("graph", "expected"), [
    ({"p": {"p.a", "p.b"}, "p.a": {"p.b"}, "p.b": set()}, []),
    ({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}, [["p.a", "p.b", "p.c", "p.a"]]),
    ({"p.a": {"p.a"}}, [["p.a", "p.a"]]),
], ids=["layered", "three-cycle", "self"])
def test_find_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert find_cycles(graph) == expected


def test_a_cycle_in_files_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.core import Base\n")
    (package / "core.py").write_text("from pkg.kinds import Kind\n\nclass Base: ...\n")
    (package / "kinds.py").write_text("from pkg.core import Base\n\nclass Kind(Base): ...\n")
    graph = import_graph({p: p.read_text() for p in sorted(package.glob("*.py"))}, tmp_path)
    assert find_cycles(graph) == [["pkg.core", "pkg.kinds", "pkg.core"]]
