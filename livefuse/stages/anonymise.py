"""The `anonymise` stage: blur, pixelate or fill every face, failing closed.

It covers the faces a `face` stage put in `frame.faces` (held ones included). A detector misses now
and then, and one missed frame in a stream is enough to reveal a face, so this stage keeps its own
memory: a box covered on the last frame but absent now is held, grown a little more each frame, for
`hold_frames` frames. If no face stage looked at a frame at all (it failed, or the preset lacks one),
the last boxes are held the same way, and after that the whole frame is covered: nothing is shown
unanonymised because detection stopped working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from livefuse.frame import Face, Frame
from livefuse.stages.background.common import parse_colour
from livefuse.stages.base import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register
from livefuse.stages.tracking import grow_box
from livefuse.vision.geometry import iou_matrix

# How coarse a cover is, counted across the face itself (the region less its margin), so that a wider margin
# never makes the cover over the face finer. The weakest settings still hide a face from an independent
# detector (YuNet, on the moving demo face at 320x240 and 640x360, every strength and margin the API allows;
# tests/test_stage_anonymise.py): with the old counts across the whole region (blur 6 pixels, pixelate 5 blocks
# at margin 0.25) YuNet scored a covered face 0.72-0.83 in some frames; with these, what it finds where the face
# is scores 0.5-0.63, as a head with no face does (a visible face: 0.9).
BLUR_WEAKEST = 3.0  # pixels left across a face at strength 0 (2.2 at the default 0.8, 2 at 1)
PIXELATE_WEAKEST = 3.0  # blocks across a face at strength 0 (2.2 at the default 0.8, 2 at 1)
MIN_MARGIN = 0.25


@dataclass
class _Held:
    box: np.ndarray
    age: int  # frames since a face was last seen here


def _union(box: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """The smallest box holding both (the smoothed box and where the face was found: smoothing lags)."""
    if other is None:
        return box
    return np.concatenate([np.minimum(box[:2], other[:2]), np.maximum(box[2:], other[2:])]).astype(np.float32)


def _region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _shrink(roi: np.ndarray, across: int) -> np.ndarray:
    """`roi` shrunk (INTER_AREA) to `across` pixels along its shorter side, keeping its aspect ratio."""
    h, w = roi.shape[:2]
    k = across / min(w, h)
    return cv2.resize(roi, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


class AnonymiseStage(Stage):
    """Covers every face (and every recently lost face) in the frame."""

    name = "anonymise"
    guards_privacy = True  # fails closed: see livefuse/chain.py

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self._held: list[_Held] = []
        self._blind = 0  # consecutive frames no face stage ran on
        self._planned: tuple[Frame, list[tuple[int, int, int, int]]] | None = None  # regions() for process()
        self.update({})
        if context is not None and context.transfers is not None:  # None: built bare, by a test
            from livefuse.device.regions import OnRegions

            self.device = OnRegions(self, context.engine, context.transfers)

    def update(self, params: dict[str, Any]) -> None:
        merged = {**self.params, **params}
        self._fill = parse_colour(merged["colour"], "anonymise stage")  # first: a bad colour changes nothing
        self.params = merged

    def boxes(self, frame: Frame) -> list[np.ndarray]:
        """The boxes to cover on this frame: the faces found, their margins, and the held ones."""
        p = self.params
        ran = frame.faces_searched
        self._blind = 0 if ran else self._blind + 1
        faces: list[Face] = frame.faces if ran else []
        current = [grow_box(_union(f.box, f.found_box), 1.0 + 2 * p["margin"]) for f in faces]
        kept: list[_Held] = [_Held(b, 0) for b in current]
        if self._held:
            old = np.stack([h.box for h in self._held])
            overlap = iou_matrix(old, np.stack(current)).max(1) if current else np.zeros(len(old))
            for h, seen in zip(self._held, overlap, strict=True):
                if seen > 0.0 or h.age + 1 > p["hold_frames"]:
                    continue  # a face is covered there now, or it has been gone long enough
                kept.append(_Held(grow_box(h.box, 1.0 + p["hold_growth"]), h.age + 1))
        self._held = kept
        for h in kept:
            if h.age and ran:
                frame.faces.append(Face(box=h.box.copy(), score=0.0, landmarks5=np.zeros((5, 2), np.float32),
                                        held=True))
        return [h.box for h in kept]

    def plan(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """The regions to cover on this frame (of `shape`, height and width); moves the held boxes on."""
        height, width = shape
        boxes = self.boxes(frame)
        if self._blind and (not boxes or self._blind > self.params["hold_frames"]):
            return [(0, 0, width, height)]  # nobody is looking for faces: show none
        return [r for r in (_region(box, width, height) for box in boxes) if r is not None]

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """The device path's regions: this frame's plan, kept for the `process` that follows."""
        self._planned = (frame, self.plan(frame, shape))
        return self._planned[1]

    def process(self, frame: Frame) -> None:
        image = frame.image
        planned, self._planned = self._planned, None
        regions = planned[1] if planned is not None and planned[0] is frame else self.plan(frame, image.shape[:2])
        for region in regions:
            self._cover(image, region)

    def close(self) -> None:
        self._held = []

    def _across(self, across_face: float, least: int) -> int:
        """Pixels (or blocks) across a cover region whose face gets `across_face`: the region is the face box
        grown by the margin on each side (a whole-frame cover is only coarser this way)."""
        return max(least, round(across_face * (1.0 + 2.0 * self.params["margin"])))

    def _cover(self, image: np.ndarray, region: tuple[int, int, int, int]) -> None:
        x1, y1, x2, y2 = region
        roi = image[y1:y2, x1:x2]
        style, strength = self.params["style"], self.params["strength"]
        h, w = roi.shape[:2]
        if style == "fill":
            roi[:] = self._fill
        elif style == "pixelate":
            # Fewer, bigger blocks as strength rises. Even the weakest (3 blocks across a face) leaves nothing a face
            # detector scores as a face.
            tiny = _shrink(roi, self._across(PIXELATE_WEAKEST - strength, 2))
            roi[:] = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            # Blur by shrinking the region to a few pixels across (whatever its size: a face box or, failing
            # closed, the whole frame), so no detector can find a face in it; cheap at any size. Even the weakest
            # setting keeps only 3 pixels across a face.
            small = cv2.GaussianBlur(_shrink(roi, self._across(BLUR_WEAKEST - strength, 3)), (0, 0), 0.8)
            roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


SPEC = register(StageSpec(
    type="anonymise",
    summary="Blur, pixelate or fill every face; holds lost faces and covers the whole frame when detection "
            "stops (fails closed). Put a `face` stage before it",
    params=(
        Param("style", str, "blur", "blur, pixelate or fill", choices=("blur", "pixelate", "fill")),
        Param("strength", float, 0.8, "how strong the blur or how coarse the pixels, 0 to 1", min=0.0, max=1.0),
        Param("margin", float, 0.25, "extra border around each face box, as a fraction of its size (each side); "
              "under 0.25 a detector's tight box leaves the chin or forehead showing", min=MIN_MARGIN, max=1.0),
        Param("colour", str, "#202020", "fill: the colour as \"#rrggbb\""),
        Param("hold_frames", int, 15, "keep covering where a face was for this many frames after it is lost",
              min=0, max=300),
        Param("hold_growth", float, 0.08, "how much a held box grows each frame (it may be moving)",
              min=0.0, max=1.0),
    ),
    factory=AnonymiseStage,
))
