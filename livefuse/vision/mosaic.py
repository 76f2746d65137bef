"""Close-ups of several places of a frame in one model run: square crops around boxes, side by side."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from livefuse.frame import Face
from livefuse.vision.pixels import FramePixels

CONTEXT = 2.5  # a crop's side, in sides of the box it is around: the face lies whole inside its own cell


def faces_in_mosaic(
    pixels: FramePixels,
    boxes: list[np.ndarray],
    side: int,
    detect: Callable[[np.ndarray], list[Face]],
    whole: bool = False,
) -> list[Face]:
    """Faces `detect` finds in one `side` x `side` mosaic of crops around `boxes` (a grid of as many cells as
    they need), mapped back to frame pixels. A face counts for the cell its centre is in; with `whole`, only
    if its box also lies inside that cell."""
    grid = int(np.ceil(np.sqrt(len(boxes))))
    cell = side // grid
    mosaic = np.zeros((side, side, 3), np.uint8)
    cells = []
    for k, box in enumerate(boxes):
        centre = (box[:2] + box[2:]) / 2
        crop = max(float(max(box[2:] - box[:2])) * CONTEXT, 8.0)
        x0, y0 = centre - crop / 2
        k_px = cell / crop
        m = np.array([[k_px, 0, -x0 * k_px], [0, k_px, -y0 * k_px]], np.float32)  # frame -> cell pixels
        cx, cy = (k % grid) * cell, (k // grid) * cell
        mosaic[cy : cy + cell, cx : cx + cell] = pixels.warped(m, (cell, cell), inverse=False)
        cells.append((np.array([cx, cy], np.float32), np.array([x0, y0], np.float32), crop / cell))
    out = []
    for face in detect(mosaic):
        centre = (face.box[:2] + face.box[2:]) / 2
        for origin, shift, back in cells:  # back: cell pixels -> frame pixels
            inside = (face.box[:2] >= origin - 1).all() and (face.box[2:] <= origin + cell + 1).all()
            if (origin <= centre).all() and (centre < origin + cell).all() and (inside or not whole):
                out.append(
                    Face(
                        box=(face.box - np.tile(origin, 2)) * back + np.tile(shift, 2),
                        score=face.score,
                        landmarks5=(face.landmarks5 - origin) * back + shift,
                    )
                )
                break
    return out
