"""Hands in front of faces, from the photos in tests/data/ (see its README): a real hand pasted in front of a
real face (its true pixels known) and a real photo of a hand on a face, for the occlusion tests and
tools/occlusion_picture.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livefuse.faces.regions import KeepRegion
from livefuse.frame import Face

DATA = Path(__file__).resolve().parent / "data"
FACES = DATA / "mediapipe_two_faces.jpg"
WRIST = (130.8, 186.2)  # in mediapipe_thumbs_up_hand.png (tests/data/README.md)
HAND_ON_CHEEK = DATA / "mediapipe_hand_on_cheek.jpg"  # a real photo: a hand on a woman's cheek and chin
THUMB_AND_LITTLE_TIPS = ((150.0, 181.0), (233.0, 250.0))  # landmarks 4 and 20 in it (tests/data/README.md)


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


def weight_map(regions: list[KeepRegion], shape: tuple[int, ...]) -> np.ndarray:
    """The keep regions' feathered weights over the whole frame [H, W] (the largest where they overlap)."""
    weight = np.zeros(shape[:2], np.float32)
    for region in regions:
        x1, y1, x2, y2 = region.box
        weight[y1:y2, x1:x2] = np.maximum(weight[y1:y2, x1:x2], region.weight[..., 0])
    return weight
