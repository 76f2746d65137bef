"""Putting a processed face crop back into the frame: inverse affine, feathered mask, colour matching.

Only the crop's footprint in the frame is warped and blended (never the full frame), so the cost
scales with the face size, not the resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from livefuse.faces.align import invert_affine, transform_points


def box_mask(size: int, blur: float = 0.3, padding: tuple[float, float, float, float] = (0, 0, 0, 0)) -> np.ndarray:
    """A `size` x `size` float32 mask, 1 inside and feathered to 0 at the crop's edges.

    `blur` is the feather width as a fraction of half the crop; `padding` (top, right, bottom, left, in
    percent of the side) pulls the mask in further, e.g. to keep a swapped forehead off the hair.
    """
    amount = int(size * 0.5 * blur)
    edge = max(amount // 2, 1)
    mask: np.ndarray = np.ones((size, size), np.float32)
    top, right, bottom, left = (max(edge, int(size * p / 100)) for p in padding)
    mask[:top] = 0
    mask[size - bottom :] = 0
    mask[:, :left] = 0
    mask[:, size - right :] = 0
    if amount > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), amount * 0.25)
    return mask


def match_colour(crop: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`crop` (BGR uint8) with its Lab mean and spread moved to `reference`'s, both measured where mask > 0.5.

    A swapped face keeps the lighting and skin tone of the person it lands on (Reinhard colour transfer).
    """
    inside = mask > 0.5
    if inside.sum() < 16:
        return crop
    src = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_BGR2LAB).astype(np.float32)
    s_mean, s_std = src[inside].mean(0), src[inside].std(0)
    r_mean, r_std = ref[inside].mean(0), ref[inside].std(0)
    gain = np.clip(r_std / np.maximum(s_std, 1e-3), 0.5, 2.0)  # bounded: a flat crop must not explode
    out = (src - s_mean) * gain + r_mean
    return cv2.cvtColor(np.clip(out, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2BGR)


def paste_region(frame_shape: tuple[int, ...], crop_size: int, matrix: np.ndarray) -> tuple[int, int, int, int]:
    """The frame box x1, y1, x2, y2 (clipped) that a crop aligned by `matrix` covers."""
    corners = np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]], np.float64)
    pts = transform_points(corners, invert_affine(matrix))
    h, w = frame_shape[:2]
    x1, y1 = np.floor(pts.min(0)).astype(int)
    x2, y2 = np.ceil(pts.max(0)).astype(int)
    return max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))


def footprint(matrix: np.ndarray, crop_size: int, margin: float = 3.0) -> tuple[float, float, float, float]:
    """The frame box (unclipped) a crop aligned by `matrix` reads and its paste-back writes, plus `margin`
    pixels for the cubic interpolation's reach: what a face-local stage names as its region."""
    corners = np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]], np.float64)
    pts = transform_points(corners, invert_affine(matrix))
    lo, hi = pts.min(0) - margin, pts.max(0) + margin
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def paste_back(
    frame: np.ndarray, crop: np.ndarray, mask: np.ndarray, matrix: np.ndarray, strength: float = 1.0
) -> tuple[int, int, int, int]:
    """Blend `crop` (aligned by the frame-to-crop `matrix`) into `frame` in place; returns the box touched.

    `mask` is the crop-space weight (0..1); `strength` scales it (1 = replace, 0 = no change).
    """
    size = crop.shape[0]
    x1, y1, x2, y2 = paste_region(frame.shape, size, matrix)
    if x2 <= x1 or y2 <= y1 or strength <= 0:
        return x1, y1, x1, y1
    inverse = invert_affine(matrix)
    inverse[:, 2] -= (x1, y1)
    region = (x2 - x1, y2 - y1)
    weight = cv2.warpAffine(
        mask.astype(np.float32, copy=False),
        inverse,
        region,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    weight = np.clip(weight * float(strength), 0.0, 1.0)[..., None]
    face = cv2.warpAffine(crop, inverse, region, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    roi = frame[y1:y2, x1:x2]
    blended = roi.astype(np.float32) * (1.0 - weight) + face.astype(np.float32) * weight
    roi[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return x1, y1, x2, y2
