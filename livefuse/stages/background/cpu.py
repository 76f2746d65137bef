"""The background stage in OpenCV: the faster path on the CPU provider (`benchmarks/background_paths.py`).

Speed at 1280x720 on a laptop CPU comes from touching full-resolution pixels only twice (one
downscale, one blend): the frame is shrunk once (`vision.geometry.resize`: halvings, then an area
step) to a quarter size, which feeds both the selfie segmenter (at its own 256x144 / 256x256 input)
and the background blur; the mask is smoothed over time (EMA) and feathered at model resolution,
then upsampled, and `cv2.blendLinear` mixes the person over the new background in one pass, in the
box the person covers. Segment and composite are two steps, so on two cores one
frame's composite overlaps the next frame's segmentation.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from livefuse.frame import Frame
from livefuse.stage import StageContext, Step
from livefuse.stages.background.common import BackgroundStage, blur_geometry
from livefuse.vision.geometry import resize
from livefuse.vision.matting import refine_matte
from livefuse.vision.segmentation import SelfieSegmenter

VISIBLE_WEIGHT = 1 / 512  # a person weight below this changes no 8-bit pixel


def person_span(covered: np.ndarray, length: int) -> tuple[int, int]:
    """The frame pixels [start, stop) along one axis that a model-resolution mask's `covered` cells reach.

    Bilinear upsampling spreads a cell to its neighbours' half-way points, so a cell of margin is added.
    """
    cells = np.flatnonzero(covered)
    if cells.size == 0:
        return 0, 0
    scale = length / covered.size
    return max(0, int((cells[0] - 1) * scale)), min(length, int(np.ceil((cells[-1] + 2) * scale)))


def person_matte(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], edge: str) -> np.ndarray:
    """The person's weight in the frame box x0, y0, x1, y1: the model-resolution mask upsampled, its edges
    refined against the frame's own when `edge` is not "off"."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    full = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
    if edge == "off":
        return full
    return refine_matte(image[y0:y1, x0:x1], full, edge, width)


def blend_person(
    image: np.ndarray, background: np.ndarray, mask: np.ndarray, scratch: bool, edge: str = "off"
) -> np.ndarray:
    """The person (`mask`, at model resolution) over `background`, both frame-sized; `scratch`: the
    background is this frame's own array, and becomes the result (else it is copied). `edge`: see
    `person_matte`.

    Only the box where the mask reaches 1/512 is blended (a person fills a part of the frame, and
    blending is the one full-resolution pass left). Outside it a weight under 1/512 moves no pixel by
    half a level, so the background is already the result. The mask is upsampled whole, so the box's
    pixels are those a whole-frame blend gives.
    """
    height, width = image.shape[:2]
    seen = mask >= VISIBLE_WEIGHT
    x0, x1 = person_span(np.any(seen, axis=0), width)
    y0, y1 = person_span(np.any(seen, axis=1), height)
    result = background if scratch else background.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    full = person_matte(image, mask, (x0, y0, x1, y1), edge)
    # OpenCV takes a scalar operand here; its type stubs do not say so
    result[y0:y1, x0:x1] = cv2.blendLinear(image[y0:y1, x0:x1], background[y0:y1, x0:x1], full, cv2.subtract(1.0, full))  # type: ignore[call-overload]
    return result


class CpuBackground(BackgroundStage):
    """Segment with the selfie segmenter, then blur, replace or recolour the rest with OpenCV."""

    path = "cpu"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        super().__init__(params, context)
        self._mask: np.ndarray | None = None  # the EMA state at model resolution
        self._colour: np.ndarray | None = None  # remove: the solid colour at frame size, made once
        self._configure()
        self.segmenter = SelfieSegmenter(context.model(self.model_name), self.model_size)

    def _configure(self) -> None:
        super()._configure()
        self._colour = None

    def person_mask(self, small: np.ndarray) -> np.ndarray:
        """Temporally smoothed, feathered person mask at model resolution (float32, 1 = person)."""
        raw = self.segmenter.mask(small)
        keep = self.params["smoothing"]
        if self._mask is None or self._mask.shape != raw.shape or keep <= 0:
            self._mask = raw.copy()
        else:
            cv2.addWeighted(self._mask, keep, raw, 1.0 - keep, 0.0, dst=self._mask)
        # Tighten the soft band (the model is unsure over a wide rim), then feather it evenly.
        mask: np.ndarray = np.clip((self._mask - 0.25) * 2.0, 0.0, 1.0)
        feather = self.params["feather"]
        if feather > 0:
            sigma = feather * 0.01 * mask.shape[1]
            mask = cv2.GaussianBlur(mask, (0, 0), sigma)
        return mask

    def _blurred(self, small: np.ndarray, mask: np.ndarray, width: int, height: int) -> np.ndarray:
        """The background alone, blurred at low resolution and scaled back up.

        A wide Gaussian is costly, so the frame is shrunk further until the blur is ~3 pixels wide there;
        a blurred image has no detail for the smaller size to lose.
        """
        (bw, bh), sigma = blur_geometry(width, (small.shape[1], small.shape[0]), self.params["strength"])
        img = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
        # OpenCV takes a scalar operand here; its type stubs do not say so
        one_minus = cv2.subtract(1.0, mask)  # type: ignore[call-overload]
        weight = cv2.resize(one_minus, (bw, bh), interpolation=cv2.INTER_AREA)
        num = cv2.GaussianBlur(img * weight[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        plain = cv2.GaussianBlur(img, (0, 0), sigma)
        # Where the person hides all the background around, the normalised blur has nothing to average.
        trust = np.clip(den * 8.0, 0.0, 1.0)[..., None]
        bg = num / np.maximum(den, 1e-3)[..., None] * trust + plain * (1.0 - trust)
        return cv2.resize(bg.clip(0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)

    def steps(self) -> list[Step]:
        """Segment and composite take turns separately: frame N+1 is segmented while frame N is composited."""
        return [("segment", self.segment), ("composite", self.composite)]

    def process(self, frame: Frame) -> None:
        self.segment(frame)
        self.composite(frame)

    def segment(self, frame: Frame) -> None:
        """Shrink the frame once and find the person in it (the small frame also feeds the blur)."""
        height, width = frame.image.shape[:2]
        small = resize(frame.image, *self.small_size(width, height))
        frame.small = small
        frame.person_mask = self.person_mask(small)

    def composite(self, frame: Frame) -> None:
        """Put the person over the blurred, replaced or removed background (nothing if segment failed)."""
        small, mask = frame.small, frame.person_mask
        frame.small = None  # used: it does not travel on to the outputs
        if small is None or mask is None:
            return
        image = frame.image
        height, width = image.shape[:2]
        mode = self.params["mode"]
        if mode == "blur":
            background = self._blurred(small, mask, width, height)
        elif mode == "replace":
            assert self._backdrop is not None
            background = self._backdrop.frame(frame.seq / self.fps, (width, height))
        else:
            if self._colour is None or self._colour.shape != image.shape:
                self._colour = np.empty_like(image)
                self._colour[:] = self._colour_bgr
            background = self._colour
        frame.image = blend_person(image, background, mask, scratch=mode == "blur", edge=self.params["edge"])

    def on_source_reopened(self) -> None:
        """A new scene: the smoothed mask starts again from the next frame's segmentation."""
        self._mask = None

    def close(self) -> None:
        super().close()
        self._colour = None
