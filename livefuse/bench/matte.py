"""How close a matte is to the true one near its edge: the error a refinement of the edge can change.

- `edge_error`: mean absolute alpha error in the band within `reach` pixels of the true edge (where the
  true alpha is neither 0 nor 1, or the contour of a hard true mask, widened): the interior and the far
  room, which any mask gets right, are left out.
- `boundary_fscore`: the contour of the matte at 0.5 against the true contour, a contour pixel counting as
  found within `tolerance` pixels (the boundary F-measure of Martin et al., and of the DAVIS benchmark).
"""

from __future__ import annotations

import numpy as np


def edge_band(true: np.ndarray, reach: int = 10) -> np.ndarray:
    """Pixels within `reach` of the true edge (bool): of its soft pixels, or, where the truth is a hard
    mask (no soft pixel, as a hand-drawn person mask), of its 0.5 contour."""
    import cv2

    soft = ((true > 0.01) & (true < 0.99)).astype(np.uint8)
    if not soft.any():
        soft = _contour(true >= 0.5).astype(np.uint8)
    return cv2.dilate(soft, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0


def edge_error(matte: np.ndarray, true: np.ndarray, reach: int = 10) -> float:
    """Mean |matte - true| over the edge band."""
    band = edge_band(true, reach)
    return float(np.abs(matte - true)[band].mean())


def _contour(mask: np.ndarray) -> np.ndarray:
    import cv2

    inside = mask.astype(np.uint8)
    return (inside - cv2.erode(inside, np.ones((3, 3), np.uint8))) > 0


def boundary_fscore(matte: np.ndarray, true: np.ndarray, tolerance: float = 2.0) -> float:
    """F-measure of the 0.5 contours: precision and recall of contour pixels matched within `tolerance` px."""
    import cv2

    found, wanted = _contour(matte >= 0.5), _contour(true >= 0.5)
    if not found.any() or not wanted.any():
        return 0.0
    to_wanted = cv2.distanceTransform((~wanted).astype(np.uint8), cv2.DIST_L2, 3)
    to_found = cv2.distanceTransform((~found).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((to_wanted[found] <= tolerance).mean())
    recall = float((to_found[wanted] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
