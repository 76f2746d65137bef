"""The face detector's passes over a frame: the whole frame with mirrored edges, square tiles for small
faces, and one mosaic of crops near tracked faces the whole-frame pass misses (see the face stage).
"""

from __future__ import annotations

import functools
from collections.abc import Collection

import cv2
import numpy as np

from livefuse.frame import Face
from livefuse.vision.detectors import BlazeFaceDetector, FaceDetector
from livefuse.vision.geometry import box_overlaps
from livefuse.vision.mosaic import faces_in_mosaic
from livefuse.vision.pixels import FramePixels, pixels_of

# Faces smaller than this fraction of the frame's longer side are only a few pixels in a whole-frame pass,
# which finds them now and then and frames them coarsely: tracked ones are looked for in crops instead.
WHOLE_MIN_FACE = 0.07
EDGE_MIRROR = 0.1  # the whole-frame pass mirrors this fraction of the width beyond each side edge


class TiledDetector:
    """Overlapping square tiles for a square-input detector, and optionally one pass over the whole frame.

    A square-input detector (BlazeFace) shrinks a 16:9 frame's faces by its longer side. The tiles give
    small faces more pixels: neighbours overlap by at least half a tile, so every face smaller than that
    lies wholly inside one tile; detections cut by an inner tile border are dropped. With a `whole`
    detector (BlazeFace full range) the frame is also looked at in one piece, which finds large faces,
    and the stage chooses which tiles each frame looks in (`tiles_now`), spreading them over its period.
    A detector with a wide input (YuNet, RetinaFace) gets neither: it runs once on the frame.
    """

    def __init__(
        self,
        detector: FaceDetector,
        iou: float = 0.3,
        tile: bool = True,
        whole: BlazeFaceDetector | None = None,
        close_range: BlazeFaceDetector | None = None,
        wide: BlazeFaceDetector | None = None,
    ) -> None:
        self.detector = detector
        # The whole-frame pass (BlazeFace full range: it sees smaller faces); without one, tiles only.
        self.whole = whole
        # The same model with a wide input (192x128), for the whole-frame pass over a wide frame.
        self.wide = wide
        # The mosaic of crops near tracked faces: BlazeFace short range (under half the full range's cost),
        # since a face fills much of its cell there; the whole-frame detector when the cells are small.
        self.close_range = close_range or whole
        self.iou = iou
        self.tile = tile
        # Set by the stage before each detect(): whether to make the whole-frame pass, which tiles to look in
        # (None: all; the stage spreads them over its detection period), and near which tracked faces'
        # boxes to look where the whole-frame pass misses them (small faces).
        self.whole_now = True
        self.tiles_now: Collection[int] | None = None
        self.near: list[np.ndarray] = []
        # Tiles are for a square-input detector (BlazeFace): their side is its input. 0: no tiles, no shrinking here.
        self.size = detector.size if tile and isinstance(detector, BlazeFaceDetector) else 0

    @staticmethod
    @functools.lru_cache(maxsize=16)  # asked several times a frame, for one or two frame sizes
    def tiles(width: int, height: int) -> tuple[tuple[int, int, int], ...]:
        """(x, y, side) of each square tile."""
        side = min(width, height)
        span = max(width, height)
        if span <= side * 1.05:
            return ((0, 0, side),)
        count = int(np.ceil(2 * span / side)) - 1  # step <= side / 2
        starts = np.linspace(0, span - side, count).round().astype(int)
        return tuple((int(s), 0, side) if width >= height else (0, int(s), side) for s in starts)

    def tile_count(self, width: int, height: int) -> int:
        """How many tiles a frame this size has (0 or 1: the stage has none to spread)."""
        return len(self.tiles(*self._tiled_size(width, height)[:2])) if self.size else 0

    def tiles_around(self, boxes: list[np.ndarray], width: int, height: int) -> set[int]:
        """The tile each box (frame pixels) lies best inside: the one whose centre is nearest the box's.

        Neighbouring tiles overlap by half a tile, so a face under half a tile that lies wholly inside
        any tile lies wholly inside that one.
        """
        if self.tile_count(width, height) <= 1:
            return set()
        w, h, scale = self._tiled_size(width, height)
        tiles = self.tiles(w, h)
        centres = np.array([(x + side / 2, y + side / 2) for x, y, side in tiles], np.float32)
        return {int(np.argmin(np.abs(centres - (box[:2] + box[2:]) / 2 * scale).sum(1))) for box in boxes}

    def detect(self, image: np.ndarray | FramePixels) -> list[Face]:
        """Faces in the frame (a host array, or `FramePixels` of a frame that stays on the device)."""
        image_bgr = pixels_of(image)
        if not self.size:  # a wide-input detector letterboxes the whole frame itself
            return list(self.detector.detect(image_bgr.host()))
        h, w = image_bgr.shape[:2]
        found: list[Face] = []
        if self.whole is not None and self.whole_now:
            found = self._whole(image_bgr, self._whole_detector(w, h))
            # Tracked faces the whole pass saw too small to frame well, or missed, are looked for near their box.
            least = WHOLE_MIN_FACE * max(w, h)
            missed = [
                b for b in self.near if float(max(b[2:] - b[:2])) < least or not box_overlaps(b, [f.box for f in found])
            ]
            if missed:
                found = self._near(image_bgr, missed) + found
        first = len(found)
        if self.whole is None or self.tile_count(w, h) > 1:
            found += self._tiles(image_bgr, self.tiles_now)
        return self._merge(found, first)

    def _whole_detector(self, width: int, height: int) -> BlazeFaceDetector:
        """The wide-input model where the frame with its mirrored edges is at least as wide as that input
        (it then sees the faces at the square model's scale, for a third less work), else the square one."""
        assert self.whole is not None
        wide = self.wide
        if wide is not None and (width + 2 * round(width * EDGE_MIRROR)) * wide.height >= height * wide.width:
            return wide
        return self.whole

    def _whole(self, image_bgr: FramePixels, detector: BlazeFaceDetector) -> list[Face]:
        """The whole-frame pass, on the frame shrunk to the model's input with mirrored borders.

        A face half out of the frame is half a face, which detectors miss, and a face entering from the
        side is just that on its first frames. Mirrored at the border it is a whole (symmetric) face:
        EDGE_MIRROR of the width is mirrored on the left and right (at a slightly smaller scale). Mirror
        images of faces lying wholly inside the frame land outside it and are dropped. A face is not
        symmetric top to bottom, so the letterbox's rows above and below are black, as MediaPipe pads:
        with the wide input's few free rows, mirroring them let a face coming down from the top edge
        go unseen for a frame (`test_anonymise_hides_faces_that_appear_between_detections`).
        """
        h, w = image_bgr.shape[:2]
        width, height = detector.width, detector.height
        pad = round(w * EDGE_MIRROR)
        scale = min(width / (w + 2 * pad), height / h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        left, top = (width - sw) // 2, (height - sh) // 2
        mirrored = cv2.copyMakeBorder(image_bgr.resized(sw, sh), 0, 0, left, width - sw - left, cv2.BORDER_REFLECT_101)
        small = cv2.copyMakeBorder(mirrored, top, height - sh - top, 0, 0, cv2.BORDER_CONSTANT, value=0)
        offset = np.array([left, top], np.float32)
        found = []
        for face in detector.detect(small):
            box = (face.box - np.tile(offset, 2)) / scale
            centre = (box[:2] + box[2:]) / 2
            if 0 <= centre[0] < w and 0 <= centre[1] < h:
                found.append(Face(box=box, score=face.score, landmarks5=(face.landmarks5 - offset) / scale))
        return found

    def _near(self, image_bgr: FramePixels, boxes: list[np.ndarray]) -> list[Face]:
        """Faces found in one mosaic of crops around `boxes`: a single model run for up to 9 faces.

        Each crop is a square 2.5 times its face, so the face lies whole inside its own cell, at a size
        the whole-frame pass could not give it. Up to four faces (a face 1/5 of the input or more) go to
        the short-range detector, more to the full-range one.
        """
        boxes = boxes[:9]
        detector = self.close_range if len(boxes) <= 4 and self.close_range is not None else self.whole
        assert detector is not None
        return faces_in_mosaic(image_bgr, boxes, detector.size, detector.detect, whole=True)

    def _tiled_size(self, width: int, height: int) -> tuple[int, int, float]:
        """The frame shrunk by halvings while its tiles stay at least the model's input: (width, height, scale).

        Each tile is then shrunk to the input on its own (an area step under 2x on a tile-sized crop). One
        area step of the whole 720p frame straight to tile size (3.75x) cost 2.4 ms; the halving and the
        tile's own step cost about a third of that. A frame under twice the input goes in one step.
        """
        if min(width, height) <= self.size:
            return width, height, 1.0  # a frame no bigger than the tiles: used as it is
        scale = 1.0
        while min(width, height) * scale / 2 >= self.size:
            scale /= 2
        if scale == 1.0:  # not twice the input: one step straight to tile size
            scale = self.size / min(width, height)
        return max(self.size, round(width * scale)), max(self.size, round(height * scale)), scale

    def _tiles(self, pixels: FramePixels, which: Collection[int] | None = None) -> list[Face]:
        """Faces found in the square tiles of the frame (`which` of them; None: all), less those cut by a
        tile border."""
        h, w = pixels.shape[:2]
        w, h, scale = self._tiled_size(w, h)
        tiles = [t for k, t in enumerate(self.tiles(w, h)) if which is None or k in which]
        if not tiles:
            return []
        # Halve the frame once (one resize, not one a tile); the detector shrinks each tile to its input.
        image_bgr = pixels.resized(w, h) if scale < 1.0 else pixels.host()
        found = []
        for x, y, side in tiles:
            margin = side * 0.01
            for face in self.detector.detect(image_bgr[y : y + side, x : x + side]):
                b = face.box
                cut = (
                    (x > 0 and b[0] < margin)
                    or (x + side < w and b[2] > side - margin)
                    or (y > 0 and b[1] < margin)
                    or (y + side < h and b[3] > side - margin)
                )
                if cut:
                    continue
                shift = np.array([x, y], np.float32)
                found.append(
                    Face(
                        box=(b + np.tile(shift, 2)) / scale,
                        score=face.score,
                        landmarks5=(face.landmarks5 + shift) / scale,
                    )
                )
        return found

    def _merge(self, found: list[Face], first: int) -> list[Face]:
        # One face seen in two passes gives two boxes that need not overlap much: a box centred inside
        # another is the same face. The passes that run on every frame (near crops, then the whole frame)
        # go first, so a face keeps the same framing from frame to frame.
        kept: list[Face] = []
        for face in found[:first] + sorted(found[first:], key=lambda f: -f.score):
            if not box_overlaps(face.box, [k.box for k in kept], self.iou):
                kept.append(face)
        return kept
