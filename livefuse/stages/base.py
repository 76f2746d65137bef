"""The contract every filter stage follows, and the typed parameters presets give it.

A stage is built once per preset with validated parameters and a `StageContext`
(the engine, the model registry, the frame size), then `process` is called from
a worker thread for every frame, in capture order. A stage may keep state across
frames (tracking, smoothing): the pipeline never runs two frames through the same
stage at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from livefuse.frame import Frame

MAX_STRING_LENGTH = 1024  # a string parameter's default limit: a path, a colour or a name, never a document
MAX_LIST_LENGTH = 64


@dataclass(frozen=True)
class Param:
    """One preset parameter of a stage: its type, default and allowed range or choices.

    `kind="file"` declares a string that names a file: a preset file may name any file (relative to
    its folder, or absolute), while the control API may only name one inside the preset's folder
    (see `livefuse.presets.check_api_file`).
    """

    name: str
    type: type  # int, float, str, bool, list
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    live: bool = True  # may change while streaming (PATCH /api/preset/params)
    kind: Literal["value", "file"] = "value"
    max_length: int = MAX_STRING_LENGTH  # strings: at most this many characters; lists: MAX_LIST_LENGTH items

    def describe(self) -> str:
        """What is allowed, for error messages and `presets show`."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is str:
            what = "a file path" if self.kind == "file" else "a string"
            return f"{what} of at most {self.max_length} characters"
        kind = {int: "an integer", float: "a finite number", bool: "true or false",
                list: f"a list of at most {MAX_LIST_LENGTH} numbers, strings or booleans"}.get(
                    self.type, self.type.__name__)
        if self.min is not None and self.max is not None:
            return f"{kind} from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"{kind} >= {self.min:g}"
        if self.max is not None:
            return f"{kind} <= {self.max:g}"
        return kind


@dataclass
class StageContext:
    """What a stage may use when it is built."""

    engine: Any  # livefuse.engine.Engine
    size: tuple[int, int]  # frame (width, height)
    fps: float
    preset_dir: Any = None  # pathlib.Path of the preset file, to resolve relative paths
    shared: dict[str, Any] = field(default_factory=dict)  # state shared between stages of one chain


class Stage(Protocol):
    """A filter step. `process` changes `frame.image` (or `frame.faces`) in place."""

    name: str

    def process(self, frame: Frame) -> None: ...

    def update(self, params: dict[str, Any]) -> None:
        """Apply live parameter changes (already validated)."""

    # Optional: `steps() -> list[tuple[str, Callable[[Frame], None]]]` splits `process` into steps that
    # take turns separately (see livefuse/chain.py), so consecutive frames overlap inside one stage.

    def close(self) -> None: ...


StageFactory = Callable[[dict[str, Any], StageContext], Stage]


@dataclass(frozen=True)
class StageSpec:
    """A stage type as presets name it."""

    type: str
    summary: str
    params: tuple[Param, ...]
    factory: StageFactory
    models: tuple[str, ...] = ()  # model names the stage may need (see models/manifest.toml)
    # A privacy stage (anonymise): when it, or any stage before it, fails on a frame or is switched off,
    # the chain covers the whole frame instead of passing it through (see livefuse/chain.py).
    guards_privacy: bool = False


def preset_file(text: str, preset_dir: Path | str | None) -> Path:
    """A file a preset names: `~` expanded, and relative to the preset's folder when not absolute."""
    path = Path(text).expanduser()
    return Path(preset_dir) / path if not path.is_absolute() and preset_dir is not None else path


IMPLEMENTATIONS = ("auto", "graph", "cpu")


def choose_implementation(path: str, provider: str) -> str:
    """"graph" (an ONNX graph: frames stay on a GPU) or "cpu" (OpenCV, faster on the CPU provider).

    "auto" picks by the engine's provider; "graph" and "cpu" force one (tests and benchmarks).
    """
    if path not in IMPLEMENTATIONS:
        raise ValueError(f"path must be auto, graph or cpu, not {path!r}")
    if path != "auto":
        return path
    return "cpu" if provider == "CPUExecutionProvider" else "graph"
