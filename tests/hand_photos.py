"""A real hand in front of a real face, from the photos in tests/data/ (see its README): for the occlusion
tests and tools/occlusion_picture.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livefuse.frame import Face

DATA = Path(__file__).resolve().parent / "data"
FACES = DATA / "mediapipe_two_faces.jpg"
WRIST = (130.8, 186.2)  # in mediapipe_thumbs_up_hand.png (tests/data/README.md)


def hand_in_front(
    image: np.ndarray, face: Face, scale: float = 0.75
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """The real hand photo (a fist, thumb up, its forearm to the lower right) pasted with the fist over the
    lower right of the face; where its pixels are, and its wrist (landmark 0 on the original photo)."""
    hand = cv2.imread(str(DATA / "mediapipe_thumbs_up_hand.png"))
    assert hand is not None
    x1, y1, x2, y2 = face.box.astype(int)
    hand = cv2.resize(hand, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = hand.max(2) > 24
    h, w = alpha.shape
    top, left = min((y1 + y2) // 2, image.shape[0] - h), min((x1 + x2) // 2, image.shape[1] - w)
    out = image.copy()
    roi = out[top : top + h, left : left + w]
    roi[alpha] = hand[alpha]
    where = np.zeros(image.shape[:2], bool)
    where[top : top + h, left : left + w] = alpha
    return out, where, (left + WRIST[0] * scale, top + WRIST[1] * scale)
