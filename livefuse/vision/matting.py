"""Edge refinement of a low-resolution matte against the full-resolution picture: the fast guided filter.

A guided filter (He, Sun and Tang, 2010) fits the matte, window by window, as a linear function of the
picture (q = a I + b), so its edges move onto the picture's own edges: hair and a shoulder against the room
come out sharp where an upsampled 256x144 mask is a blurred staircase. The fast form (He and Sun, 2015)
fits a and b at a reduced resolution, where the matte's detail ends anyway, and only the last step, a I + b,
runs at full resolution. Box filters only, so the cost does not grow with the radius.

Both guide with the three colour channels (an edge between two colours of equal brightness holds; a grey
guide lost the demo's helmet against the wall): "fast" fits at 1/4 of the frame's resolution, "fine" at 1/2
with a wider window (benchmarks/edge_refine.py has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

EDGE_MODES = ("off", "fast", "fine")


@dataclass(frozen=True)
class EdgeSettings:
    colour: bool  # guide with the three colour channels (else grey)
    subsample: int  # the fit runs at 1/subsample of the frame's resolution
    # Window radius, a fraction of the frame's width: wider than the upsampled, feathered mask's ramp
    # (about 1 % of the width each side), or the ramp's far ends stay as they were.
    radius: float
    eps: float  # regularisation on a 0..1 picture: edges weaker than ~sqrt(eps) are smoothed over


SETTINGS = {
    "fast": EdgeSettings(colour=True, subsample=4, radius=0.02, eps=1e-4),
    "fine": EdgeSettings(colour=True, subsample=2, radius=0.02, eps=1e-4),
}


def _box(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT_101)


def _grey_fit(guide: np.ndarray, matte: np.ndarray, size: tuple[int, int], eps: float) -> list[np.ndarray]:
    mean_i, mean_p = _box(guide, size), _box(matte, size)
    cov = _box(guide * matte, size) - mean_i * mean_p
    var = _box(guide * guide, size) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return [_box(a, size), _box(b, size)]


def _colour_fit(guide: np.ndarray, matte: np.ndarray, size: tuple[int, int], eps: float) -> list[np.ndarray]:
    """a (3 channels) and b: the per-window least squares fit of the matte to the colour guide."""
    mean_i = _box(guide, size)
    mean_p = _box(matte, size)
    cov = _box(guide * matte[..., None], size) - mean_i * mean_p[..., None]
    var = {}
    for j, k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        var[j, k] = _box(guide[..., j] * guide[..., k], size) - mean_i[..., j] * mean_i[..., k]
    s00, s01, s02 = var[0, 0] + eps, var[0, 1], var[0, 2]
    s11, s12, s22 = var[1, 1] + eps, var[1, 2], var[2, 2] + eps
    # The symmetric 3x3 inverse by cofactors, per pixel.
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    cx, cy, cz = cov[..., 0], cov[..., 1], cov[..., 2]
    a0 = (c00 * cx + c01 * cy + c02 * cz) / det
    a1 = (c01 * cx + c11 * cy + c12 * cz) / det
    a2 = (c02 * cx + c12 * cy + c22 * cz) / det
    b = mean_p - a0 * mean_i[..., 0] - a1 * mean_i[..., 1] - a2 * mean_i[..., 2]
    return [_box(a0, size), _box(a1, size), _box(a2, size), _box(b, size)]


def refine_matte(image: np.ndarray, matte: np.ndarray, mode: str, frame_width: int) -> np.ndarray:
    """The matte (float32 0..1, any resolution) refined against `image` (BGR uint8), at the image's size.

    `frame_width` sets the window (a fraction of the whole frame's width, so a crop of the frame gets the
    window the whole frame would).
    """
    settings = SETTINGS[mode]
    height, width = image.shape[:2]
    s = settings.subsample
    small = (max(1, round(width / s)), max(1, round(height / s)))
    radius = max(1, round(settings.radius * frame_width / s))
    size = (2 * radius + 1, 2 * radius + 1)
    guide_small = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    shrink = cv2.INTER_AREA if matte.shape[1] > small[0] else cv2.INTER_LINEAR
    matte_small = cv2.resize(matte, small, interpolation=shrink).astype(np.float32)
    if settings.colour:
        guide = guide_small.astype(np.float32) * (1.0 / 255.0)
        fit = _colour_fit(guide, matte_small, size, settings.eps)
    else:
        grey = cv2.cvtColor(guide_small, cv2.COLOR_BGR2GRAY).astype(np.float32) * (1.0 / 255.0)
        fit = _grey_fit(grey, matte_small, size, settings.eps)
    # One resize of all coefficients together, then a I + b as one per-pixel product and channel sum.
    up = cv2.resize(cv2.merge(fit), (width, height), interpolation=cv2.INTER_LINEAR)
    if settings.colour:
        with_one = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)  # the fourth channel (255) multiplies b
        product = cv2.multiply(up, with_one, scale=1.0 / 255.0, dtype=cv2.CV_32F)
        out = cv2.transform(product, np.ones((1, 4), np.float32))
    else:
        grey_full = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * (1.0 / 255.0)
        out = up[..., 0] * grey_full + up[..., 1]
    return np.clip(out, 0.0, 1.0, out=out)
