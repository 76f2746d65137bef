"""The face parser: BiSeNet's 19 classes on the aligned face, as the swap's region mask (FaceFusion's way).

The parser sees the face aligned as the swapper does, at its own 512 px (warped from the frame, not the
128-px crop upscaled). The swap then only paints the face's own classes (skin, brows, eyes, glasses,
nose, mouth, lips): hair, a hat, a hand or a microphone parse as something else and keep their pixels.
Parts named in `keep_regions` leave the painted classes too. As FaceFusion's `create_region_mask`: the
class mask is resized to the crop, blurred (sigma 5 crop pixels) and its upper half stretched to 0..1,
so the mask is fully off at a class edge and fades in inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from livefuse.faces.align import warp_face
from livefuse.faces.facts import facts_of

if TYPE_CHECKING:
    from livefuse.engine.session import Session

MODEL = "bisenet_resnet_34"  # whose manifest facts a parser given as a file takes
# CelebAMask-HQ's classes as BiSeNet face parsing numbers them (FaceFusion's face_mask_region_set)
FACE_CLASSES = {
    "skin": 1,
    "left-eyebrow": 2,
    "right-eyebrow": 3,
    "left-eye": 4,
    "right-eye": 5,
    "glasses": 6,
    "nose": 10,
    "mouth": 11,
    "upper-lip": 12,
    "lower-lip": 13,
}
PART_CLASSES = {"eyes": (4, 5), "brows": (2, 3), "mouth": (11, 12, 13), "nose": (10,)}


class FaceParser:
    """BiSeNet face parsing: `input` [1, 3, 512, 512] normalised RGB -> [1, 19, 512, 512] class scores."""

    def __init__(self, session: Session) -> None:
        self.session = session
        facts = facts_of(session, MODEL)
        self.size = facts.size
        # ImageNet's mean and std on RGB in 0..1, as the manifest gives them on 0..255
        self._mean = np.array([m / 255.0 for m in facts.mean], np.float32)
        self._std = np.array([s / 255.0 for s in facts.std], np.float32)
        self.input_name = session.input_names[0]
        self.output_name = session.output_names[0]

    def classes(self, image_bgr: np.ndarray, landmarks5: np.ndarray, template: str) -> np.ndarray:
        """The class of every pixel of the face aligned to `template` at 512 px: uint8 [512, 512]."""
        crop, _ = warp_face(image_bgr, landmarks5, template, self.size)
        x = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0) - self._mean) / self._std
        scores = self.session.run({self.input_name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
        return np.asarray(scores[self.output_name])[0].argmax(0).astype(np.uint8)


def region_mask(classes: np.ndarray, keep: tuple[str, ...] | list[str], size: int) -> np.ndarray:
    """The swap's weight on a `size` crop: the face's classes less the kept parts', blurred as FaceFusion does."""
    painted = set(FACE_CLASSES.values()) - {c for part in keep for c in PART_CLASSES[part]}
    mask: np.ndarray = np.isin(classes, sorted(painted)).astype(np.float32)
    resized: np.ndarray = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    blurred: np.ndarray = cv2.GaussianBlur(np.clip(resized, 0.0, 1.0), (0, 0), 5)
    return (np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0
