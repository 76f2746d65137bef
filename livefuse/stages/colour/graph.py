"""The colour stage as one ONNX graph on the engine: the path on GPU providers (or forced with path="graph").

The frame stays on the device next to the other models. The sliders are graph inputs (a live change
costs nothing); the LUT is a GridSample over the LUT volume (opset 20 trilinear 3D sampling), and the
graph without a LUT leaves that node out. The graph is written with the engine's one graph builder.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from livefuse.engine.graph_builder import FLOAT, UINT8, GraphBuilder
from livefuse.frame import Frame
from livefuse.stage import DevicePath, StageContext
from livefuse.stages.colour.common import ColourStage, affine
from livefuse.stages.colour.cube import identity_cube


def lut_volume(cube: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """A .cube LUT [b, g, r, rgb] -> GridSample input [1, 3 (b, g, r out), D=r, H=g, W=b], in 0..255 + 0.5.

    With this layout the grid's (x, y, z) = (b, g, r) is simply the BGR pixel, so no channel shuffle is
    needed per pixel. `strength` mixes the LUT with the identity on the lattice, which trilinear
    interpolation reproduces exactly, so it costs nothing per pixel; so do the scale and rounding offset.
    """
    mixed = identity_cube(cube.shape[0]) + (cube - identity_cube(cube.shape[0])) * strength
    bgr_out = mixed[..., ::-1] * 255.0 + 0.5
    return np.ascontiguousarray(np.transpose(bgr_out, (3, 2, 1, 0))[None], dtype=np.float32)


def build_graph(with_lut: bool) -> onnx.ModelProto:
    """uint8 BGR [H, W, 3], matrix [3, 3], offset [3] (+ LUT volume) -> uint8 BGR [H, W, 3].

    Without a LUT the matrix and offset come pre-scaled to 0..255 (plus 0.5 for rounding); with one, to
    GridSample's -1..1 grid range.
    """
    b = GraphBuilder("livefuse_colour_lut" if with_lut else "livefuse_colour")
    image = b.input("image", UINT8, ["height", "width", 3])
    x = b.op("Cast", image, to=FLOAT)
    y = b.op("Add", b.op("MatMul", x, b.input("matrix", FLOAT, [3, 3])), b.input("offset", FLOAT, [3]))
    if with_lut:
        lut = b.input("lut", FLOAT, [1, 3, "n", "n", "n"])
        grid_range = b.op("Clip", y, b.const(-1.0), b.const(1.0))
        hw = b.op("Slice", b.op("Shape", image), b.ints([0]), b.ints([2]))
        grid = b.op("Reshape", grid_range, b.op("Concat", b.ints([1, 1]), hw, b.ints([3]), axis=0))
        sampled = b.op("GridSample", lut, grid, mode="linear", align_corners=1, padding_mode="border")
        chw = b.op("Reshape", sampled, b.op("Concat", b.ints([3]), hw, axis=0))
        y = b.op("Transpose", chw, perm=[1, 2, 0])
    b.op("Cast", b.op("Clip", y, b.const(0.0), b.const(255.0)), out="output", to=UINT8)
    b.output("output", UINT8, ["height", "width", 3])
    return b.build(build_graph.__doc__ or "", full_check=True)


def graph_inputs(params: dict[str, Any], with_lut: bool) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset for uint8 pixel rows, scaled for the graph's output range (see build_graph)."""
    matrix, offset = affine(params)
    if with_lut:  # 0..255 in -> -1..1 grid
        return (matrix * (2.0 / 255.0)).astype(np.float32), (offset * 2.0 - 1.0).astype(np.float32)
    return matrix, (offset * 255.0 + 0.5).astype(np.float32)  # 0..255 in -> 0..255 out, rounded by Cast


class GraphColour(ColourStage):
    """Grades with the colour graph: one session with a LUT, one without, made when first needed."""

    path = "graph"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        super().__init__(params, context)
        self._sessions: dict[bool, Any] = {}
        self._lut: np.ndarray | None = None
        self._matrix, self._offset = graph_inputs(self.params, False)
        self.update({})
        if context.transfers is not None:
            self.device = ColourOnDevice(self)

    @property
    def provider(self) -> str:
        """The provider the graph's session really got (the CPU one when a GPU provider failed)."""
        return str(self.session().provider)

    def session(self) -> Any:
        """The session the current settings run on (with or without the LUT)."""
        return self._session(self._lut is not None)

    def _session(self, with_lut: bool) -> Any:
        if with_lut not in self._sessions:
            self._sessions[with_lut] = self.engine.session(build_graph(with_lut))
        return self._sessions[with_lut]

    def _apply(self, params: dict[str, Any], cube: np.ndarray | None) -> None:
        """Sliders and LUT strength are graph inputs: nothing is rebuilt."""
        self._lut = lut_volume(cube, params["lut_strength"]) if cube is not None else None
        self._matrix, self._offset = graph_inputs(params, cube is not None)
        self._session(cube is not None)

    def graph_feeds(self) -> dict[str, np.ndarray]:
        """The graph's inputs besides the image: the slider map, and the LUT volume when there is one."""
        feeds = {"matrix": self._matrix, "offset": self._offset}
        if self._lut is not None:
            feeds["lut"] = self._lut
        return feeds

    def process(self, frame: Frame) -> None:
        feeds = {"image": np.ascontiguousarray(frame.image), "matrix": self._matrix, "offset": self._offset}
        if self._lut is not None:
            feeds["lut"] = self._lut
        out = self.session().run(feeds)["output"]
        frame.image = np.array(out, copy=True)  # engine outputs are reused two runs later

    def close(self) -> None:
        self._sessions.clear()


class ColourView(Protocol):
    """What the device path reads of the graph stage: its session and its inputs besides the image."""

    def session(self) -> Any: ...

    def graph_feeds(self) -> dict[str, np.ndarray]: ...


class ColourOnDevice(DevicePath):
    """The colour graph on the device frame: the frame is bound where it is, the graded one stays there.

    The sliders and the LUT volume are uploaded when they change (kept as OrtValues on the device), so a
    frame carries no parameter uploads.
    """

    def __init__(self, stage: ColourView) -> None:
        self.stage = stage
        self._uploaded: dict[str, tuple[np.ndarray, ort.OrtValue]] = {}

    def _on_device(self, name: str, value: np.ndarray, device: str) -> ort.OrtValue:
        kept = self._uploaded.get(name)
        if kept is None or kept[0] is not value:
            kept = (value, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), device, 0))
            self._uploaded[name] = kept
        return kept[1]

    def run(self, frame: Frame) -> None:
        stage = self.stage
        session = stage.session()
        feeds: dict[str, Any] = {
            name: self._on_device(name, value, session.device) for name, value in stage.graph_feeds().items()
        }
        feeds["image"] = frame.device_image
        frame.device_image = session.run_device(feeds)["output"]
