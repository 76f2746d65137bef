"""The `colour` stage: brightness, contrast, saturation, temperature and a 3D LUT.

On a GPU provider the grade is one ONNX graph on the engine, so the frame stays on the device next to
the other models. The sliders are graph inputs (a live change costs nothing); the LUT is a GridSample
over the LUT volume (opset 20 trilinear 3D sampling), and the graph without a LUT leaves that node out.

On the CPU provider that graph is slow (GridSample alone 70-130 ms a 1280x720 frame on two cores), so
the same grade runs in OpenCV instead (`benchmarks/colour_paths.py` measures both): the sliders are one
cv2.transform (a 3x4 affine on uint8, which also clips), and the LUT, with `lut_strength` mixed in, is
baked into a table of every 8-bit BGR colour, looked up by the pixel's bytes (see `lut_table`).

Order, per pixel, in 0..1: temperature gains, brightness, contrast about mid-grey, saturation about
Rec.601 luma (together one affine map: a 3x3 MatMul), clip, then the LUT mixed in by `lut_strength`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from livefuse.engine.providers import CPU
from livefuse.errors import PresetError
from livefuse.frame import Frame
from livefuse.stages.base import (
    DevicePath,
    Param,
    Stage,
    StageContext,
    StageSpec,
    choose_implementation,
    preset_file,
)
from livefuse.stages.cube import identity_cube, load_cube
from livefuse.stages.registry import register

OPSET = 20
LUMA_BGR = (0.114, 0.587, 0.299)
TEMPERATURE_GAIN = 0.15  # temperature 1.0 = red x1.15, blue x0.85
BRIGHTNESS_RANGE = 0.3  # brightness 1.0 adds 0.3 (of full scale)


def lut_volume(cube: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """A .cube LUT [b, g, r, rgb] -> GridSample input [1, 3 (b, g, r out), D=r, H=g, W=b], in 0..255 + 0.5.

    With this layout the grid's (x, y, z) = (b, g, r) is simply the BGR pixel, so no channel shuffle is
    needed per pixel. `strength` mixes the LUT with the identity on the lattice, which trilinear
    interpolation reproduces exactly, so it costs nothing per pixel; so do the scale and rounding offset.
    """
    mixed = identity_cube(cube.shape[0]) + (cube - identity_cube(cube.shape[0])) * strength
    bgr_out = mixed[..., ::-1] * 255.0 + 0.5
    return np.ascontiguousarray(np.transpose(bgr_out, (3, 2, 1, 0))[None], dtype=np.float32)


def affine(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The slider adjustments as one affine map on BGR row vectors in 0..1: y = x @ matrix + offset.

    Temperature gains, brightness, contrast about mid-grey and saturation about luma are all affine,
    so their composition is one 3x3 matrix and an offset: one MatMul per pixel instead of ten ops.
    """
    t, b, c, s = params["temperature"], params["brightness"], params["contrast"], params["saturation"]
    gains = np.diag([1.0 - TEMPERATURE_GAIN * t, 1.0, 1.0 + TEMPERATURE_GAIN * t])
    luma = np.array(LUMA_BGR)[:, None]
    sat = s * np.eye(3) + (1.0 - s) * luma @ np.ones((1, 3))  # x -> luma + (x - luma) * s
    matrix = gains * c @ sat
    offset = ((BRIGHTNESS_RANGE * b - 0.5) * c + 0.5) * np.ones((1, 3)) @ sat
    return matrix.astype(np.float32), offset.reshape(3).astype(np.float32)


def transform_matrix(params: dict[str, Any]) -> np.ndarray:
    """The slider map as a cv2.transform matrix [3, 4] on uint8 BGR pixels (column vectors, 0..255)."""
    matrix, offset = affine(params)
    return np.hstack([matrix.T, offset[:, None] * 255.0]).astype(np.float32)


