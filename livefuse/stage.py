"""The contract every filter stage follows (the `Stage` base class), and the typed parameters presets give it.

A stage is built once per preset with validated parameters and a `StageContext`
(the engine, the model registry, the frame size), then `process` is called from
a worker thread for every frame, in capture order. A stage may keep state across
frames (tracking, smoothing): the pipeline never runs two frames through the same
stage at once. What a stage can do beyond that (steps, privacy, a device path,
lifecycle hooks, taking a source face) it declares on its class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np

from livefuse.engine.loader import open_model
from livefuse.frame import Frame
from livefuse.paths import preset_file

if TYPE_CHECKING:
    from livefuse.engine import Engine
    from livefuse.engine.session import Session
    from livefuse.transfers import TransferCounter

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
    # lists only: the values each item may take (each at most once), or the item count with min/max per item
    items: Sequence[Any] | None = None
    length: int | None = None

    def describe(self) -> str:
        """What is allowed, for error messages and `presets show`."""
        if self.items is not None:
            return "a list of any of " + ", ".join(repr(c) for c in self.items) + ", each at most once"
        if self.length is not None:
            return f"a list of {self.length} numbers from {self.min:g} to {self.max:g}"
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is str:
            what = "a file path" if self.kind == "file" else "a string"
            return f"{what} of at most {self.max_length} characters"
        kind = {
            int: "an integer",
            float: "a finite number",
            bool: "true or false",
            list: f"a list of at most {MAX_LIST_LENGTH} numbers, strings or booleans",
        }.get(self.type, self.type.__name__)
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

    engine: Engine
    size: tuple[int, int]  # frame (width, height)
    fps: float
    preset_dir: Path | None = None  # the preset file's folder, to resolve relative paths
    # "auto", "graph" or "cpu": the implementation the stages with two use (tests and benchmarks force one).
    # "graph" (what "auto" picks on a GPU provider) also keeps the chain's frames on the device.
    implementation: str = "auto"
    # Set by build_chain when the chain's frames stay on the device: the stages then build their device
    # paths (`Stage.device`) and count the face-region copies they make here.
    transfers: TransferCounter | None = None

    def model(self, spec: str, *, where: str = "model", default: str = "") -> Session:
        """A session for a model parameter (a file, relative to the preset's folder, or a manifest name;
        `default` when empty): the one loader, `engine/loader.py`. `where` names the parameter in errors."""
        return open_model(self.engine, spec, where=where, preset_dir=self.preset_dir, default=default)

    def file(self, text: str) -> Path:
        """A file the preset names: `~` expanded, relative to the preset's folder when not absolute."""
        return preset_file(text, self.preset_dir)


Step = tuple[str, Callable[[Frame], None]]  # (label, function): one unit that takes its own turns in the chain


class DevicePath(ABC):
    """How a stage works on a frame that stays on the device (one upload after capture, one download at the end).

    A stage offers one by setting its `device` attribute to an instance in `__init__` when
    `StageContext.transfers` is set (the chain keeps its frames on the device); `device` None means the
    stage works on `frame.image` in host memory, and the chain counts the full-frame copies that costs
    against it (see livefuse/device/steps.py).
    """

    @abstractmethod
    def run(self, frame: Frame) -> None:
        """Read and write `frame.device_image` (an OrtValue on the device) in place of `Stage.process`."""


