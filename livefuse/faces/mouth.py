"""The mouth mask: after a swap, the person's own mouth is blended back from the original frame.

inswapper paints a whole face at 128 px; speech looks wrong when the painted lips do not follow the
real ones. The region is FaceMesh's outer lip contour, grown about its centre by the setting (0..1:
up to twice its size), fully original inside and feathered outside over a band proportional to the
mouth's width, so the seam does not show. Only the region's box is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# MediaPipe FaceMesh's outer lip loop (FACEMESH_LIPS, outer edges), in order around the mouth.
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
MOUTH_CORNERS = (61, 291)
FEATHER_OF_WIDTH = 0.3  # feather band at mouth_feather = 1, as a fraction of the mouth's width


def lip_polygon(mesh: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """The outer lip contour [20, 2] in frame pixels, scaled about its centre by 1 + grow."""
    pts = np.asarray(mesh, np.float64)[list(LIPS_OUTER), :2]
    centre = pts.mean(0)
    return centre + (pts - centre) * (1.0 + float(grow))


@dataclass(frozen=True)
class MouthRegion:
    """Where the original is restored: a frame box and its weight (1 = original, 0 = swapped)."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2, clipped to the frame
    weight: np.ndarray  # float32 [y2 - y1, x2 - x1, 1]


def mouth_region(mesh: np.ndarray, grow: float, feather: float, shape: tuple[int, ...]) -> MouthRegion | None:
    """The grown lip region of one face, feathered outwards; None when it lies outside the frame."""
    poly = lip_polygon(mesh, grow)
    corners = np.asarray(mesh, np.float64)[list(MOUTH_CORNERS), :2]
    width = float(np.linalg.norm(corners[1] - corners[0]))
    band = max(1.0, feather * FEATHER_OF_WIDTH * width * (1.0 + grow))
    h, w = shape[:2]
    x1, y1 = np.floor(poly.min(0) - band - 1).astype(int)
    x2, y2 = np.ceil(poly.max(0) + band + 1).astype(int)
    x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))
    if x2 <= x1 or y2 <= y1:
        return None
    inside = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(inside, [np.round(poly - (x1, y1)).astype(np.int32)], 1)
    # distance to the region for every outside pixel; 0 inside: weight 1 there, falling to 0 over `band`
    dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    ramp = np.clip(1.0 - dist / band, 0.0, 1.0)
    weight = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no visible edge
    weight[inside == 1] = 1.0
    return MouthRegion((x1, y1, x2, y2), weight[..., None])


def restore_mouth(frame: np.ndarray, original: np.ndarray, region: MouthRegion) -> None:
    """Blend `original` (the untouched pixels of region.box) back into `frame` in place."""
    x1, y1, x2, y2 = region.box
    roi = frame[y1:y2, x1:x2]
    w = region.weight
    blended = roi.astype(np.float32) * (1.0 - w) + original.astype(np.float32) * w
    roi[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
