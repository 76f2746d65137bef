"""Occlusion: what is in front of a face keeps its original pixels after a swap.

`hands`: MediaPipe's palm detector and hand landmarker run on a square around each swapped face (2.5
times its size, so a hand there is large enough for the 192-px palm detector), and each hand's 21
landmarks become a convex hull, grown by a margin for the fingers' width and feathered: the region
`faces.regions.restore` blends back from the original frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from livefuse.engine.loader import open_model
from livefuse.faces.regions import KeepRegion, hull_region
from livefuse.frame import Face
from livefuse.vision.hands import HandFinder

if TYPE_CHECKING:
    from livefuse.engine import Engine

MODES = ("off", "hands", "parser", "both")  # "parser" and "both": faces/parser.py
SEARCH = 2.5  # the square searched for hands, as a multiple of the face box's longer side
MARGIN = 0.1  # the hull's growth, as a fraction of the hand's size (about half a finger's width)
FEATHER = 0.06  # the soft edge beyond it, same unit
SAME_HAND = 0.3  # two finds closer than this (fraction of the hand's size) are one hand seen twice


class HandOcclusion:
    """The hands in front of faces, as regions to keep."""

    def __init__(self, engine: Engine) -> None:
        self.finder = HandFinder(open_model(engine, "palm_detection"), open_model(engine, "hand_landmark"))

    def search_box(self, face: Face, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """The frame box searched for hands in front of this face, clipped."""
        x1, y1, x2, y2 = (float(v) for v in face.box)
        half = max(x2 - x1, y2 - y1) * SEARCH / 2
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        h, w = shape[:2]
        box = max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half)), min(h, int(cy + half))
        return box if box[2] - box[0] >= 16 and box[3] - box[1] >= 16 else None

    def hands(self, image: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        """Each hand's 21 landmarks [21, 2] in frame pixels, found near these faces (`image` needs only
        their search boxes filled)."""
        found: list[np.ndarray] = []
        for face in faces:
            box = self.search_box(face, image.shape)
            if box is None:
                continue
            x1, y1, x2, y2 = box
            for hand in self.finder.find(np.ascontiguousarray(image[y1:y2, x1:x2])):
                points = hand.points + np.array([x1, y1], np.float32)
                size = float(np.ptp(points, axis=0).max())
                if all(np.linalg.norm(points.mean(0) - other.mean(0)) > SAME_HAND * size for other in found):
                    found.append(points)
        return found

    def regions(self, image: np.ndarray, faces: list[Face]) -> list[KeepRegion]:
        """The feathered hull of every hand near these faces."""
        out = []
        for points in self.hands(image, faces):
            size = float(np.ptp(points, axis=0).max())
            region = hull_region(points, MARGIN * size, FEATHER * size, image.shape)
            if region is not None:
                out.append(region)
        return out
