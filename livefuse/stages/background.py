"""The `background` stage: blur, replace or remove everything but the person.

Speed at 1280x720 on a laptop CPU comes from touching full-resolution pixels only twice (one
downscale, one blend): the frame is shrunk once (INTER_AREA) to a quarter size, which feeds both the
selfie segmenter (at its own 256x144 / 256x256 input) and the background blur; the mask is smoothed
over time (EMA) and feathered at model resolution, then upsampled, and `cv2.blendLinear` mixes the
person over the new background in one pass.

The blur is mask-weighted ("normalised convolution"): the person is cut out before blurring, so no
halo of the person bleeds into the blurred room around them.

`remove` paints a solid colour; the default is chroma-key green (#00b140) so a downstream tool (OBS)
can key it out. True transparency needs an output with alpha, which the virtual camera is not.

On a GPU provider the same steps are one fused ONNX graph (`build_graph`: downscale, the segmenter
inlined, EMA, tighten, feather, mask-weighted blur, upsample, blend), so a frame is uploaded once and
downloaded once; the EMA state stays on the device between frames. On the CPU provider OpenCV is
faster (`benchmarks/background_paths.py`), so that path stays the default there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper, version_converter

from livefuse.engine.graphs import OPSET, _Builder
from livefuse.engine.providers import CPU
from livefuse.errors import PresetError
from livefuse.frame import Frame
from livefuse.stages.base import (
    DevicePath,
    Param,
    Stage,
    StageContext,
    StageSpec,
    Step,
    choose_implementation,
    preset_file,
)
from livefuse.stages.models import load_model, model_file
from livefuse.stages.registry import register
from livefuse.vision.segmentation import GENERAL_SIZE, LANDSCAPE_SIZE, SelfieSegmenter

MODELS = {"general": "selfie_segmentation", "landscape": "selfie_segmentation_landscape"}
CHROMA_GREEN = "#00b140"
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}


def parse_colour(text: str, where: str) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb') -> BGR."""
    value = text.strip().removeprefix("#")
    if len(value) != 6 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise PresetError(f"{where}: colour = {text!r} is not a colour; write it as \"#rrggbb\", "
                          f"e.g. \"{CHROMA_GREEN}\" (chroma-key green)")
    r, g, b = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill width x height keeping the aspect ratio, cropping the overflow evenly (no distortion)."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    x, y = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


# -- the fused graph (GPU providers, or path="graph") ---------------------------------------------


