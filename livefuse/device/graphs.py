"""ONNX graphs that read and write a device frame (uint8 HxWx3 BGR) without it leaving the device.

- `warp_frame`: an affine crop, as `cv2.warpAffine(..., INTER_LINEAR | WARP_INVERSE_MAP, BORDER_CONSTANT)`
  (FaceMesh crops, the face stage's mosaic of small faces);
- `shrink_frame`: the frame shrunk as `vision.geometry.resize` does (halvings, then an area step): the
  face detectors' whole-frame and tile inputs;
- `slice_regions` / `paste_regions`: face regions out of the frame and back into it, for the stages
  whose work is local to the faces (see `livefuse/device/regions.py`);
- `face_crop` / `face_paste` (with `crop_theta` / `paste_theta`): a model's aligned face crop cut from the
  frame and its output blended back (see `livefuse/device/crops.py`); `interleave_tiles`: pixel boost;
- `preprocess` / `mask_blend`: a frame resized and normalised into a model input, a mask blended over it.

Outputs are small (model inputs, face regions) except `paste_regions`'s frame, which stays on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from livefuse.engine.graph_builder import GraphBuilder
from livefuse.vision.geometry import shrink_steps

UINT8 = TensorProto.UINT8
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def _frame(name: str = "frame") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, UINT8, ["height", "width", 3])


def _to_uint8(b: GraphBuilder, x: str, out: str, half_up: bool = False) -> str:
    """float -> uint8 as OpenCV saturates: rounded (half up where OpenCV's fixed point rounds so), clipped."""
    x = b.op("Floor", b.op("Add", x, b.const(0.5))) if half_up else b.op("Round", x)
    return b.op("Cast", b.op("Clip", x, b.const(0.0), b.const(255.0)), to=UINT8, out=out)


def warp_theta(matrix: np.ndarray, frame_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """`warp_frame`'s theta [1, 2, 3] from a cv2 inverse map (output pixel -> frame pixel, 2x3)."""

    def normalise(width: int, height: int) -> np.ndarray:
        return np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])

    m = np.eye(3)
    m[:2] = np.asarray(matrix, np.float64).reshape(2, 3)
    theta = normalise(*frame_size) @ m @ np.linalg.inv(normalise(*out_size))
    return np.ascontiguousarray(theta[None, :2], np.float32)


