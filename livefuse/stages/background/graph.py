"""The background stage as one fused ONNX graph: the path on GPU providers (or forced with path="graph").

Downscale, the segmenter inlined, EMA, tighten, feather, mask-weighted blur, upsample (or the guided
filter's edge refinement, edge_graph.py) and blend are one graph (`build_graph`), so a frame is uploaded
once and downloaded once, and the EMA state stays on the device between frames. The settings are
constants in the graph: a live change rebuilds it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from livefuse.device.graphs import area_resize, shrink_nodes
from livefuse.engine.graph_builder import GraphBuilder
from livefuse.engine.loader import model_file
from livefuse.frame import Frame
from livefuse.stage import DevicePath, StageContext
from livefuse.stages.background.common import BackgroundStage, blur_geometry, parse_colour
from livefuse.stages.background.edge_graph import refined_matte

GRAPH_PARAMS = ("mode", "strength", "colour", "feather", "smoothing", "downscale", "edge")  # baked into the graph


def gaussian_taps(sigma: float, limit: int) -> np.ndarray:
    """OpenCV's float Gaussian kernel for `sigma` (4-sigma radius), cut to at most `limit` taps a side.

    The cut keeps ONNX's reflect padding (OpenCV's BORDER_REFLECT_101) legal on tiny images.
    """
    size = max(3, round(sigma * 8 + 1) | 1)
    taps = cv2.getGaussianKernel(size, sigma, cv2.CV_32F).ravel()
    radius = min(size // 2, max(1, limit))
    taps = taps[size // 2 - radius : size // 2 + radius + 1]
    return (taps / taps.sum()).astype(np.float32)


def _separable_blur(b: GraphBuilder, x: str, channels: int, taps: np.ndarray) -> str:
    """Depthwise Gaussian over [1, C, h, w]: two 1-D Convs after reflect padding (as cv2.GaussianBlur)."""
    r = len(taps) // 2
    pads = b.const([0, 0, r, r, 0, 0, r, r], np.int64)
    x = b.op("Pad", x, pads, mode="reflect")
    vertical = b.const(np.tile(taps.reshape(1, 1, -1, 1), (channels, 1, 1, 1)))
    horizontal = b.const(np.tile(taps.reshape(1, 1, 1, -1), (channels, 1, 1, 1)))
    x = b.op("Conv", x, vertical, group=channels)
    return b.op("Conv", x, horizontal, group=channels)


def _resize(b: GraphBuilder, x: str, sizes: list[int], axes: list[int]) -> str:
    """Bilinear with half-pixel centres; antialiased when shrinking (close to INTER_AREA)."""
    return b.op(
        "Resize",
        x,
        "",
        "",
        b.const(sizes, np.int64),
        axes=axes,
        mode="linear",
        antialias=1,
        coordinate_transformation_mode="half_pixel",
    )


def build_graph(
    model: onnx.ModelProto, size: tuple[int, int], model_size: tuple[int, int], params: dict[str, Any]
) -> onnx.ModelProto:
    """The whole stage as one graph, for the frame `size` and the stage `params` (baked in).

    Inputs: `frame` uint8 [H, W, 3] BGR, `state` float32 [1, 1, mh, mw] (the previous EMA mask; negative
    on the first frame), and in replace mode `backdrop` uint8 [H, W, 3]. Outputs: `image` uint8
    [H, W, 3] and `state_out` (feed it back as `state`; on a GPU it never leaves the device).
    """
    width, height = size
    mw, mh = model_size
    d = params["downscale"]
    sw, sh = max(16, width // d), max(16, height // d)
    b = GraphBuilder("livefuse_background")
    frame = b.op("Cast", "frame", to=TensorProto.FLOAT)  # [H, W, 3]
    nchw = b.op("Unsqueeze", b.op("Transpose", frame, perm=[2, 0, 1]), b.const([0], np.int64))
    small = shrink_nodes(b, nchw, (width, height), (sw, sh))  # whole levels: the CPU path holds it as uint8
    seg = b.op("Round", area_resize(b, small, (sw, sh), (mw, mh)))
    seg = b.op("Gather", seg, b.const([2, 1, 0], np.int64), axis=1)  # BGR -> RGB
    seg = b.op("Transpose", b.op("Mul", seg, b.const(1.0 / 255.0)), perm=[0, 2, 3, 1])  # NHWC in 0..1
    raw = b.op("Transpose", b.op("Clip", b.inline(model, "seg/", seg), b.const(0.0), b.const(1.0)), perm=[0, 3, 1, 2])
    keep = float(params["smoothing"])
    ema = b.op("Add", b.op("Mul", "state", b.const(keep)), b.op("Mul", raw, b.const(1.0 - keep)))
    b.op("Where", b.op("Less", "state", b.const(0.0)), raw, ema, out="state_out")
    mask = b.op("Clip", b.op("Mul", b.op("Sub", "state_out", b.const(0.25)), b.const(2.0)), b.const(0.0), b.const(1.0))
    if params["feather"] > 0:
        mask = _separable_blur(b, mask, 1, gaussian_taps(params["feather"] * 0.01 * mw, min(mw, mh) - 1))
    mode = params["mode"]
    if mode == "blur":
        (bw, bh), sigma = blur_geometry(width, (sw, sh), params["strength"])
        img = area_resize(b, small, (sw, sh), (bw, bh))
        weight = area_resize(b, b.op("Sub", b.const(1.0), mask), (mw, mh), (bw, bh))
        stack = b.op("Concat", b.op("Mul", img, weight), weight, img, axis=1)  # num | den | plain
        blurred = _separable_blur(b, stack, 7, gaussian_taps(sigma, min(bw, bh) - 1))
        num, den, plain = (
            b.op("Slice", blurred, b.const([lo], np.int64), b.const([hi], np.int64), b.const([1], np.int64))
            for lo, hi in ((0, 3), (3, 4), (4, 7))
        )
        trust = b.op("Clip", b.op("Mul", den, b.const(8.0)), b.const(0.0), b.const(1.0))
        normalised = b.op("Div", num, b.op("Max", den, b.const(1e-3)))
        bg = b.op("Add", b.op("Mul", normalised, trust), b.op("Mul", plain, b.op("Sub", b.const(1.0), trust)))
        bg = b.op("Floor", b.op("Clip", bg, b.const(0.0), b.const(255.0)))  # as the CPU path's astype(uint8)
        bg = b.op("Transpose", b.op("Squeeze", bg, b.const([0], np.int64)), perm=[1, 2, 0])
        background = _resize(b, bg, [height, width], [0, 1])
    elif mode == "replace":
        background = b.op("Cast", "backdrop", to=TensorProto.FLOAT)
    else:
        background = b.const(np.reshape(parse_colour(params["colour"], "background stage"), (1, 1, 3)))
    if params["edge"] == "off":
        full = _resize(
            b, b.op("Transpose", b.op("Squeeze", mask, b.const([0], np.int64)), perm=[1, 2, 0]), [height, width], [0, 1]
        )  # [H, W, 1]
    else:
        full = refined_matte(b, nchw, frame, mask, params["edge"], size)
    out = b.op("Add", background, b.op("Mul", full, b.op("Sub", frame, background)))
    b.op("Cast", b.op("Clip", b.op("Round", out), b.const(0.0), b.const(255.0)), to=TensorProto.UINT8, out="image")
    frame_info = helper.make_tensor_value_info("frame", TensorProto.UINT8, [height, width, 3])
    state_info = helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1, mh, mw])
    inputs = [frame_info, state_info]
    if mode == "replace":
        inputs.append(helper.make_tensor_value_info("backdrop", TensorProto.UINT8, [height, width, 3]))
    outputs = [
        helper.make_tensor_value_info("image", TensorProto.UINT8, [height, width, 3]),
        helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 1, mh, mw]),
    ]
    return b.model(inputs, outputs, build_graph.__doc__ or "")


class GraphBackground(BackgroundStage):
    """The stage as one run of the fused graph per frame; the mask's EMA state stays on the device."""

    path = "graph"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        super().__init__(params, context)
        self._model = onnx.load(model_file(self.engine, self.model_name))
        self._session: Any = None
        self._built: tuple[Any, ...] | None = None  # what the session was built for
        self._state: ort.OrtValue | np.ndarray | None = None  # the EMA mask, an OrtValue on the session's device
        self._backdrop_host: np.ndarray | None = None
        self._backdrop_device: ort.OrtValue | None = None
        self._configure()
        if context.transfers is not None:
            self.device = BackgroundOnDevice(self)

    @property
    def provider(self) -> str:
        """The provider the fused session really got (the CPU one when a GPU provider failed)."""
        return str(self._session.provider)

    def _configure(self) -> None:
        super()._configure()
        self._graph_for(self.size)

    def _graph_for(self, size: tuple[int, int]) -> Any:
        """The fused session for this frame size and these settings, rebuilt only when they change.

        A live change of strength, feather or smoothing rebuilds it (they are constants in the graph, so
        a frame carries no parameter uploads); the EMA state is kept, its shape depends only on the model.
        """
        key = (size, *(self.params[name] for name in GRAPH_PARAMS))
        if key != self._built:
            self._session = self.engine.session(build_graph(self._model, size, self.model_size, self.params))
            self._built = key
        return self._session

    def process(self, frame: Frame) -> None:
        """One run of the fused graph: the frame goes up, the result comes down, the mask state stays."""
        image = np.ascontiguousarray(frame.image)
        height, width = image.shape[:2]
        session, out = self.run_graph(image, (width, height), frame.seq)
        host = session.download(out)
        frame.image = np.array(host, copy=True) if session.device == "cpu" else host  # CPU: a reused buffer's view

    def run_graph(self, image: np.ndarray | ort.OrtValue, size: tuple[int, int], seq: int) -> tuple[Any, ort.OrtValue]:
        """(session, composited image on its device): one run; the EMA mask state stays on the device."""
        session = self._graph_for(size)
        mw, mh = self.model_size
        state = self._state if self._state is not None else np.full((1, 1, mh, mw), -1.0, np.float32)
        feeds: dict[str, Any] = {"frame": image, "state": state}
        if self.params["mode"] == "replace":
            assert self._backdrop is not None
            feeds["backdrop"] = self._backdrop_feed(self._backdrop.frame(seq / self.fps, size))
        outs = session.run_device(feeds)
        self._state = outs["state_out"]  # valid until two runs later, and the next run consumes it
        return session, outs["image"]

    def _backdrop_feed(self, backdrop: np.ndarray) -> np.ndarray | ort.OrtValue:
        """A still backdrop is uploaded once, not with every frame; a video's with each new picture."""
        session = self._session
        if session.device == "cpu":
            return backdrop
        if backdrop is not self._backdrop_host:
            self._backdrop_device = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(backdrop), session.device, 0)
            self._backdrop_host = backdrop
            self.engine._copies.add(h2d=1)
        assert self._backdrop_device is not None
        return self._backdrop_device

    def mask_state(self) -> np.ndarray | None:
        """The EMA mask state [1, 1, mh, mw] as numpy (a download on a GPU: for tests and tools)."""
        if self._state is None or isinstance(self._state, np.ndarray):
            return self._state
        return np.array(self._session.download(self._state), copy=True)

    def on_source_reopened(self) -> None:
        """A new scene: the smoothed mask starts again from the next frame's segmentation."""
        self._state = None

    def close(self) -> None:
        super().close()
        self._session = self._state = self._backdrop_device = self._backdrop_host = None


class BackgroundOnDevice(DevicePath):
    """The fused graph on the device frame: bound where it is, composited into a frame that stays there."""

    def __init__(self, stage: GraphBackground) -> None:
        self.stage = stage

    def run(self, frame: Frame) -> None:
        height, width = (int(d) for d in frame.device_image.shape()[:2])
        _, frame.device_image = self.stage.run_graph(frame.device_image, (width, height), frame.seq)