def gaussian_taps(sigma: float, limit: int) -> np.ndarray:
    """OpenCV's float Gaussian kernel for `sigma` (4-sigma radius), cut to at most `limit` taps a side.

    The cut keeps ONNX's reflect padding (OpenCV's BORDER_REFLECT_101) legal on tiny images.
    """
    size = max(3, round(sigma * 8 + 1) | 1)
    taps = cv2.getGaussianKernel(size, sigma, cv2.CV_32F).ravel()
    radius = min(size // 2, max(1, limit))
    taps = taps[size // 2 - radius: size // 2 + radius + 1]
    return (taps / taps.sum()).astype(np.float32)


def _separable_blur(b: _Builder, x: str, channels: int, taps: np.ndarray) -> str:
    """Depthwise Gaussian over [1, C, h, w]: two 1-D Convs after reflect padding (as cv2.GaussianBlur)."""
    r = len(taps) // 2
    pads = b.const([0, 0, r, r, 0, 0, r, r], np.int64)
    x = b.op("Pad", x, pads, mode="reflect")
    vertical = b.const(np.tile(taps.reshape(1, 1, -1, 1), (channels, 1, 1, 1)))
    horizontal = b.const(np.tile(taps.reshape(1, 1, 1, -1), (channels, 1, 1, 1)))
    x = b.op("Conv", x, vertical, group=channels)
    return b.op("Conv", x, horizontal, group=channels)


def _resize(b: _Builder, x: str, sizes: list[int], axes: list[int]) -> str:
    """Bilinear with half-pixel centres; antialiased when shrinking (close to INTER_AREA)."""
    return b.op("Resize", x, "", "", b.const(sizes, np.int64), axes=axes, mode="linear", antialias=1,
                coordinate_transformation_mode="half_pixel")


def area_weights(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of cv2.INTER_AREA along one axis (read off by resizing the identity).

    INTER_AREA is separable, so two MatMuls reproduce it exactly; at model resolution that is cheap,
    and a Resize, even antialiased, is a different filter that moves the mask's edges.
    """
    return np.ascontiguousarray(cv2.resize(np.eye(src, dtype=np.float32), (dst, src), interpolation=cv2.INTER_AREA).T)


def _area(b: _Builder, x: str, src: tuple[int, int], dst: tuple[int, int]) -> str:
    """cv2.resize(..., INTER_AREA) of [N, C, h, w] from src to dst (width, height)."""
    if src == dst:
        return x
    x = b.op("MatMul", b.const(area_weights(src[1], dst[1])), x)
    return b.op("MatMul", x, b.const(area_weights(src[0], dst[0]).T))


def _inline(b: _Builder, model: onnx.ModelProto, prefix: str, source: str) -> str:
    """Add a one-input, one-output model's nodes to `b` under `prefix`, fed by `source`; returns its output.

    Inlining (rather than a second session) keeps the whole step one graph on one device.
    """
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < OPSET:
        model = version_converter.convert_version(model, OPSET)
    graph = compose.add_prefix(model, prefix).graph
    b.op("Identity", source, out=graph.input[0].name)
    b.nodes.extend(graph.node)
    b.inits.extend(graph.initializer)
    return graph.output[0].name


def blur_geometry(width: int, small: tuple[int, int], strength: float) -> tuple[tuple[int, int], float]:
    """(blur image size, sigma there): the CPU path's choice, shared so both paths blur alike."""
    sigma_full = 1.0 + strength * 0.012 * width  # in full-frame pixels
    scale = min(1.0, 3.0 / (sigma_full * small[0] / width))
    bw, bh = max(8, round(small[0] * scale)), max(8, round(small[1] * scale))
    return (bw, bh), sigma_full * bw / width


def build_graph(model: onnx.ModelProto, size: tuple[int, int], model_size: tuple[int, int],
                params: dict[str, Any]) -> onnx.ModelProto:
    """The whole stage as one graph, for the frame `size` and the stage `params` (baked in).

    Inputs: `frame` uint8 [H, W, 3] BGR, `state` float32 [1, 1, mh, mw] (the previous EMA mask; negative
    on the first frame), and in replace mode `backdrop` uint8 [H, W, 3]. Outputs: `image` uint8
    [H, W, 3] and `state_out` (feed it back as `state`; on a GPU it never leaves the device).
    """
    width, height = size
    mw, mh = model_size
    d = params["downscale"]
    sw, sh = max(16, width // d), max(16, height // d)
    b = _Builder("livefuse_background")
    frame = b.op("Cast", "frame", to=TensorProto.FLOAT)  # [H, W, 3]
    nchw = b.op("Unsqueeze", b.op("Transpose", frame, perm=[2, 0, 1]), b.const([0], np.int64))
    if width % d == 0 and height % d == 0 and (sw, sh) == (width // d, height // d):
        small = b.op("AveragePool", nchw, kernel_shape=[d, d], strides=[d, d]) if d > 1 else nchw  # = INTER_AREA
    else:
        small = _resize(b, nchw, [sh, sw], [2, 3])
    small = b.op("Round", small)  # the CPU path holds it as uint8
    seg = b.op("Round", _area(b, small, (sw, sh), (mw, mh)))
    seg = b.op("Gather", seg, b.const([2, 1, 0], np.int64), axis=1)  # BGR -> RGB
    seg = b.op("Transpose", b.op("Mul", seg, b.const(1.0 / 255.0)), perm=[0, 2, 3, 1])  # NHWC in 0..1
    raw = b.op("Transpose", b.op("Clip", _inline(b, model, "seg/", seg), b.const(0.0), b.const(1.0)), perm=[0, 3, 1, 2])
    keep = float(params["smoothing"])
    ema = b.op("Add", b.op("Mul", "state", b.const(keep)), b.op("Mul", raw, b.const(1.0 - keep)))
    b.op("Where", b.op("Less", "state", b.const(0.0)), raw, ema, out="state_out")
    mask = b.op("Clip", b.op("Mul", b.op("Sub", "state_out", b.const(0.25)), b.const(2.0)), b.const(0.0),
                b.const(1.0))
    if params["feather"] > 0:
        mask = _separable_blur(b, mask, 1, gaussian_taps(params["feather"] * 0.01 * mw, min(mw, mh) - 1))
    mode = params["mode"]
    if mode == "blur":
        (bw, bh), sigma = blur_geometry(width, (sw, sh), params["strength"])
        img = _area(b, small, (sw, sh), (bw, bh))
        weight = _area(b, b.op("Sub", b.const(1.0), mask), (mw, mh), (bw, bh))
        stack = b.op("Concat", b.op("Mul", img, weight), weight, img, axis=1)  # num | den | plain
        blurred = _separable_blur(b, stack, 7, gaussian_taps(sigma, min(bw, bh) - 1))
        num, den, plain = (b.op("Slice", blurred, b.const([lo], np.int64), b.const([hi], np.int64),
                                b.const([1], np.int64)) for lo, hi in ((0, 3), (3, 4), (4, 7)))
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
    full = _resize(b, b.op("Transpose", b.op("Squeeze", mask, b.const([0], np.int64)), perm=[1, 2, 0]),
                   [height, width], [0, 1])  # [H, W, 1]
    out = b.op("Add", background, b.op("Mul", full, b.op("Sub", frame, background)))
    b.op("Cast", b.op("Clip", b.op("Round", out), b.const(0.0), b.const(255.0)), to=TensorProto.UINT8, out="image")
    frame_info = helper.make_tensor_value_info("frame", TensorProto.UINT8, [height, width, 3])
    state_info = helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1, mh, mw])
    inputs = [frame_info, state_info]
    if mode == "replace":
        inputs.append(helper.make_tensor_value_info("backdrop", TensorProto.UINT8, [height, width, 3]))
    outputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, [height, width, 3]),
               helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 1, mh, mw])]
    return b.model(inputs, outputs, build_graph.__doc__ or "")