def warp_frame(out_size: tuple[int, int]) -> onnx.ModelProto:
    """`frame` + `theta` [1, 2, 3] (see `warp_theta`) -> `crop` uint8 [h, w, 3], zero outside the frame."""
    w, h = out_size
    b = GraphBuilder("device_warp")
    x = b.op(
        "Unsqueeze", b.op("Transpose", b.op("Cast", "frame", to=FLOAT), perm=[2, 0, 1]), b.const([0], np.int64)
    )  # [1, 3, H, W]
    grid = b.op("AffineGrid", "theta", b.const([1, 3, h, w], np.int64), align_corners=0)
    y = b.op("GridSample", x, grid, mode="linear", padding_mode="zeros", align_corners=0)  # [1, 3, h, w]
    y = b.op("Transpose", b.op("Squeeze", y, b.const([0], np.int64)), perm=[1, 2, 0])
    _to_uint8(b, y, "crop")
    return b.model(
        [_frame(), helper.make_tensor_value_info("theta", FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("crop", UINT8, [h, w, 3])],
        warp_frame.__doc__ or "",
    )


def area_weights(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of cv2.INTER_AREA along one axis (read off by resizing the identity).

    INTER_AREA is separable, so two MatMuls reproduce it exactly; a Resize, even antialiased, is a
    different filter (it moves a mask's edges, and a detector's points).
    """
    eye = np.eye(src, dtype=np.float32)
    return np.ascontiguousarray(cv2.resize(eye, (dst, src), interpolation=cv2.INTER_AREA).T)


def area_resize(b: GraphBuilder, x: str, src: tuple[int, int], dst: tuple[int, int]) -> str:
    """cv2.resize(..., INTER_AREA) of float [..., h, w] from src to dst (width, height), unrounded."""
    if src == dst:
        return x
    x = b.op("MatMul", b.const(area_weights(src[1], dst[1])), x)
    return b.op("MatMul", x, b.const(area_weights(src[0], dst[0]).T))


def shrink_nodes(b: GraphBuilder, x: str, frame_size: tuple[int, int], out_size: tuple[int, int]) -> str:
    """Float [1, C, H, W] -> [1, C, h, w] as `vision.geometry.resize` makes it, rounded to whole levels.

    Exact halvings are 2x2 means rounded half up (OpenCV's fixed point); other area steps are
    `area_resize`, so results match OpenCV within one level.
    """
    w, h = frame_size
    width, height = out_size
    if width >= w or height >= h:
        x = b.op(
            "Resize",
            x,
            "",
            "",
            b.const([height, width], np.int64),
            axes=[2, 3],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
        return b.op("Round", x)
    for sw, sh in shrink_steps(frame_size, out_size):
        if (sw * 2, sh * 2) == (w, h):
            x = b.op("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2])
            x = b.op("Floor", b.op("Add", x, b.const(0.5)))
        else:
            x = b.op("Round", area_resize(b, x, (w, h), (sw, sh)))
        w, h = sw, sh
    return x


def shrink_frame(frame_size: tuple[int, int], out_size: tuple[int, int]) -> onnx.ModelProto:
    """`frame` -> `small` uint8 [h, w, 3]: `vision.geometry.resize(frame, w, h)` on the device (`shrink_nodes`)."""
    b = GraphBuilder("device_shrink")
    x = b.op(
        "Unsqueeze", b.op("Transpose", b.op("Cast", "frame", to=FLOAT), perm=[2, 0, 1]), b.const([0], np.int64)
    )  # [1, 3, H, W]
    x = b.op("Squeeze", shrink_nodes(b, x, frame_size, out_size), b.const([0], np.int64))
    width, height = out_size
    y = b.op("Transpose", x, perm=[1, 2, 0])
    b.op("Cast", b.op("Clip", y, b.const(0.0), b.const(255.0)), to=UINT8, out="small")
    # The frame's dims stay symbolic (the weights are for `frame_size`), so no CUDA graph is captured for it.
    return b.model(
        [_frame()], [helper.make_tensor_value_info("small", UINT8, [height, width, 3])], shrink_frame.__doc__ or ""
    )


def _box_parts(b: GraphBuilder, box: str) -> tuple[str, str]:
    """Slice starts [y1, x1] and ends [y2, x2] of a box [4] (x1, y1, x2, y2)."""
    starts = b.op("Gather", box, b.const([1, 0], np.int64))
    ends = b.op("Gather", box, b.const([3, 2], np.int64))
    return starts, ends


def slice_regions(count: int) -> onnx.ModelProto:
    """`frame` + `boxes` int64 [count, 4] (x1, y1, x2, y2, inside the frame) -> `region_i` uint8 [h_i, w_i, 3]."""
    b = GraphBuilder(f"device_slice_{count}")
    outputs = []
    for i in range(count):
        box = b.op("Gather", "boxes", b.const(i, np.int64), axis=0)
        starts, ends = _box_parts(b, box)
        b.op("Slice", "frame", starts, ends, b.const([0, 1], np.int64), out=f"region_{i}")
        outputs.append(helper.make_tensor_value_info(f"region_{i}", UINT8, [f"h{i}", f"w{i}", 3]))
    return b.model(
        [_frame(), helper.make_tensor_value_info("boxes", INT64, [count, 4])], outputs, slice_regions.__doc__ or ""
    )


def paste_regions(count: int) -> onnx.ModelProto:
    """`frame` + `boxes` [count, 4] + `patch_i` uint8 [h_i, w_i, 3] -> `image`: the frame with the patches in.

    Each patch goes in by Slice and Concat alone (the rows above and below, the pixels left and right of
    it), all patches in one run, so the frame this writes is one session output per frame. Later patches
    win where boxes overlap; the regions stage gives overlapping patches the same pixels.
    """
    b = GraphBuilder(f"device_paste_{count}")
    image = "frame"
    inputs = [_frame(), helper.make_tensor_value_info("boxes", INT64, [count, 4])]
    big = b.const([2**62], np.int64)
    zero = b.const([0], np.int64)
    for i in range(count):
        patch = f"patch_{i}"
        inputs.append(helper.make_tensor_value_info(patch, UINT8, [f"h{i}", f"w{i}", 3]))
        box = b.op("Gather", "boxes", b.const(i, np.int64), axis=0)

        def part(index: int) -> str:
            return b.op("Gather", box, b.const([index], np.int64))  # noqa: B023 - used at once

        x1, y1, x2, y2 = part(0), part(1), part(2), part(3)
        axis0, axis1 = b.const([0], np.int64), b.const([1], np.int64)
        above = b.op("Slice", image, zero, y1, axis0)
        below = b.op("Slice", image, y2, big, axis0)
        rows = b.op("Slice", image, y1, y2, axis0)
        left = b.op("Slice", rows, zero, x1, axis1)
        right = b.op("Slice", rows, x2, big, axis1)
        middle = b.op("Concat", left, patch, right, axis=1)
        image = b.op("Concat", above, middle, below, axis=0, out="image" if i == count - 1 else None)
    return b.model(
        inputs, [helper.make_tensor_value_info("image", UINT8, ["height", "width", 3])], paste_regions.__doc__ or ""
    )


def face_crop(size: int, mean: float, std: float) -> onnx.ModelProto:
    """`frame` + `theta` [1, 2, 3] (`crop_theta`) -> `crop` float32 [1, 3, S, S] RGB, (x - mean) / std.

    Bicubic with replicated borders, as the CPU path's `cv2.warpAffine(..., INTER_CUBIC, BORDER_REPLICATE)`
    (GridSample's cubic is OpenCV's a = -0.75 kernel), so the model sees what it sees on the CPU path.
    """
    b = GraphBuilder("device_face_crop")
    x = b.op(
        "Unsqueeze", b.op("Transpose", b.op("Cast", "frame", to=FLOAT), perm=[2, 0, 1]), b.const([0], np.int64)
    )  # [1, 3, H, W]
    grid = b.op("AffineGrid", "theta", b.const([1, 3, size, size], np.int64), align_corners=0)
    y = b.op("GridSample", x, grid, mode="cubic", padding_mode="border", align_corners=0)
    y = b.op("Clip", y, b.const(0.0), b.const(255.0))  # as OpenCV saturates the uint8 crop
    y = b.op("Gather", y, b.const([2, 1, 0], np.int64), axis=1)  # BGR -> RGB
    b.op("Mul", b.op("Sub", y, b.const(mean)), b.const(1.0 / std), out="crop")
    return b.model(
        [_frame(), helper.make_tensor_value_info("theta", FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("crop", FLOAT, [1, 3, size, size])],
        face_crop.__doc__ or "",
    )


def face_paste(size: int, mean: float, std: float) -> onnx.ModelProto:
    """`frame` + `crop` [1, 3, S, S] RGB in the model's range (pixel = crop * std + mean) + `box` int64 [4]
    (the frame region the crop covers: x1, y1, x2, y2) + `theta` [1, 2, 3] (`paste_theta` for
    that region) + `mask` [1, 1, S, S] -> `image`: the crop blended into the frame.

    As the CPU path's `faces.paste.paste_back`: the crop warped back bicubic with replicated borders, the
    mask bilinear with zeros outside, `frame * (1 - m) + crop * m`, rounded; and, as there, only the
    region is sampled (the sampling grid is the region's size, not the frame's), then put back in place.
    """
    b = GraphBuilder("device_face_paste")
    starts = b.op("Gather", "box", b.const([1, 0], np.int64))
    ends = b.op("Gather", "box", b.const([3, 2], np.int64))
    axes = b.const([0, 1], np.int64)
    region = b.op("Slice", "frame", starts, ends, axes)  # [h, w, 3]
    hw = b.op("Sub", ends, starts)
    crop = b.op("Add", b.op("Mul", "crop", b.const(std)), b.const(mean))
    crop = b.op("Gather", b.op("Clip", crop, b.const(0.0), b.const(255.0)), b.const([2, 1, 0], np.int64), axis=1)
    grid = b.op("AffineGrid", "theta", b.op("Concat", b.const([1, 3], np.int64), hw, axis=0), align_corners=0)
    face = b.op("GridSample", crop, grid, mode="cubic", padding_mode="border", align_corners=0)  # [1, 3, h, w]
    alpha = b.op("GridSample", "mask", grid, mode="linear", padding_mode="zeros", align_corners=0)  # [1, 1, h, w]
    alpha = b.op("Clip", alpha, b.const(0.0), b.const(1.0))
    base = b.op("Unsqueeze", b.op("Transpose", b.op("Cast", region, to=FLOAT), perm=[2, 0, 1]), b.const([0], np.int64))
    face = b.op("Clip", face, b.const(0.0), b.const(255.0))  # the CPU path's crop is uint8
    x = b.op("Add", base, b.op("Mul", alpha, b.op("Sub", face, base)))
    x = b.op("Transpose", b.op("Squeeze", x, b.const([0], np.int64)), perm=[1, 2, 0])
    patch = _to_uint8(b, x, "patch", half_up=True)
    # The region back into the frame: the rows above and below, the pixels left and right of it.
    big, zero = b.const([2**62], np.int64), b.const([0], np.int64)
    axis0, axis1 = b.const([0], np.int64), b.const([1], np.int64)
    y1, x1 = b.op("Gather", "box", b.const([1], np.int64)), b.op("Gather", "box", b.const([0], np.int64))
    y2, x2 = b.op("Gather", "box", b.const([3], np.int64)), b.op("Gather", "box", b.const([2], np.int64))
    rows = b.op("Slice", "frame", y1, y2, axis0)
    middle = b.op("Concat", b.op("Slice", rows, zero, x1, axis1), patch, b.op("Slice", rows, x2, big, axis1), axis=1)
    b.op(
        "Concat",
        b.op("Slice", "frame", zero, y1, axis0),
        middle,
        b.op("Slice", "frame", y2, big, axis0),
        axis=0,
        out="image",
    )
    return b.model(
        [
            _frame(),
            helper.make_tensor_value_info("crop", FLOAT, [1, 3, size, size]),
            helper.make_tensor_value_info("box", INT64, [4]),
            helper.make_tensor_value_info("theta", FLOAT, [1, 2, 3]),
            helper.make_tensor_value_info("mask", FLOAT, [1, 1, size, size]),
        ],
        [helper.make_tensor_value_info("image", UINT8, ["height", "width", 3])],
        face_paste.__doc__ or "",
    )


def interleave_tiles(k: int, size: int) -> onnx.ModelProto:
    """`tile_0` .. `tile_{k*k-1}` [1, 3, S, S] -> `crop` [1, 3, k*S, k*S]: pixel boost's reassembly, the inverse
    of cutting tile i*k + j as every k-th pixel from row i, column j (`faces.swapper.explode`)."""
    b = GraphBuilder("device_interleave_tiles")
    tiles = b.op("Concat", *[f"tile_{t}" for t in range(k * k)], axis=0)  # [k*k, 3, S, S]
    grid = b.op("Reshape", tiles, b.const([k, k, 3, size, size], np.int64))  # i, j, c, a, b
    spread = b.op("Transpose", grid, perm=[2, 3, 0, 4, 1])  # c, a, i, b, j
    b.op("Reshape", spread, b.const([1, 3, k * size, k * size], np.int64), out="crop")
    inputs = [helper.make_tensor_value_info(f"tile_{t}", FLOAT, [1, 3, size, size]) for t in range(k * k)]
    return b.model(
        inputs,
        [helper.make_tensor_value_info("crop", FLOAT, [1, 3, k * size, k * size])],
        interleave_tiles.__doc__ or "",
    )


# -- face crops: the matrices the crop and paste graphs take ------------------------------------------


def _to_normalised(width: int, height: int) -> np.ndarray:
    """3x3 matrix: pixel coordinates -> GridSample coordinates (align_corners=0)."""
    return np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])


def _affine3(m: np.ndarray) -> np.ndarray:
    out = np.zeros((m.shape[0], 3, 3))
    out[:, :2] = m
    out[:, 2, 2] = 1
    return out


def crop_theta(matrices: np.ndarray, frame_size: tuple[int, int], crop_size: int) -> np.ndarray:
    """`face_crop` input from cv2-style affine matrices [N,2,3] mapping frame pixels to crop pixels."""
    m = _affine3(np.asarray(matrices, np.float64).reshape(-1, 2, 3))
    theta = _to_normalised(*frame_size) @ np.linalg.inv(m) @ np.linalg.inv(_to_normalised(crop_size, crop_size))
    return np.ascontiguousarray(theta[:, :2], np.float32)


def paste_theta(matrices: np.ndarray, frame_size: tuple[int, int], crop_size: int) -> np.ndarray:
    """`face_paste` input from the same frame->crop matrices [N,2,3] used to cut the crops."""
    m = _affine3(np.asarray(matrices, np.float64).reshape(-1, 2, 3))
    theta = _to_normalised(crop_size, crop_size) @ m @ np.linalg.inv(_to_normalised(*frame_size))
    return np.ascontiguousarray(theta[:, :2], np.float32)


# -- a frame into a model input, a mask over a frame (bilinear, half-pixel centres: cv2.INTER_LINEAR) ------

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