def lut_table(cube: np.ndarray, strength: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """The LUT mixed by `strength`, evaluated at every 8-bit colour: uint32 [2**24], index and value BGR0.

    A pixel's bytes b, g, r, 0 read as a little-endian uint32 (every platform livefuse runs on) are its
    index, so a frame is graded by one gather. It is exact (trilinear, then rounded) for integer inputs,
    where a 7-bit table would be up to 2 levels off and a 6-bit one 3. Trilinear interpolation is
    separable, so it is built one axis at a time (blue on the lattice, then green and red as weighted
    sums of two rows or planes in OpenCV): 30-50 ms, paid only when the LUT or its strength changes.
    The table takes 64 MiB, reused from one build to the next.
    """
    n = cube.shape[0]
    ident = identity_cube(n)
    bgr0 = np.zeros((n, n, n, 4), np.float32)  # [b, g, r, (b, g, r, 0) out] in 0..255
    bgr0[..., :3] = (ident + (cube - ident) * strength)[..., ::-1] * 255.0  # mixed on the lattice: exact
    pos = np.arange(256) * ((n - 1) / 255.0)
    lower = np.minimum(pos.astype(np.int64), n - 2)
    frac = pos - lower
    weights = np.zeros((256, n), np.float32)
    weights[np.arange(256), lower] = 1.0 - frac
    weights[np.arange(256), lower + 1] += frac
    along_b = np.einsum("Bb,bgrc->rgBc", weights, bgr0)  # [r, g, B, c]: small
    along_gb = np.empty((n, 256, 256, 4), np.float32)  # [r, G, B, c]
    for green in range(256):
        k, f = int(lower[green]), float(frac[green])
        cv2.addWeighted(along_b[:, k], 1.0 - f, along_b[:, k + 1], f, 0.0, dst=along_gb[:, green])
    table = out if out is not None else np.empty(1 << 24, np.uint32)
    planes = table.view(np.uint8).reshape(256, 256, 256, 4)  # [R, G, B, (b, g, r, 0)]
    for red in range(256):  # rounds to uint8 in place: no 200 MB float intermediate
        k, f = int(lower[red]), float(frac[red])
        cv2.addWeighted(along_gb[k], 1.0 - f, along_gb[k + 1], f, 0.0, dst=planes[red], dtype=cv2.CV_8U)
    return table


def build_graph(with_lut: bool) -> onnx.ModelProto:
    """uint8 BGR [H, W, 3], matrix [3, 3], offset [3] (+ LUT volume) -> uint8 BGR [H, W, 3].

    Without a LUT the matrix and offset come pre-scaled to 0..255 (plus 0.5 for rounding); with one, to
    GridSample's -1..1 grid range.
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    x = op("Cast", ["image"], "x", to=TensorProto.FLOAT)
    y = op("Add", [op("MatMul", [x, "matrix"], "xm"), "offset"], "y")
    if with_lut:
        grid_range = op("Clip", [y, const("m1", -1.0), const("p1", 1.0)], "yc")
        shape = op("Shape", ["image"], "shape")
        hw = op("Slice", [shape, const("s0", [0], np.int64), const("s2", [2], np.int64)], "hw")
        grid_shape = op("Concat", [const("one_one", [1, 1], np.int64), hw, const("three", [3], np.int64)],
                        "grid_shape", axis=0)
        grid = op("Reshape", [grid_range, grid_shape], "grid")
        sampled = op("GridSample", ["lut", grid], "sampled", mode="linear", align_corners=1, padding_mode="border")
        chw = op("Reshape", [sampled, op("Concat", [const("three_b", [3], np.int64), hw], "chw_shape", axis=0)],
                 "chw")
        y = op("Transpose", [chw], "graded", perm=[1, 2, 0])
    y = op("Clip", [y, const("zero", 0.0), const("max8", 255.0)], "yc8")
    op("Cast", [y], "output", to=TensorProto.UINT8)
    inputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["height", "width", 3]),
              helper.make_tensor_value_info("matrix", TensorProto.FLOAT, [3, 3]),
              helper.make_tensor_value_info("offset", TensorProto.FLOAT, [3])]
    if with_lut:
        inputs.append(helper.make_tensor_value_info("lut", TensorProto.FLOAT, [1, 3, "n", "n", "n"]))
    graph = helper.make_graph(nodes, "livefuse_colour_lut" if with_lut else "livefuse_colour", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.UINT8, ["height", "width", 3])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="livefuse")
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def graph_inputs(params: dict[str, Any], with_lut: bool) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset for uint8 pixel rows, scaled for the graph's output range (see build_graph)."""
    matrix, offset = affine(params)
    if with_lut:  # 0..255 in -> -1..1 grid
        return (matrix * (2.0 / 255.0)).astype(np.float32), (offset * 2.0 - 1.0).astype(np.float32)
    return matrix, (offset * 255.0 + 0.5).astype(np.float32)  # 0..255 in -> 0..255 out, rounded by Cast


class ColourStage(Stage):
    """Grades every frame: with the colour graph on a GPU provider, with OpenCV and a table on the CPU.

    `path` is "auto" (the graph unless the engine runs on the CPU provider), "graph" or "cpu"; the
    last two are for tests and benchmarks/colour_paths.py.
    """

    name = "colour"

    def __init__(self, params: dict[str, Any], context: StageContext, path: str = "auto") -> None:
        self.params = dict(params)
        self.engine = context.engine
        self.preset_dir = Path(context.preset_dir) if context.preset_dir is not None else None
        path = context.implementation if path == "auto" else path
        auto = path == "auto"
        self.path = choose_implementation(path, self.engine.provider)
        self._lut_path: Path | None = None
        self._cube: np.ndarray | None = None
        self._lut: np.ndarray | None = None
        self._table: np.ndarray | None = None
        self._table_key: tuple[Path | None, float] | None = None
        self._sessions: dict[bool, Any] = {}
        self._packed: np.ndarray | None = None  # CPU path: the frame as BGR0, reused frame to frame
        self.update({})
        if auto and self.path == "graph" and self._session(self._lut is not None).provider == CPU:
            self.path = "cpu"  # the GPU provider failed and the session fell back: the CPU path is faster
            self.update({})
        if self.path == "graph" and context.transfers is not None:
            self.device = ColourOnDevice(self)

    def _session(self, with_lut: bool) -> Any:
        if with_lut not in self._sessions:
            self._sessions[with_lut] = self.engine.session(build_graph(with_lut))
        return self._sessions[with_lut]

    def update(self, params: dict[str, Any]) -> None:
        """Apply parameters. Sliders cost nothing on either path; on the CPU path a new LUT or strength
        rebuilds the table (30-50 ms, once, while the chain holds this stage between frames)."""
        merged = {**self.params, **params}
        if merged["lut"]:
            lut_path = preset_file(merged["lut"], self.preset_dir)
            if lut_path != self._lut_path:
                if not lut_path.is_file():
                    raise PresetError(f"colour stage: lut = {merged['lut']!r}: no such file ({lut_path}); give a "
                                      f".cube file, relative to the preset")
                self._cube, self._lut_path = load_cube(lut_path), lut_path
        else:
            self._cube, self._lut_path = None, None
        self.params = merged
        with_lut = self._cube is not None and merged["lut_strength"] > 0
        if self.path == "cpu":
            self._transform = transform_matrix(merged)
            key = (self._lut_path, float(merged["lut_strength"]))
            if not with_lut or self._cube is None:
                self._table, self._table_key = None, None
            elif key != self._table_key:
                self._table = lut_table(self._cube, merged["lut_strength"], out=self._table)
                self._table_key = key
            return
        self._lut = lut_volume(self._cube, merged["lut_strength"]) if with_lut and self._cube is not None else None
        self._matrix, self._offset = graph_inputs(merged, with_lut)
        self._session(with_lut)

    def process(self, frame: Frame) -> None:
        if self.path == "cpu":
            frame.image = self._grade_cpu(np.ascontiguousarray(frame.image))
            return
        feeds = {"image": np.ascontiguousarray(frame.image), "matrix": self._matrix, "offset": self._offset}
        if self._lut is not None:
            feeds["lut"] = self._lut
        out = self._session(self._lut is not None).run(feeds)["output"]
        frame.image = np.array(out, copy=True)  # engine outputs are reused two runs later

    def graph_feeds(self) -> dict[str, np.ndarray]:
        """The graph's inputs besides the image: the slider map, and the LUT volume when there is one."""
        feeds = {"matrix": self._matrix, "offset": self._offset}
        if self._lut is not None:
            feeds["lut"] = self._lut
        return feeds

    def _grade_cpu(self, image: np.ndarray) -> np.ndarray:
        """cv2.transform for the sliders, then (with a LUT) one gather in the table by the pixel's bytes."""
        graded = cv2.transform(image, self._transform)  # rounds and clips to 0..255, as the graph does
        if self._table is None:
            return graded
        height, width = image.shape[:2]
        if self._packed is None or self._packed.shape[:2] != (height, width):
            self._packed = np.zeros((height, width, 4), np.uint8)  # the fourth byte stays 0
        cv2.mixChannels([graded], [self._packed], [0, 0, 1, 1, 2, 2])
        looked_up = np.take(self._table, self._packed.view(np.uint32)[..., 0])  # faster than take(out=...)
        return cv2.cvtColor(looked_up.view(np.uint8).reshape(height, width, 4), cv2.COLOR_BGRA2BGR)

    def close(self) -> None:
        self._sessions.clear()
        self._table = self._packed = None


class ColourOnDevice(DevicePath):
    """The colour graph on the device frame: the frame is bound where it is, the graded one stays there.

    The sliders and the LUT volume are uploaded when they change (kept as OrtValues on the device), so a
    frame carries no parameter uploads.
    """

    def __init__(self, stage: ColourStage) -> None:
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
        session = stage._session(stage._lut is not None)
        feeds: dict[str, Any] = {name: self._on_device(name, value, session.device)
                                 for name, value in stage.graph_feeds().items()}
        feeds["image"] = frame.device_image
        frame.device_image = session.run_device(feeds)["output"]


SPEC = register(StageSpec(
    type="colour",
    summary="Colour grade: brightness, contrast, saturation, temperature and a .cube 3D LUT (an ONNX graph on "
            "a GPU, OpenCV and a lookup table on the CPU)",
    params=(
        Param("brightness", float, 0.0, "-1 (darker) to 1 (brighter)", min=-1.0, max=1.0),
        Param("contrast", float, 1.0, "1 unchanged; 0 flat grey to 2", min=0.0, max=2.0),
        Param("saturation", float, 1.0, "1 unchanged; 0 black and white to 2", min=0.0, max=2.0),
        Param("temperature", float, 0.0, "-1 (cooler, bluer) to 1 (warmer, redder)", min=-1.0, max=1.0),
        Param("lut", str, "", ".cube 3D LUT file, relative to the preset (empty: none)", kind="file"),
        Param("lut_strength", float, 1.0, "how much of the LUT to apply, 0 to 1", min=0.0, max=1.0),
    ),
    factory=ColourStage,
))