class Backdrop:
    """The replacement picture: a still image, or a video looped in time with the stream."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self.path = path
        self.size = size
        self.fps = fps
        self._still: np.ndarray | None = None
        self._video: cv2.VideoCapture | None = None
        self._shown_t = 0.0
        self._current: np.ndarray | None = None
        where = f"background stage: image = {str(path)!r}"
        if not path.is_file():
            raise PresetError(f"{where}: no such file; give an image (.jpg/.png) or video (.mp4/.webm), "
                              f"relative to the preset file or absolute")
        if path.suffix.lower() in VIDEO_SUFFIXES:
            self._video = cv2.VideoCapture(str(path))
            ok, first = self._video.read() if self._video.isOpened() else (False, None)
            if not ok or first is None:
                raise PresetError(f"{where}: cannot decode this video; convert it to H.264 .mp4")
            self.video_fps = float(self._video.get(cv2.CAP_PROP_FPS) or 0) or fps
            self._current = cover(_as_bgr(first), *size)
        else:
            still = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if still is None:
                raise PresetError(f"{where}: cannot read this image; use a .jpg or .png file")
            self._still = cover(still, *size)

    def frame(self, t: float, size: tuple[int, int]) -> np.ndarray:
        """The backdrop for stream time t seconds, at frame size."""
        if self._still is not None:
            if self._still.shape[1::-1] != size:
                self._still = cover(self._still, *size)
            return self._still
        assert self._video is not None and self._current is not None
        step = 1.0 / self.video_fps
        latest = None
        for _ in range(8):  # a late frame skips ahead a little; a long stall re-syncs below
            if self._shown_t + step > t:
                break
            ok, image = self._video.read()
            if not ok:  # end of the clip: loop
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._video.read()
                if not ok:
                    break
            self._shown_t += step
            latest = image
        if self._shown_t + step <= t:
            self._shown_t = t
        if latest is not None or self._current.shape[1::-1] != size:
            self._current = cover(_as_bgr(latest if latest is not None else self._current), *size)
        return self._current

    def close(self) -> None:
        if self._video is not None:
            self._video.release()


class BackgroundOnDevice(DevicePath):
    """The fused graph on the device frame: bound where it is, composited into a frame that stays there."""

    def __init__(self, stage: BackgroundStage) -> None:
        self.stage = stage

    def run(self, frame: Frame) -> None:
        height, width = (int(d) for d in frame.device_image.shape()[:2])
        _, frame.device_image = self.stage.run_graph(frame.device_image, (width, height), frame.seq)


GRAPH_PARAMS = ("mode", "strength", "colour", "feather", "smoothing", "downscale")  # baked into the graph


class BackgroundStage(Stage):
    """Segment the person, then blur, replace or recolour the rest: OpenCV on the CPU, one graph on a GPU.

    `path` is "auto" (the graph unless the engine runs on the CPU provider), "graph" or "cpu"; the
    last two are for tests and benchmarks/background_paths.py.
    """

    name = "background"

    def __init__(self, params: dict[str, Any], context: StageContext, path: str = "auto") -> None:
        self.params = dict(params)
        self.engine = context.engine
        self.size = context.size
        self.fps = context.fps or 30.0
        self.preset_dir = Path(context.preset_dir) if context.preset_dir is not None else None
        width, height = context.size
        kind = params["model"]
        if kind == "auto":
            kind = "landscape" if width >= 1.4 * height else "general"
        self.model_name = MODELS[kind]
        self.model_size = LANDSCAPE_SIZE if kind == "landscape" else GENERAL_SIZE
        path = context.implementation if path == "auto" else path
        auto = path == "auto"
        self.path = choose_implementation(path, self.engine.provider)
        self.segmenter: SelfieSegmenter | None = None
        self._mask: np.ndarray | None = None  # CPU path: EMA state at model resolution
        self._backdrop: Backdrop | None = None
        self._colour: np.ndarray | None = None
        # Graph path: the fused session, what it was built for, and the EMA state (an OrtValue on its device).
        self._model: onnx.ModelProto | None = None
        self._session: Any = None
        self._built: tuple[Any, ...] | None = None
        self._state: ort.OrtValue | np.ndarray | None = None
        self._backdrop_host: np.ndarray | None = None
        self._backdrop_device: ort.OrtValue | None = None
        if self.path == "graph":
            self._model = onnx.load(model_file(self.engine, self.model_name))
        self._configure()
        if auto and self.path == "graph" and self._session.provider == CPU:
            self.path = "cpu"  # the GPU provider failed and the session fell back: OpenCV is faster there
            self._session = self._model = None
        if self.path == "cpu":
            self.segmenter = SelfieSegmenter(load_model(self.engine, self.model_name), self.model_size)
        elif context.transfers is not None:
            self.device = BackgroundOnDevice(self)

    # -- configuration ---------------------------------------------------------------------------

    def _configure(self) -> None:
        p = self.params
        if p["mode"] == "replace":
            if not p["image"]:
                raise PresetError("background stage: mode = 'replace' needs image = \"PATH\" (a picture or a "
                                  "video, relative to the preset file)")
            path = preset_file(p["image"], self.preset_dir)
            if self._backdrop is None or self._backdrop.path != path:
                if self._backdrop is not None:
                    self._backdrop.close()
                self._backdrop = Backdrop(path, self.size, self.fps)
        bgr = parse_colour(p["colour"], "background stage")
        self._colour_bgr = bgr
        self._colour = None
        if self.path == "graph":
            self._graph_for(self.size)

    def _graph_for(self, size: tuple[int, int]) -> Any:
        """The fused session for this frame size and these settings, rebuilt only when they change.

        A live change of strength, feather or smoothing rebuilds it (they are constants in the graph, so
        a frame carries no parameter uploads); the EMA state is kept, its shape depends only on the model.
        """
        key = (size, *(self.params[name] for name in GRAPH_PARAMS))
        if key != self._built:
            assert self._model is not None
            self._session = self.engine.session(build_graph(self._model, size, self.model_size, self.params))
            self._built = key
        return self._session

    def update(self, params: dict[str, Any]) -> None:
        old = dict(self.params)
        self.params.update(params)
        try:
            self._configure()
        except Exception:
            self.params = old
            raise

    # -- per frame -------------------------------------------------------------------------------

    def _small_size(self, width: int, height: int) -> tuple[int, int]:
        d = self.params["downscale"]
        return max(16, width // d), max(16, height // d)

    def person_mask(self, small: np.ndarray) -> np.ndarray:
        """Temporally smoothed, feathered person mask at model resolution (float32, 1 = person)."""
        assert self.segmenter is not None  # the CPU path's
        raw = self.segmenter.mask(small)
        keep = self.params["smoothing"]
        if self._mask is None or self._mask.shape != raw.shape or keep <= 0:
            self._mask = raw.copy()
        else:
            cv2.addWeighted(self._mask, keep, raw, 1.0 - keep, 0.0, dst=self._mask)
        # Tighten the soft band (the model is unsure over a wide rim), then feather it evenly.
        mask = cv2.max(cv2.min((self._mask - 0.25) * 2.0, 1.0), 0.0)
        feather = self.params["feather"]
        if feather > 0:
            sigma = feather * 0.01 * mask.shape[1]
            mask = cv2.GaussianBlur(mask, (0, 0), sigma)
        return mask

    def _blurred(self, small: np.ndarray, mask: np.ndarray, width: int, height: int) -> np.ndarray:
        """The background alone, blurred at low resolution and scaled back up.

        A wide Gaussian is costly, so the frame is shrunk further until the blur is ~3 pixels wide there;
        a blurred image has no detail for the smaller size to lose.
        """
        (bw, bh), sigma = blur_geometry(width, (small.shape[1], small.shape[0]), self.params["strength"])
        img = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
        weight = cv2.resize(cv2.subtract(1.0, mask), (bw, bh), interpolation=cv2.INTER_AREA)
        num = cv2.GaussianBlur(img * weight[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        plain = cv2.GaussianBlur(img, (0, 0), sigma)
        # Where the person hides all the background around, the normalised blur has nothing to average.
        trust = np.clip(den * 8.0, 0.0, 1.0)[..., None]
        bg = num / np.maximum(den, 1e-3)[..., None] * trust + plain * (1.0 - trust)
        return cv2.resize(bg.clip(0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)

    def steps(self) -> list[Step]:
        """Segment and composite take turns separately: frame N+1 is segmented while frame N is composited.

        The graph path is one run on the device, so it is one step.
        """
        if self.path == "graph":
            return [("", self.process)]
        return [("segment", self.segment), ("composite", self.composite)]

    def process(self, frame: Frame) -> None:
        if self.path == "graph":
            self._process_graph(frame)
            return
        self.segment(frame)
        self.composite(frame)

    def _process_graph(self, frame: Frame) -> None:
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
        """Graph path: the EMA mask state [1, 1, mh, mw] as numpy (a download on a GPU: for tests and tools)."""
        if self._state is None or isinstance(self._state, np.ndarray):
            return self._state
        return np.array(self._session.download(self._state), copy=True)

    def segment(self, frame: Frame) -> None:
        """Shrink the frame once and find the person in it (the small frame also feeds the blur)."""
        height, width = frame.image.shape[:2]
        small = cv2.resize(frame.image, self._small_size(width, height), interpolation=cv2.INTER_AREA)
        frame.small = small
        frame.person_mask = self.person_mask(small)

    def composite(self, frame: Frame) -> None:
        """Put the person over the blurred, replaced or removed background (nothing if segment failed)."""
        small, mask = frame.small, frame.person_mask
        frame.small = None  # used: it does not travel on to the outputs
        if small is None or mask is None:
            return
        image = frame.image
        height, width = image.shape[:2]
        mode = self.params["mode"]
        if mode == "blur":
            background = self._blurred(small, mask, width, height)
        elif mode == "replace":
            assert self._backdrop is not None
            background = self._backdrop.frame(frame.seq / self.fps, (width, height))
        else:
            if self._colour is None or self._colour.shape != image.shape:
                self._colour = np.empty_like(image)
                self._colour[:] = self._colour_bgr
            background = self._colour
        full = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        frame.image = cv2.blendLinear(image, background, full, cv2.subtract(1.0, full))

    def on_source_reopened(self) -> None:
        """A new scene: the smoothed mask starts again from the next frame's segmentation."""
        self._mask = None
        self._state = None

    def close(self) -> None:
        if self._backdrop is not None:
            self._backdrop.close()
            self._backdrop = None
        self._session = self._state = self._backdrop_device = self._backdrop_host = None


