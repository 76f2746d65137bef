"""MediaPipe hands: the palm detector finds hands, the hand landmarker gives each its 21 points.

Both are the "lite" models of the mediapipe 0.10.14 wheel, converted by tools/convert_mediapipe.py.
The palm detector (192x192, an aspect-keeping letterbox) gives a box and 7 keypoints per palm; the hand
crop follows MediaPipe's palm_detection_detection_to_roi: turned so the wrist -> middle-finger base
points up, moved half the box's height towards the fingers, square, 2.6 times the box's longer side.
The landmarker (224x224, RGB in 0..1) returns the 21 points in crop pixels and a presence score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from livefuse.vision.detectors import blazeface_anchors
from livefuse.vision.geometry import letterbox, rgb_tensor, sigmoid, weighted_nms
from livefuse.vision.runner import Runner

PALM_SIZE = 192
HAND_SIZE = 224
WRIST, MIDDLE_BASE = 0, 2  # the palm detector's keypoints that set the hand's turn
ROI_SCALE = 2.6
ROI_SHIFT = 0.5  # of the palm box's height, towards the fingers


@dataclass(frozen=True)
class Hand:
    """One hand: its 21 landmarks [21, 2] in frame pixels and the landmarker's presence score."""

    points: np.ndarray
    score: float


class HandFinder:
    """Palm detection, then the landmarker on each palm's crop (up to `max_hands`, best palms first)."""

    def __init__(
        self, palm: Runner, landmark: Runner, min_palm: float = 0.5, min_presence: float = 0.5, max_hands: int = 4
    ) -> None:
        self.palm = palm
        self.landmark = landmark
        self.min_palm = min_palm
        self.min_presence = min_presence
        self.max_hands = max_hands
        self.anchors = blazeface_anchors(PALM_SIZE, (8, 16, 16, 16), 2)

    def palms(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        """Each palm's crop for the landmarker, as the 2x3 map from crop pixels to image pixels."""
        img, lb = letterbox(image_bgr, PALM_SIZE, PALM_SIZE)
        out = self.palm.run({"input": rgb_tensor(img, 1 / 255.0)})
        raw, scores = out["regressors"][0], sigmoid(out["logits"][0, :, 0])
        sel = np.flatnonzero(scores >= self.min_palm)
        if sel.size == 0:
            return []
        raw, scores, anchors = raw[sel], scores[sel], self.anchors[sel] * PALM_SIZE
        centre = anchors + raw[:, 0:2]
        half = raw[:, 2:4] / 2
        boxes = lb.to_frame(np.stack([centre - half, centre + half], axis=1)).reshape(-1, 4)
        kps = lb.to_frame(anchors[:, None, :] + raw[:, 4:18].reshape(-1, 7, 2))
        boxes, scores, kps = weighted_nms(boxes, scores, kps, 0.3, self.max_hands)
        return [palm_crop(box, points) for box, points in zip(boxes, kps, strict=True)]

    def find(self, image_bgr: np.ndarray) -> list[Hand]:
        """The hands in a BGR image, landmarks in its pixels."""
        hands = []
        for m in self.palms(image_bgr):
            crop = cv2.warpAffine(
                image_bgr,
                m,
                (HAND_SIZE, HAND_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )
            out = self.landmark.run({"input": rgb_tensor(crop, 1 / 255.0)})
            score = float(out["hand_flag"].reshape(-1)[0])
            if score < self.min_presence:
                continue
            local = out["landmarks"].reshape(21, 3)[:, :2]
            hands.append(Hand(local @ m[:, :2].T + m[:, 2], score))
        return hands


def palm_crop(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The landmarker's crop for one palm (box x1, y1, x2, y2; its 7 keypoints), crop -> image pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    (wx, wy), (mx, my) = points[WRIST].tolist(), points[MIDDLE_BASE].tolist()
    angle = math.atan2(mx - wx, -(my - wy))  # turns the crop's "up" onto wrist -> middle finger
    c, s = math.cos(angle), math.sin(angle)
    h = y2 - y1
    cx, cy = (x1 + x2) / 2 + ROI_SHIFT * h * s, (y1 + y2) / 2 - ROI_SHIFT * h * c
    k = max(x2 - x1, h) * ROI_SCALE / HAND_SIZE
    half = HAND_SIZE / 2
    return np.array([[c * k, -s * k, cx - (c - s) * k * half], [s * k, c * k, cy - (s + c) * k * half]], np.float32)
