"""The `anonymise` stage: blur, pixelate or fill every face, failing closed.

It covers every face a `face` stage found on the frame: the tracked ones in `frame.faces` and every raw
detection of every pass in `frame.privacy_boxes`, with no cap. A detector misses now and then, and one
missed frame in a stream is enough to reveal a face, so this stage keeps its own memory: a box covered
on the last frame but absent now is held for `hold_frames` frames, moving on with the face's last motion
and growing a little more each frame, and one carried towards an edge is held until it has left the
picture. A cover also reaches as far as the face moved since the last frame, so a fast face never slides
out from under it. If no face stage looked at a frame at all (it failed, or the preset lacks one), the
last boxes are held the same way, and after that the whole frame is covered: nothing is shown
unanonymised because detection stopped working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from livefuse.frame import Face, Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.background.common import parse_colour
from livefuse.stages.registry import register
from livefuse.vision.geometry import box_overlaps, iou_matrix
from livefuse.vision.tracking import grow_box

# How coarse a cover is, counted across the face itself (the region less its margin), so that a wider margin
# never makes it finer; the weakest still hides a face from YuNet (benchmarks/results/2026-12-02-constants.md).
BLUR_WEAKEST = 3.0  # pixels left across a face at strength 0 (2.2 at the default 0.8, 2 at 1)
PIXELATE_WEAKEST = 3.0  # blocks across a face at strength 0 (2.2 at the default 0.8, 2 at 1)
MIN_MARGIN = 0.25
MOVING = 0.02  # a lost face moving this fraction of its width a frame is being carried somewhere


@dataclass
class _Cover:
    box: np.ndarray  # where a face is, or was last seen (frame pixels, before the margin)
    velocity: np.ndarray  # how far its box moved in a frame (x1, y1, x2, y2), from the last frame's match
    age: int  # frames since a face was last seen here


def _union(box: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """The smallest box holding both (the smoothed box and where the face was found: smoothing lags)."""
    if other is None:
        return box
    return np.concatenate([np.minimum(box[:2], other[:2]), np.maximum(box[2:], other[2:])]).astype(np.float32)


def _merged(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """One box a face: boxes of the same face (found by several passes) joined into the box holding them."""
    kept: list[np.ndarray] = []
    for box in sorted(boxes, key=lambda b: -float((b[2] - b[0]) * (b[3] - b[1]))):
        for i, other in enumerate(kept):
            if box_overlaps(box, [other], 0.3):
                kept[i] = _union(other, box)
                break
        else:
            kept.append(np.asarray(box, np.float32))
    return kept


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
        self._covers: list[_Cover] = []
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
        """The boxes to cover on this frame: every face found, moved-on held ones, each with its margin and
        reaching as far as its face moved in the last frame."""
        p = self.params
        ran = frame.faces_searched
        self._blind = 0 if ran else self._blind + 1
        found = [_union(f.box, f.found_box) for f in frame.faces] + list(frame.privacy_boxes) if ran else []
        covers = [_Cover(box, np.zeros(4, np.float32), 0) for box in _merged(found)]
        if self._covers:
            old = np.stack([c.box for c in self._covers])
            ious = iou_matrix(old, np.stack([c.box for c in covers])) if covers else np.zeros((len(old), 0))
            for cover, row in zip(self._covers, ious, strict=True):
                if row.size and row.max() > 0.0:  # seen again: learn how it moved
                    match = covers[int(row.argmax())]
                    match.velocity = (match.box - cover.box + cover.velocity) / 2
                    continue
                if self._expired(cover, frame.size):
                    continue
                moved = cover.box + cover.velocity
                covers.append(_Cover(grow_box(moved, 1.0 + p["hold_growth"]), cover.velocity, cover.age + 1))
        self._covers = covers
        for c in covers:
            if c.age and ran:
                frame.faces.append(
                    Face(box=c.box.copy(), score=0.0, landmarks5=np.zeros((5, 2), np.float32), held=True)
                )
        return [grow_box(_union(c.box, c.box + c.velocity), 1.0 + 2 * p["margin"]) for c in covers]

    def _expired(self, cover: _Cover, size: tuple[int, int]) -> bool:
        """Whether a lost face's box is dropped now: after `hold_frames`, unless it is being carried out of
        the picture and has not left it yet (then up to four times as long)."""
        age, limit = cover.age + 1, self.params["hold_frames"]
        if age <= limit:
            return False
        width, height = size
        box, step = cover.box, cover.velocity
        leaving = float(np.abs(step).max()) >= MOVING * float(box[2] - box[0])
        inside = box[2] > 0 and box[3] > 0 and box[0] < width and box[1] < height
        return not (leaving and inside and age <= 4 * limit)

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
        self._covers = []

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


SPEC = register(
    StageSpec(
        type="anonymise",
        summary="Blur, pixelate or fill every face; holds lost faces and covers the whole frame when detection "
        "stops (fails closed). Put a `face` stage before it",
        params=(
            Param("style", str, "blur", "blur, pixelate or fill", choices=("blur", "pixelate", "fill")),
            Param("strength", float, 0.8, "how strong the blur or how coarse the pixels, 0 to 1", min=0.0, max=1.0),
            Param(
                "margin",
                float,
                0.25,
                "extra border around each face box, as a fraction of its size (each side); "
                "under 0.25 a detector's tight box leaves the chin or forehead showing",
                min=MIN_MARGIN,
                max=1.0,
            ),
            Param("colour", str, "#202020", 'fill: the colour as "#rrggbb"'),
            Param(
                "hold_frames",
                int,
                15,
                "keep covering where a face was for this many frames after it is lost",
                min=0,
                max=300,
            ),
            Param(
                "hold_growth", float, 0.08, "how much a held box grows each frame (it may be moving)", min=0.0, max=1.0
            ),
        ),
        factory=AnonymiseStage,
    )
)