SPEC = register(StageSpec(
    type="background",
    summary="Blur, replace or remove the background behind the person (selfie segmentation)",
    params=(
        Param("mode", str, "blur", "blur, replace (image/video) or remove (solid colour)",
              choices=("blur", "replace", "remove")),
        Param("strength", float, 0.6, "blur: how strong, 0 (barely) to 1 (very)", min=0.0, max=1.0),
        Param("image", str, "", "replace: picture or video file (looped), relative to the preset; fitted by "
              "cover-cropping, never stretched", kind="file"),
        Param("colour", str, CHROMA_GREEN, "remove: the colour as \"#rrggbb\" (default chroma-key green)"),
        Param("feather", float, 0.5, "edge softness, 0 (hard) to 5 (very soft), in % of the frame width",
              min=0.0, max=5.0),
        Param("smoothing", float, 0.5, "how much of the previous mask is kept each frame (steadier edges, a "
              "little lag)", min=0.0, max=0.95),
        Param("downscale", int, 4, "blur and segmentation work on a frame this many times smaller",
              min=1, max=8, live=False),
        Param("model", str, "auto", "segmentation model: auto (landscape 256x144 for wide frames), general "
              "(256x256) or landscape", choices=("auto", "general", "landscape"), live=False),
    ),
    factory=BackgroundStage,
    models=tuple(MODELS.values()),
))
