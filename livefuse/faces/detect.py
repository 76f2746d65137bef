"""Finding the face in a still image (a swap source or reference), with the built-in MediaPipe models.

The frame faces come from the `face` stage; a still only needs one good look, so it gets BlazeFace
plus a FaceMesh refinement, which gives real mouth corners for the five points.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from livefuse.engine.loader import open_model
from livefuse.errors import UserError
from livefuse.faces.select import area
from livefuse.frame import Face
from livefuse.vision.detectors import BlazeFaceDetector
from livefuse.vision.landmarks import FaceLandmarker
from livefuse.vision.models import DETECTOR_MODELS, LANDMARK_MODEL
from livefuse.vision.tiled_detector import TiledDetector

if TYPE_CHECKING:
    from livefuse.engine import Engine


class StillFaceFinder:
    """The largest face of a still image, with its mesh-derived five points."""

    def __init__(self, engine: Engine) -> None:
        # Tiled: a landscape photo is not squeezed into BlazeFace's square input.
        self.detector = TiledDetector(
            BlazeFaceDetector(open_model(engine, DETECTOR_MODELS["blazeface"]), score_threshold=0.5)
        )
        self.landmarker = FaceLandmarker(open_model(engine, LANDMARK_MODEL))

    def largest(self, image_bgr: np.ndarray) -> Face | None:
        faces = self.detector.detect(image_bgr)
        if not faces:
            return None
        face = max(faces, key=area)
        return self.landmarker.refine(image_bgr, face) or face


def read_image(path: Path, field: str) -> np.ndarray:
    """A BGR image from disk, or a UserError naming the preset field and file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        why = "does not exist" if not path.is_file() else "is not an image OpenCV can read (use .jpg or .png)"
        raise UserError(f"{field} = {str(path)!r}: the file {why}; give the path of a photo with one clear face")
    return image
