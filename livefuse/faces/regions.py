"""Kept regions: after a swap, parts of the person's own face are blended back from the original frame.

`keep_regions` names any of eyes, brows, mouth and nose. Each is one or two FaceMesh contours (468
points), grown about their own centre by the setting (0..1: up to twice their size), fully original
inside and feathered outside over a band proportional to the part's width, so no seam shows. The
mouth keeps speech looking real: inswapper paints its own lips at 128 px. Only the regions' box is
touched. `hull_region` makes the same kind of region around an occluder (a hand's landmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from livefuse.vision.landmarks import LEFT_EYE, LIPS_OUTER, RIGHT_EYE

# MediaPipe FaceMesh contours (face_mesh_connections.py of the 0.10.14 wheel), each in order around the
# part, with the two points whose distance is the part's width (the feather scales with it).
Contour = tuple[tuple[int, ...], tuple[int, int], bool]  # points, width from-to, convex hull of the points
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64)
PARTS: dict[str, tuple[Contour, ...]] = {
    "eyes": ((RIGHT_EYE, (33, 133), False), (LEFT_EYE, (263, 362), False)),
    "brows": ((RIGHT_BROW, (46, 107), False), (LEFT_BROW, (276, 336), False)),
    "mouth": ((LIPS_OUTER, (61, 291), False),),
    "nose": ((NOSE, (64, 294), True),),
}
NAMES = tuple(PARTS)
FEATHER_OF_WIDTH = 0.3  # feather band at feather = 1, as a fraction of the part's width


def contour(mesh: np.ndarray, points: tuple[int, ...], grow: float = 0.0, hull: bool = False) -> np.ndarray:
    """One part's contour [N, 2] in frame pixels, scaled about its centre by 1 + grow."""
    pts = np.asarray(mesh, np.float64)[list(points), :2]
    if hull:
        pts = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    centre = pts.mean(0)
    return centre + (pts - centre) * (1.0 + float(grow))


def lip_polygon(mesh: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """The outer lip contour [20, 2] in frame pixels, scaled about its centre by 1 + grow."""
    return contour(mesh, LIPS_OUTER, grow)


@dataclass(frozen=True)
class KeepRegion:
    """Where the original is restored: a frame box and its weight (1 = original, 0 = swapped)."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2, clipped to the frame
    weight: np.ndarray  # float32 [y2 - y1, x2 - x1, 1]


def _feathered(poly: np.ndarray, band: float, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """The polygon's weight inside `box`: 1 inside and up to `margin` pixels outside, then a smoothstep to 0
    over `band` pixels."""
    x1, y1, x2, y2 = box
    inside = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(inside, [np.round(poly - (x1, y1)).astype(np.int32)], 1)
    dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)  # 0 inside
    if margin > 0:
        inside[dist <= margin] = 1
        dist = np.maximum(dist - margin, 0.0)
    ramp = np.clip(1.0 - dist / band, 0.0, 1.0)
    weight = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no visible edge
    weight[inside == 1] = 1.0
    return weight


def keep_region(
    mesh: np.ndarray, parts: tuple[str, ...] | list[str], grow: float, feather: float, shape: tuple[int, ...]
) -> KeepRegion | None:
    """The named parts of one face, grown and feathered outwards, as one region; None when there are no
    parts or they lie outside the frame."""
    pieces = []
    for name in parts:
        for points, (a, b), hull in PARTS[name]:
            poly = contour(mesh, points, grow, hull)
            width = float(np.linalg.norm(np.asarray(mesh, np.float64)[b, :2] - np.asarray(mesh, np.float64)[a, :2]))
            pieces.append((poly, max(1.0, feather * FEATHER_OF_WIDTH * width * (1.0 + grow))))
    if not pieces:
        return None
    h, w = shape[:2]
    lo = np.min([poly.min(0) - band for poly, band in pieces], axis=0)
    hi = np.max([poly.max(0) + band for poly, band in pieces], axis=0)
    x1, y1 = np.floor(lo - 1).astype(int)
    x2, y2 = np.ceil(hi + 1).astype(int)
    box = max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    weight = _feathered(*pieces[0], box)
    for poly, band in pieces[1:]:
        np.maximum(weight, _feathered(poly, band, box), out=weight)
    return KeepRegion(box, weight[..., None])


def hull_region(points: np.ndarray, margin: float, band: float, shape: tuple[int, ...]) -> KeepRegion | None:
    """The convex hull of `points` [N, 2] (frame pixels), grown by `margin` pixels and feathered over `band`
    more: an occluder's region (a hand's landmarks lie on its bones, so the margin reaches its edges)."""
    hull = cv2.convexHull(np.asarray(points, np.float32))[:, 0].astype(np.float64)
    h, w = shape[:2]
    reach = margin + band + 1
    x1, y1 = np.floor(hull.min(0) - reach).astype(int)
    x2, y2 = np.ceil(hull.max(0) + reach).astype(int)
    box = max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return KeepRegion(box, _feathered(hull, max(band, 1.0), box, margin)[..., None])


def restore(frame: np.ndarray, original: np.ndarray, region: KeepRegion) -> None:
    """Blend `original` (the untouched pixels of region.box) back into `frame` in place."""
    x1, y1, x2, y2 = region.box
    roi = frame[y1:y2, x1:x2]
    w = region.weight
    blended = roi.astype(np.float32) * (1.0 - w) + original.astype(np.float32) * w
    roi[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
