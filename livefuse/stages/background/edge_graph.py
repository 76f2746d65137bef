"""The fast guided filter of livefuse/vision/matting.py as graph nodes, for the fused background graph.

The same fit (colour guide, the same subsampling, window and eps) over the whole frame, so the device path
refines edges as the CPU path does; the CPU path fits inside the person's box only, so the two agree to
within the fit's grid (a fraction of a level, see tests/test_edge_refine.py).
"""

from __future__ import annotations

from livefuse.device.graphs import area_resize
from livefuse.engine.graph_builder import GraphBuilder
from livefuse.vision.matting import SETTINGS


def _box(b: GraphBuilder, x: str, radius: int) -> str:
    """cv2.boxFilter (normalised, BORDER_REFLECT_101) of [1, C, h, w]: reflect padding, then two 1-D mean
    pools (separable: 2 (2r + 1) taps a pixel, not (2r + 1)^2)."""
    padded = b.op("Pad", x, b.ints([0, 0, radius, radius, 0, 0, radius, radius]), mode="reflect")
    rows = b.op("AveragePool", padded, kernel_shape=[2 * radius + 1, 1])
    return b.op("AveragePool", rows, kernel_shape=[1, 2 * radius + 1])


def _channel(b: GraphBuilder, x: str, index: int) -> str:
    return b.op("Slice", x, b.ints([index]), b.ints([index + 1]), b.ints([1]))


def refined_matte(b: GraphBuilder, frame_nchw: str, frame_hwc: str, mask: str, mode: str, size: tuple[int, int]) -> str:
    """[H, W, 1] person weight: the mask [1, 1, mh, mw] fitted to the frame's colours (0..255 float)."""
    settings = SETTINGS[mode]
    width, height = size
    s = settings.subsample
    gw, gh = max(1, round(width / s)), max(1, round(height / s))
    radius = max(1, round(settings.radius * width / s))
    # The guide as the CPU path's INTER_AREA shrink; the mask straight from model resolution (bilinear).
    guide = b.op("Mul", area_resize(b, frame_nchw, size, (gw, gh)), b.const(1.0 / 255.0))
    matte = b.op(
        "Resize",
        mask,
        "",
        "",
        b.ints([gh, gw]),
        axes=[2, 3],
        mode="linear",
        antialias=1,
        coordinate_transformation_mode="half_pixel",
    )
    mean_i = _box(b, guide, radius)
    mean_p = _box(b, matte, radius)
    cov = b.op("Sub", _box(b, b.op("Mul", guide, matte), radius), b.op("Mul", mean_i, mean_p))
    chans = [_channel(b, guide, c) for c in range(3)]
    means = [_channel(b, mean_i, c) for c in range(3)]
    eps = b.const(settings.eps)
    var = {}
    for j, k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        v = b.op("Sub", _box(b, b.op("Mul", chans[j], chans[k]), radius), b.op("Mul", means[j], means[k]))
        var[j, k] = b.op("Add", v, eps) if j == k else v

    def mul(x: str, y: str) -> str:
        return b.op("Mul", x, y)

    def minus(x: str, y: str) -> str:
        return b.op("Sub", x, y)

    s00, s01, s02, s11, s12, s22 = var[0, 0], var[0, 1], var[0, 2], var[1, 1], var[1, 2], var[2, 2]
    c00, c01 = minus(mul(s11, s22), mul(s12, s12)), minus(mul(s02, s12), mul(s01, s22))
    c02, c11 = minus(mul(s01, s12), mul(s02, s11)), minus(mul(s00, s22), mul(s02, s02))
    c12, c22 = minus(mul(s01, s02), mul(s00, s12)), minus(mul(s00, s11), mul(s01, s01))
    det = b.op("Sum", mul(s00, c00), mul(s01, c01), mul(s02, c02))
    cx, cy, cz = (_channel(b, cov, c) for c in range(3))
    a = [
        b.op("Div", b.op("Sum", mul(r0, cx), mul(r1, cy), mul(r2, cz)), det)
        for r0, r1, r2 in ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))
    ]
    offset = minus(mean_p, b.op("Sum", *(mul(a[c], means[c]) for c in range(3))))
    coefficients = _box(b, b.op("Concat", *a, offset, axis=1), radius)  # [1, 4, gh, gw]
    hwc = b.op("Transpose", b.op("Squeeze", coefficients, b.ints([0])), perm=[1, 2, 0])
    up = b.op(
        "Resize",
        hwc,
        "",
        "",
        b.ints([height, width]),
        axes=[0, 1],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )  # [H, W, 4]
    gains = b.op("Slice", up, b.ints([0]), b.ints([3]), b.ints([2]))
    offsets = b.op("Slice", up, b.ints([3]), b.ints([4]), b.ints([2]))
    weighted = b.op("Mul", gains, b.op("Mul", frame_hwc, b.const(1.0 / 255.0)))
    out = b.op("Add", b.op("ReduceSum", weighted, b.ints([2]), keepdims=1), offsets)
    return b.op("Clip", out, b.const(0.0), b.const(1.0))
