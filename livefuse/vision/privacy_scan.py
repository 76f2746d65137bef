"""The privacy scan: every frame searched for faces by a second detector family, for recall, not for effects.

Before a stage that guards privacy (anonymise) the face stage runs this beside its BlazeFace passes. YuNet
looks at the whole frame, shrunk only so far that the smallest face to cover keeps `YUNET_SMALLEST` pixels,
with a mirrored border on every side so a face cut by any edge is a whole face to it. A weak candidate
(`weak` <= score < `score`) gets a close-up at once: up to nine of them in one mosaic of crops, at a size
where a real face scores high. What it finds is covered whether or not a track follows it, with no cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from livefuse.frame import Face
from livefuse.vision.detectors import YuNetDetector
from livefuse.vision.geometry import box_overlaps
from livefuse.vision.mosaic import faces_in_mosaic
from livefuse.vision.pixels import FramePixels

YUNET_SMALLEST = 12.0  # px in YuNet's input: smaller faces it finds now and then (../shared/privacy, 2026-12-07)
# The mirrored border, as a fraction of the frame's width, on every side. A face cut by an edge is then a whole
# face to YuNet (four faces cut at the top or bottom scored 0.86-0.92 with a border of 0.1, 0.06-0.72 with a black
# or repeated one: ../shared/privacy pans, 2026-12-07; at 0.05 beside the frame a face entering from the left was
# missed, tests/test_tracking.py).
EDGE_SIDE, EDGE_TOP = 0.1, 0.1
CELL = 128  # a close-up's side in the mosaic: the candidate is 1/2.5 of it, about 50 px, where YuNet is sure
MOSAIC_MAX = 9


@dataclass(frozen=True)
class ScanLevel:
    """How hard a frame is searched: faces from `smallest` px (of the frame) up."""

    smallest: float
    summary: str


LEVELS = {
    "fast": ScanLevel(30.0, "faces from 30 px: YuNet on the frame at 0.4 of its size"),
    "thorough": ScanLevel(20.0, "faces from 20 px: YuNet on the frame at 0.6 of its size (1.9x fast's pixels)"),
}


class PrivacyScan:
    """YuNet over the whole frame at the level's scale, weak candidates confirmed in close-up."""

    def __init__(self, detector: YuNetDetector, level: str = "fast", score: float = 0.5, weak: float = 0.15) -> None:
        self.detector = detector
        self.level = LEVELS[level]
        self.score = score
        self.weak = weak
        detector.score_threshold = weak

    @property
    def scale(self) -> float:
        """How much the frame is shrunk for the scan (1.0: not at all)."""
        return min(1.0, YUNET_SMALLEST / self.level.smallest)

    @property
    def smallest_face(self) -> int:
        """The smallest face (px of the frame, whatever its size) the scan looks for."""
        return round(max(self.level.smallest, YUNET_SMALLEST / self.scale))

    def find(self, pixels: FramePixels) -> list[Face]:
        """Every face the scan finds on this frame: strong ones, and weak ones their close-up confirmed."""
        h, w = pixels.shape[:2]
        k = self.scale
        sw, sh = max(32, round(w * k)), max(32, round(h * k))
        width, height = _up32(sw + 2 * round(sw * EDGE_SIDE)), _up32(sh + 2 * round(sw * EDGE_TOP))
        left, top = (width - sw) // 2, (height - sh) // 2
        small = cv2.copyMakeBorder(
            pixels.resized(sw, sh), top, height - sh - top, left, width - sw - left, cv2.BORDER_REFLECT_101
        )
        self.detector.input_size = max(width, height)  # already that size: YuNet only reads it
        offset = np.array([left, top, left, top], np.float32)
        strong: list[Face] = []
        weak: list[Face] = []
        for face in self.detector.detect(small):
            box = (face.box - offset) / k
            if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
                continue  # wholly in the border: a mirror image of a face the frame holds
            found = Face(box=box, score=face.score, landmarks5=(face.landmarks5 - offset[:2]) / k)
            (strong if face.score >= self.score else weak).append(found)
        weak = [f for f in weak if not box_overlaps(f.box, [s.box for s in strong])]
        for start in range(0, len(weak), MOSAIC_MAX):
            strong += self.confirm(pixels, weak[start : start + MOSAIC_MAX])
        return strong

    def confirm(self, pixels: FramePixels, candidates: list[Face]) -> list[Face]:
        """The candidates a close-up finds a face in (score >= `score`), with the close-up's box and score."""
        if not candidates:
            return []
        side = int(np.ceil(np.sqrt(len(candidates)))) * CELL
        self.detector.input_size = side
        found = faces_in_mosaic(pixels, [f.box for f in candidates], side, self.detector.detect)
        return [f for f in found if f.score >= self.score]


def _up32(value: int) -> int:
    return int(np.ceil(value / 32) * 32)