class Stage(ABC):
    """A filter step. What it can do is declared here, so the chain, the pipeline and the API never probe.

    - `process` changes `frame.image` (or `frame.faces`) in place; `update` applies live parameter
      changes (already validated); `close` releases models and buffers. All three are abstract: a stage
      that holds nothing to release says so with an empty `close`.
    - `steps()` splits `process` into steps that take turns separately (see livefuse/chain.py), so
      consecutive frames overlap inside one stage. The default is one step: `process` itself.
    - `guards_privacy` (class attribute): a privacy stage (anonymise). When it, or any stage before it,
      fails on a frame or is switched off, the chain covers the whole frame instead of passing it through.
    - `device`: the stage's device path, or None (see `DevicePath`).
    - `on_source_reopened()`: the source was lost and reopened, so the next frame may show another scene;
      a stage that follows things over time (trackers, smoothing) forgets them here. The chain calls it
      on the stage's worker turn, before the stage sees the first frame captured after the reopen.
    """

    name: str
    guards_privacy: ClassVar[bool] = False
    device: DevicePath | None = None

    @abstractmethod
    def process(self, frame: Frame) -> None:
        """Filter one frame in place (called in capture order, never for two frames at once)."""

    @abstractmethod
    def update(self, params: dict[str, Any]) -> None:
        """Apply live parameter changes (already validated)."""

    @abstractmethod
    def close(self) -> None:
        """Release models, sessions and buffers (the chain calls it once, when it is replaced or stops)."""

    def steps(self) -> list[Step]:
        """The units that take turns in the chain: by default one, `process`."""
        return [("", self.process)]

    def on_source_reopened(self) -> None:  # noqa: B027 - optional: most stages keep no scene state
        """The source was reopened: by default nothing to forget."""

    def describe(self) -> dict[str, Any]:
        """What the stage reports of itself in status, beside its parameters."""
        return {}

    def feeds_privacy(self) -> None:  # noqa: B027 - optional: only what a privacy stage relies on cares
        """A stage that guards privacy comes after this one in the chain (called once, when the chain is
        built): a stage whose settings trade safety for speed (the face stage's scan) must choose safety."""


class TakesSourceFace(Stage):
    """A stage that paints a source identity onto faces (swap): POST /api/source-face goes to it."""

    @abstractmethod
    def set_source_face(self, image_bgr: np.ndarray) -> None:
        """Use the largest face of this BGR image as the identity (may run a model; raises UserError)."""


StageFactory = Callable[[dict[str, Any], StageContext], Stage]


@dataclass(frozen=True)
class StageSpec:
    """A stage type as presets name it. Whether it guards privacy is the stage class's own declaration."""

    type: str
    summary: str
    params: tuple[Param, ...]
    factory: StageFactory
    models: tuple[str, ...] = ()  # model names the stage may need (see models/manifest.toml)
    # keys an older livefuse took, read as today's: (the keys rewritten, what they now say); None: none
    upgrade: Callable[[dict[str, Any]], tuple[dict[str, Any], str] | None] | None = None


IMPLEMENTATIONS = ("auto", "graph", "cpu")


def choose_implementation(path: str, provider: str) -> str:
    """ "graph" (an ONNX graph: frames stay on a GPU) or "cpu" (OpenCV, faster on the CPU provider).

    "auto" picks by the engine's provider; "graph" and "cpu" force one (tests and benchmarks).
    """
    if path not in IMPLEMENTATIONS:
        raise ValueError(f"path must be auto, graph or cpu, not {path!r}")
    if path != "auto":
        return path
    return "cpu" if provider == "CPUExecutionProvider" else "graph"


class GraphOnProvider(Protocol):
    """A graph implementation: the provider its session really got (a GPU one may have fallen back)."""

    @property
    def provider(self) -> str: ...

    def close(self) -> None: ...


CpuT = TypeVar("CpuT", bound=Stage)
GraphT = TypeVar("GraphT", bound=GraphOnProvider)


def build_implementation(
    path: str, context: StageContext, cpu: Callable[[], CpuT], graph: Callable[[], GraphT]
) -> CpuT | GraphT:
    """A stage with two implementations, built for this engine: "auto" (the graph unless the engine runs on the
    CPU provider, or the graph's own session fell back to it: OpenCV is faster there), or "graph" / "cpu"
    forced (tests and benchmarks)."""
    path = context.implementation if path == "auto" else path
    if choose_implementation(path, context.engine.provider) == "cpu":
        return cpu()
    built = graph()
    if path == "auto" and built.provider == "CPUExecutionProvider":
        built.close()
        del built  # its model and session are freed before the CPU path loads its own
        return cpu()
    return built
