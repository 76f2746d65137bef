"""The livefuse package's import graph has no cycle.

Only imports that run when a module is imported count: module-level `import` and `from ... import`
statements, including those under a module-level `if`/`try` (but not under `if TYPE_CHECKING:`, which
never runs) and leaving out imports inside functions, which run later, on first use. Read with `ast`,
so nothing is imported to check it. A cycle is reported as the modules around it, in import order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import livefuse

ROOT = Path(livefuse.__file__).resolve().parent
PACKAGE = "livefuse"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its name, read from its __init__.py)."""
    names: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run at import time, in order."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _import_statements(node.body)
            found += _import_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                found += _import_statements(part)
        elif isinstance(node, ast.With):
            found += _import_statements(node.body)
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path], every: bool = False) -> list[str]:
    """The package modules `name` imports at import time, in order, without repeats.

    With `every`, all its imports count: inside functions and under `if TYPE_CHECKING:` too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    statements = ([n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)] if every
                  else _import_statements(tree.body))
    for node in statements:
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            targets.append(sub if sub in modules else base)
    seen: list[str] = []
    for target in targets:
        if target in modules and target != name and target not in seen:
            seen.append(target)
    return seen


def import_graph(every_under: str = "") -> dict[str, list[str]]:
    """Module -> the modules it imports; modules under `every_under` with all their imports (see `imports_of`)."""
    modules = module_names()
    return {name: imports_of(name, path, modules, every=bool(every_under) and name.startswith(every_under))
            for name, path in modules.items()}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), as a path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the package's size
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_around(sorted(group)[0], group, graph) for group in groups]


def _path_around(start: str, group: set[str], graph: dict[str, list[str]]) -> list[str]:
    """The shortest import path from `start` back to itself inside `group` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt not in group:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


def test_the_checker_finds_a_cycle_and_skips_what_does_not_run_at_import(tmp_path: Path) -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    (tmp_path / "m.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import livefuse.errors\n"
        "if TYPE_CHECKING:\n    from livefuse.engine.core import Engine\n"
        "try:\n    from livefuse.frame import Frame\nexcept ImportError:\n    pass\n"
        "def later():\n    from livefuse.pipeline import Pipeline\n"
    )
    modules = module_names()
    assert imports_of("livefuse.m", tmp_path / "m.py", modules) == ["livefuse.errors", "livefuse.frame"]


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "livefuse.engine.session" in graph["livefuse.engine.core"]  # the graph is read, not empty
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_engine_has_no_cycle_even_through_lazy_or_type_checking_imports() -> None:
    """In engine/ not even a deferred import closes a loop: the session does not know the engine class,
    the registry does not know sessions, and `ModelSource` and the provider choice stand on their own."""
    graph = import_graph(every_under="livefuse.engine")
    engine = {name: [t for t in targets if t.startswith("livefuse.engine")]
              for name, targets in graph.items() if name.startswith("livefuse.engine")}
    assert "livefuse.engine.registry" in engine["livefuse.engine.core"]  # core's lazy import is counted here
    found = cycles(engine)
    assert not found, "import cycles in engine/: " + "; ".join(" -> ".join(cycle) for cycle in found)
