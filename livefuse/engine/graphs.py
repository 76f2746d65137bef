"""ONNX graphs for the pixel work around models, so it runs on the session's device next to them.

Each builder returns an `onnx.ModelProto` to pass to `Engine.session`. Frames go in as the pipeline
holds them (uint8 HxWx3 BGR); sizes are (width, height) like `Frame.size`. Resampling is bilinear with
half-pixel centres, matching OpenCV's INTER_LINEAR (and `cv2.warpAffine` for the affine graphs).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import onnx

from livefuse.engine.graph_builder import FLOAT, OPSET, UINT8, GraphBuilder

# The old names, for code written before graph_builder (stages/background.py on main, livefuse/device/graphs.py
# on wip/device); new code imports GraphBuilder and OPSET from graph_builder.
_Builder = GraphBuilder
__all__ = ["OPSET", "crop_theta", "feather_mask", "identity_probe", "mask_blend", "paste_back", "paste_theta",
           "preprocess", "warp_crops"]


def identity_probe() -> onnx.ModelProto:
    """The smallest graph a provider can run: used to settle which provider works before any model loads."""
    b = GraphBuilder("provider_probe")
    b.op("Identity", b.input("x", FLOAT, [1]), out="y")
    b.output("y", FLOAT, [1])
    return b.build("provider probe")


FRAME_SHAPE: list[int | str] = ["height", "width", 3]


def _normalise(
    b: GraphBuilder, x: str, color: str, mean: Sequence[float], std: Sequence[float], channel_axis: int, rank: int
) -> str:
    """BGR input -> `color`, then (x - mean) / std (mean/std given in the output colour order)."""
    if color.upper() == "RGB":
        x = b.op("Gather", x, b.ints([2, 1, 0]), axis=channel_axis)
    elif color.upper() != "BGR":
        raise ValueError(f"color must be RGB or BGR, not {color!r}")
    shape = [1] * rank
    shape[channel_axis] = 3
    if any(m != 0 for m in mean):
        x = b.op("Sub", x, b.const(np.reshape(mean, shape)))
    if any(s != 1 for s in std):
        x = b.op("Mul", x, b.const(np.reshape(1.0 / np.asarray(std, np.float64), shape)))
    return x


def preprocess(
    size: tuple[int, int],
    color: str = "RGB",
    layout: str = "NCHW",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> onnx.ModelProto:
    """uint8 HxWx3 BGR `frame` -> float32 `tensor` [1,3,h,w] or [1,h,w,3], resized and normalised.

    The same as `(cv2.resize(frame, size, INTER_LINEAR) -> colour -> (x - mean) / std)` in float.
    """
    w, h = size
    b = GraphBuilder("preprocess")
    x = b.op("Cast", b.input("frame", UINT8, FRAME_SHAPE), to=FLOAT)
    x = b.op(
        "Resize",
        x,
        "",
        "",
        b.ints([h, w]),
        axes=[0, 1],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )
    x = _normalise(b, x, color, mean, std, channel_axis=2, rank=3)
    if layout.upper() == "NCHW":
        x = b.op("Transpose", x, perm=[2, 0, 1])
        shape: list[int | str] = [1, 3, h, w]
    elif layout.upper() == "NHWC":
        shape = [1, h, w, 3]
    else:
        raise ValueError(f"layout must be NCHW or NHWC, not {layout!r}")
    b.op("Unsqueeze", x, b.ints([0]), out="tensor")
    b.output("tensor", FLOAT, shape)
    return b.build(preprocess.__doc__ or "")


def mask_blend(
    mask_size: tuple[int, int], mask_layout: str = "NHWC", background: tuple[int, int, int] | None = None
) -> onnx.ModelProto:
    """Upsample a segmentation `mask` to the frame and blend: `image = bg + m * (frame - bg)`.

    Inputs: `frame` uint8 HxWx3, `mask` float32 [1,h,w,1] (NHWC) or [1,1,h,w] (NCHW) in 0..1, and
    `background` uint8 HxWx3 unless a constant BGR colour is given. Output `image` uint8 HxWx3.
    """
    mw, mh = mask_size
    b = GraphBuilder("mask_blend")
    frame = b.op("Cast", b.input("frame", UINT8, FRAME_SHAPE), to=FLOAT)
    nchw = mask_layout.upper() == "NCHW"
    m = b.op("Squeeze", b.input("mask", FLOAT, [1, 1, mh, mw] if nchw else [1, mh, mw, 1]), b.ints([0]))
    if nchw:
        m = b.op("Transpose", m, perm=[1, 2, 0])
    hw = b.op("Slice", b.op("Shape", "frame"), b.ints([0]), b.ints([2]))
    m = b.op("Resize", m, "", "", hw, axes=[0, 1], mode="linear", coordinate_transformation_mode="half_pixel")
    m = b.op("Clip", m, b.const(0.0), b.const(1.0))
    if background is None:
        bg = b.op("Cast", b.input("background", UINT8, FRAME_SHAPE), to=FLOAT)
    else:
        bg = b.const(np.reshape(background, (1, 1, 3)))
    x = b.op("Add", bg, b.op("Mul", m, b.op("Sub", frame, bg)))
    x = b.op("Clip", b.op("Round", x), b.const(0.0), b.const(255.0))
    b.op("Cast", x, to=UINT8, out="image")
    b.output("image", UINT8, FRAME_SHAPE)
    return b.build(mask_blend.__doc__ or "")


def _to_normalised(width: int, height: int) -> np.ndarray:
    """3x3 matrix: pixel coordinates -> GridSample coordinates (align_corners=0)."""
    return np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])


def _affine3(m: np.ndarray) -> np.ndarray:
    out = np.zeros((m.shape[0], 3, 3))
    out[:, :2] = m
    out[:, 2, 2] = 1
    return out


def crop_theta(matrices: np.ndarray, frame_size: tuple[int, int], crop_size: int) -> np.ndarray:
    """`warp_crops` input from cv2-style affine matrices [N,2,3] mapping frame pixels to crop pixels."""
    m = _affine3(np.asarray(matrices, np.float64).reshape(-1, 2, 3))
    theta = (
        _to_normalised(*frame_size) @ np.linalg.inv(m) @ np.linalg.inv(_to_normalised(crop_size, crop_size))
    )
    return np.ascontiguousarray(theta[:, :2], np.float32)


def paste_theta(matrices: np.ndarray, frame_size: tuple[int, int], crop_size: int) -> np.ndarray:
    """`paste_back` input from the same frame->crop matrices [N,2,3] used to cut the crops."""
    m = _affine3(np.asarray(matrices, np.float64).reshape(-1, 2, 3))
    theta = _to_normalised(crop_size, crop_size) @ m @ np.linalg.inv(_to_normalised(*frame_size))
    return np.ascontiguousarray(theta[:, :2], np.float32)


def warp_crops(
    crop_size: int,
    color: str = "RGB",
    layout: str = "NCHW",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> onnx.ModelProto:
    """Cut aligned face crops: `frame` uint8 HxWx3 + `theta` [N,2,3] (see `crop_theta`) -> `crops`.

    `crops` is float32 [N,3,S,S] (or [N,S,S,3]) normalised for the model, the same as
    `cv2.warpAffine(frame, M, (S, S))` with zero borders. All faces are sampled in one GridSample
    from a single copy of the frame.
    """
    s = crop_size
    b = GraphBuilder("warp_crops")
    frame = b.input("frame", UINT8, FRAME_SHAPE)
    theta = b.input("theta", FLOAT, ["faces", 2, 3])
    x = b.op(
        "Unsqueeze",
        b.op("Transpose", b.op("Cast", frame, to=FLOAT), perm=[2, 0, 1]),
        b.ints([0]),
    )  # [1,3,H,W]
    n = b.op("Slice", b.op("Shape", theta), b.ints([0]), b.ints([1]))
    size = b.op("Concat", n, b.ints([3, s, s]), axis=0)
    grid = b.op("AffineGrid", theta, size, align_corners=0)  # [N,S,S,2]
    grid = b.op("Reshape", grid, b.ints([1, -1, s, 2]))  # all faces stacked along height
    y = b.op("GridSample", x, grid, mode="linear", padding_mode="zeros", align_corners=0)  # [1,3,N*S,S]
    y = b.op("Transpose", b.op("Reshape", y, b.ints([3, -1, s, s])), perm=[1, 0, 2, 3])
    y = _normalise(b, y, color, mean, std, channel_axis=1, rank=4)
    if layout.upper() == "NHWC":
        b.op("Transpose", y, perm=[0, 2, 3, 1], out="crops")
        shape: list[int | str] = ["faces", s, s, 3]
    else:
        b.op("Identity", y, out="crops")
        shape = ["faces", 3, s, s]
    b.output("crops", FLOAT, shape)
    return b.build(warp_crops.__doc__ or "")


def feather_mask(crop_size: int, padding: float = 0.06, blur: float = 0.04) -> np.ndarray:
    """A soft box mask [S,S] in 0..1: zero `padding` of the size at the edges, Gaussian-blurred."""
    s = crop_size
    mask = np.zeros((s, s), np.float32)
    p = max(1, round(s * padding))
    mask[p : s - p, p : s - p] = 1.0
    sigma = max(0.5, s * blur)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def paste_back(
    crop_size: int,
    color: str = "RGB",
    layout: str = "NCHW",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    padding: float = 0.06,
    blur: float = 0.04,
    with_mask: bool = False,
) -> onnx.ModelProto:
    """Warp model output crops back into the frame and blend them with a feathered mask.

    Inputs: `frame` uint8 HxWx3, `crops` float32 [N,3,S,S] (or [N,S,S,3]) in the model's output range
    (pixel = crop * std + mean, in `color` order), `theta` [N,2,3] from `paste_theta`, and with
    `with_mask` a `mask` [N,1,S,S] (e.g. an occlusion mask) multiplied into the feather mask.
    Output `image` uint8 HxWx3. Overlapping faces are averaged by weight. Cost is N x H x W samples.
    """
    s = crop_size
    b = GraphBuilder("paste_back")
    nhwc = layout.upper() == "NHWC"
    frame = b.input("frame", UINT8, FRAME_SHAPE)
    crops = b.input("crops", FLOAT, ["faces", s, s, 3] if nhwc else ["faces", 3, s, s])
    theta = b.input("theta", FLOAT, ["faces", 2, 3])
    if nhwc:
        crops = b.op("Transpose", crops, perm=[0, 3, 1, 2])
    if any(v != 1 for v in std):
        crops = b.op("Mul", crops, b.const(np.reshape(std, (1, 3, 1, 1))))
    if any(v != 0 for v in mean):
        crops = b.op("Add", crops, b.const(np.reshape(mean, (1, 3, 1, 1))))
    if color.upper() == "RGB":
        crops = b.op("Gather", crops, b.ints([2, 1, 0]), axis=1)  # back to BGR
    n = b.op("Slice", b.op("Shape", theta), b.ints([0]), b.ints([1]))
    hw = b.op("Slice", b.op("Shape", frame), b.ints([0]), b.ints([2]))
    size = b.op("Concat", n, b.ints([3]), hw, axis=0)
    grid = b.op("AffineGrid", theta, size, align_corners=0)  # [N,H,W,2]
    warped = b.op("GridSample", crops, grid, mode="linear", padding_mode="zeros", align_corners=0)
    soft = b.const(feather_mask(s, padding, blur)[None, None])  # [1,1,S,S]
    mask = b.op("Expand", soft, b.op("Concat", n, b.ints([1, s, s]), axis=0))
    if with_mask:
        mask = b.op("Mul", mask, b.input("mask", FLOAT, ["faces", 1, s, s]))
    alpha = b.op("GridSample", mask, grid, mode="linear", padding_mode="zeros", align_corners=0)  # [N,1,H,W]
    total = b.op("ReduceSum", alpha, b.ints([0]), keepdims=0)  # [1,H,W]
    weighted = b.op("ReduceSum", b.op("Mul", warped, alpha), b.ints([0]), keepdims=0)  # [3,H,W]
    pixels = b.op("Transpose", b.op("Cast", frame, to=FLOAT), perm=[2, 0, 1])
    keep = b.op("Sub", b.const(1.0), b.op("Min", total, b.const(1.0)))
    x = b.op("Add", b.op("Mul", pixels, keep), b.op("Div", weighted, b.op("Max", total, b.const(1.0))))
    x = b.op("Clip", b.op("Round", b.op("Transpose", x, perm=[1, 2, 0])), b.const(0.0), b.const(255.0))
    b.op("Cast", x, to=UINT8, out="image")
    b.output("image", UINT8, FRAME_SHAPE)
    return b.build(paste_back.__doc__ or "")
