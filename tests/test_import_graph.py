"""The livefuse package's import graph has no cycle, and its floors point one way.

Every import counts: module level, inside functions (they run later, on first use) and under
`if TYPE_CHECKING:` (a type still ties the modules together). Read with `ast`, so nothing is imported
to check it. A cycle is reported as the modules around it, in import order; a floor violation as the
importing module, the imported one and their floors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import livefuse

ROOT = Path(livefuse.__file__).resolve().parent
PACKAGE = "livefuse"

# The floors, lowest first: a module imports only from its own floor or the ones below it. Entries are
# modules or packages (with everything under them) named without "livefuse."; "" is the package itself.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What every floor may use: the frame, the errors, paths and small utilities that import nothing above.
    (
        "core",
        (
            "",
            "errors",
            "frame",
            "paths",
            "transfers",
            "stats",
            "faults",
            "slot",
            "threads",
            "redact",
            "logs",
            "yuv",
            "memory",
            "devices",
            "loop_priority",
            "status",
        ),
    ),
    # Sessions, providers, the model registry; the Triton client is one kind of session.
    ("engine", ("engine", "triton")),
    # The stage contract: above the engine, because a stage's context carries the engine it is built on.
    ("contract", ("stage",)),
    # Detectors, trackers, landmarks, segmentation and the model names they load.
    ("vision", ("vision",)),
    ("faces", ("faces",)),
    # Device frames and the graphs that touch them.
    ("device", ("device",)),
    ("stages", ("stages",)),
    # A preset's chain between a source and its outputs, with the audio beside it.
    ("flow", ("pipeline", "chain", "outputs", "sinks", "sources", "audio", "capture", "sleep", "presets")),
    # What assembles and runs the flow: a preset into a chain, the running process, the benchmarks.
    ("wiring", ("wiring", "runtime", "daemon", "bench")),
    ("web", ("web",)),
    ("commands", ("commands", "cli", "__main__", "doctor")),
)


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its name, read from its __init__.py)."""
    names: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """The package modules `name` imports anywhere in its source, in order, without repeats."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
            continue
        if not isinstance(node, ast.ImportFrom):
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


def import_graph() -> dict[str, list[str]]:
    """Module -> the package modules it imports (see `imports_of`)."""
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def floor_of(name: str) -> int | None:
    """The index in FLOORS of the floor `name` stands on (the longest entry that holds it), or None."""
    key = name.removeprefix(PACKAGE).removeprefix(".")
    best: tuple[int, int] | None = None  # (entry length, floor)
    for floor, (_, entries) in enumerate(FLOORS):
        for entry in entries:
            if (key == entry or (entry and key.startswith(entry + "."))) and (best is None or len(entry) > best[0]):
                best = (len(entry), floor)
    return None if best is None else best[1]


def upward_imports(graph: dict[str, list[str]]) -> list[str]:
    """Each import from a lower floor to a higher one, as "importer (floor) -> imported (floor)"."""
    found: list[str] = []
    for name in sorted(graph):
        low = floor_of(name)
        for target in graph[name]:
            high = floor_of(target)
            if low is not None and high is not None and high > low:
                found.append(f"{name} ({FLOORS[low][0]}) -> {target} ({FLOORS[high][0]})")
    return found


def circles(graph: dict[str, list[str]]) -> list[set[str]]:
    """The strongly connected groups of modules (Tarjan): each member imports every other, perhaps indirectly."""
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
    return groups


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules, as a path a -> ... -> a."""
    return [_path_around(sorted(group)[0], group, graph) for group in circles(graph)]


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


def test_the_checker_finds_a_cycle_and_counts_every_import(tmp_path: Path) -> None:
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
    assert imports_of("livefuse.m", tmp_path / "m.py", modules) == [
        "livefuse.errors",
        "livefuse.engine.core",
        "livefuse.frame",
        "livefuse.pipeline",
    ]


def test_the_floors_name_each_module_once_and_the_checker_finds_an_upward_import() -> None:
    unplaced = [name for name in module_names() if floor_of(name) is None]
    assert unplaced == [], "modules on no floor (add them to FLOORS): " + ", ".join(unplaced)
    entries = [entry for _, names in FLOORS for entry in names]
    assert len(entries) == len(set(entries))
    assert upward_imports({"livefuse.frame": ["livefuse.engine.core"], "livefuse.engine.core": ["livefuse.frame"]}) == [
        "livefuse.frame (core) -> livefuse.engine.core (engine)"
    ]


def test_the_package_import_graph_has_no_cycle_even_through_deferred_or_type_checking_imports() -> None:
    graph = import_graph()
    assert "livefuse.engine.registry" in graph["livefuse.engine.core"]  # core's lazy import is counted
    found = [(" -> ".join(_path_around(sorted(group)[0], group, graph)), sorted(group)) for group in circles(graph)]
    assert not found, "import cycles:\n" + "\n".join(
        f"{cycle}  (the circle: {', '.join(group)})" for cycle, group in found
    )


def test_the_floors_import_only_downward() -> None:
    """core < engine < contract < vision < faces < device < stages < flow < wiring < web < commands."""
    found = upward_imports(import_graph())
    assert not found, f"{len(found)} upward imports:\n" + "\n".join(found)
