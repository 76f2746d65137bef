"""The independent privacy check the tests share: OpenCV's YuNet (not livefuse's detector) counting faces.

YuNet comes from ../shared/models (see its README); `HAS_YUNET` lets a test module skip without it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livefuse.chain import Chain
from livefuse.frame import Frame

YUNET = Path(__file__).resolve().parents[2] / "shared" / "models" / "face_detection_yunet.onnx"
HAS_YUNET = YUNET.is_file()
_detectors: dict[tuple[int, int, float], cv2.FaceDetectorYN] = {}


def independent_faces(image: np.ndarray, threshold: float = 0.5) -> int:
    """Faces YuNet finds in a BGR frame at `threshold` (one detector per frame size, reused)."""
    h, w = image.shape[:2]
    key = (w, h, threshold)
    if key not in _detectors:
        _detectors[key] = cv2.FaceDetectorYN.create(str(YUNET), "", (w, h), threshold)
    _, found = _detectors[key].detect(image)
    return 0 if found is None else len(found)


def run_chain(chain: Chain, images: list[np.ndarray]) -> list[Frame]:
    """Each image through the chain in order (copies: the inputs stay as they were)."""
    frames = []
    for i, image in enumerate(images):
        frame = Frame(seq=i, pts=0, capture_ns=0, image=image.copy())
        chain.run(frame, chain.admit())
        frames.append(frame)
    return frames
