"""Local liquify warps as backward displacement fields (for `cv2.remap`): zero outside their circle.

Each returns (dx, dy) such that the output pixel p samples the input at p + (dx, dy); fields of
warps that do not overlap add up exactly.
"""

from __future__ import annotations

import numpy as np


def radial_scale(
    xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, radius: float, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """Magnify around `centre`: by 1 / (1 - amount) at the centre, smoothly back to 1 at `radius`.

    Output p samples c + (p - c) * (1 - amount * (1 - d²/R²)); for amount < 1 this is monotonic
    in d, so nothing folds over.
    """
    ox, oy = xs - float(centre[0]), ys - float(centre[1])
    d2 = (ox * ox + oy * oy) / (radius * radius)
    k = np.where(d2 < 1.0, -amount * (1.0 - d2), 0.0).astype(np.float32)
    return ox * k, oy * k


def local_translate(
    xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, radius: float, move: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Push the content at `centre` by `move`, fading to nothing at `radius` (Gustafsson's local translation)."""
    ox, oy = xs - float(centre[0]), ys - float(centre[1])
    r2 = radius * radius
    d2 = ox * ox + oy * oy
    m2 = float(move[0] ** 2 + move[1] ** 2)
    w = np.where(d2 < r2, ((r2 - d2) / (r2 - d2 + m2)) ** 2, 0.0).astype(np.float32)
    return -w * float(move[0]), -w * float(move[1])
