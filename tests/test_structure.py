"""The structure the developers' guide asks for, checked on the source: declared capabilities, typed frames."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livefuse.frame import Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register

PACKAGE = Path(__file__).resolve().parent.parent / "livefuse"
# Where frames and stages flow: capabilities are read off the base classes there, never probed.
FLOW = [
    "chain.py",
    "pipeline.py",
    "wiring.py",
    "runtime.py",
    "commands/run.py",
    "commands/bench.py",
    "web/api.py",
    "web/metrics.py",
    "web/signalling.py",
    "bench",
    "stages",
    "sources",
    "sinks",
]
PROBE = re.compile(r"\b(getattr|hasattr)\(")


def flow_files() -> list[Path]:
    files: list[Path] = []
    for name in FLOW:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def test_the_flow_declares_capabilities_and_never_probes_for_them() -> None:
    probes = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in flow_files()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PROBE.search(line)
    ]
    assert len(flow_files()) > 20
    assert probes == []


def test_no_shipped_stage_passes_data_in_frame_meta() -> None:
    uses = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "frame.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.meta\b", line)
    ]
    assert uses == []


class Forgetful(Stage):
    """A stage without close(): it would leak its models on every preset switch."""

    name = "forgetful"

    def __init__(self, params: dict[str, object], context: StageContext) -> None:
        pass

    def process(self, frame: Frame) -> None:
        pass

    def update(self, params: dict[str, object]) -> None:
        pass


def test_a_stage_without_close_is_refused_when_registered() -> None:
    with pytest.raises(TypeError, match="Forgetful does not implement close"):
        register(StageSpec("forgetful", "no close (tests)", (Param("x", int, 0),), Forgetful))
    with pytest.raises(TypeError, match="abstract"):
        Forgetful({}, None)  # type: ignore[abstract, arg-type]


FORGETFUL_FACTORY = """
from typing import Any

from livefuse.frame import Frame
from livefuse.stage import Stage, StageContext


class Forgetful(Stage):
    name = "forgetful"

    def process(self, frame: Frame) -> None:
        pass

    def update(self, params: dict[str, Any]) -> None:
        pass


def make_forgetful(params: dict[str, Any], context: StageContext) -> Stage:
    return Forgetful()
"""


def test_mypy_refuses_a_factory_that_builds_a_stage_without_close(tmp_path: Path) -> None:
    """What `make lint` runs on livefuse/: a stage factory building a class that lacks close() is an error."""
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    assert mypy is not None, "mypy is part of the test extra (pyproject.toml)"
    snippet = tmp_path / "forgetful.py"
    snippet.write_text(FORGETFUL_FACTORY)
    root = PACKAGE.parent
    run = subprocess.run(
        [mypy, "--follow-imports=silent", "--config-file", str(root / "pyproject.toml"), str(snippet)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'Cannot instantiate abstract class "Forgetful" with abstract attribute "close"' in run.stdout, run.stdout


def layout_rows() -> list[str]:
    """The first cells of the README's layout table (the paths it describes)."""
    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return [row.split(" | ", 1)[0] for row in rows]


def test_the_readme_layout_table_matches_the_tree() -> None:
    """Every path the table names exists (a bare name is looked for beside the row's first path, in livefuse/,
    then at the top), and every module and package at the top of livefuse/ has a row."""
    root = PACKAGE.parent
    named: set[str] = set()
    for cell in layout_rows():
        paths = re.findall(r"`([^`]+)`", cell)
        first = paths[0].rstrip("/")
        for path in (p.rstrip("/") for p in paths):
            places = [path] if "/" in path else [f"{first.rsplit('/', 1)[0]}/{path}", f"livefuse/{path}", path]
            found = [place for place in places if (root / place).exists()]
            assert found, f"README layout names {path}, which is not in the tree"
            named.add(found[0])
    top = {
        f"livefuse/{p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    missing = sorted(top - named)
    assert not missing, f"the README's layout table has no row for {missing}"
