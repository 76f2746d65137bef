"""The skin region of a FaceMesh face (face oval minus eyes, brows and lips) and an edge-aware smoother.

Index lists are MediaPipe FaceMesh contours (face_mesh_connections), each in drawing order.
"""

from __future__ import annotations

import cv2
import numpy as np

from livefuse.vision.landmarks import LEFT_EYE, LIPS_OUTER, RIGHT_EYE

FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
KEEP_SHARP = (RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW, LIPS_OUTER)


def _poly(mesh: np.ndarray, indices: tuple[int, ...], origin: np.ndarray) -> np.ndarray:
    return np.round(mesh[list(indices), :2] - origin).astype(np.int32)


def skin_mask(mesh: np.ndarray, origin: tuple[int, int], shape: tuple[int, int], face_width: float) -> np.ndarray:
    """Float32 mask (shape h, w; region whose top-left is `origin` in frame pixels): 1 on skin, 0 elsewhere.

    The oval edge is feathered; eyes, brows and lips get a margin and are exactly 0, so they stay sharp.
    """
    o = np.asarray(origin, np.float32)
    h, w = shape
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [_poly(mesh, FACE_OVAL, o)], 255)
    keep = np.zeros((h, w), np.uint8)
    polys = [_poly(mesh, idx, o) for idx in KEEP_SHARP]
    cv2.fillPoly(keep, polys, 255)
    margin = max(1, round(face_width * 0.02))
    cv2.polylines(keep, polys, True, 255, thickness=2 * margin + 1)
    mask: np.ndarray = cv2.subtract(oval, keep).astype(np.float32) * (1.0 / 255.0)
    sigma = max(0.8, face_width * 0.015)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    core = np.zeros((h, w), np.uint8)
    cv2.fillPoly(core, polys, 255)
    cv2.polylines(core, polys, True, 255, thickness=max(1, margin // 2) * 2 + 1)
    mask[core > 0] = 0.0
    return mask


def guided_smooth(image: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Self-guided filter (He et al.) per channel on float32 0..255: flattens texture, keeps strong edges.

    Box filters only, so its cost does not grow with `radius` (unlike a bilateral filter).
    """
    size = (2 * radius + 1, 2 * radius + 1)
    mean = cv2.boxFilter(image, -1, size)
    var = cv2.boxFilter(image * image, -1, size) - mean * mean
    a = var / (var + eps)
    b = mean - a * mean
    return cv2.boxFilter(a, -1, size) * image + cv2.boxFilter(b, -1, size)
