"""Selfie segmentation: a person mask in [0, 1] for background effects."""

from __future__ import annotations

import cv2
import numpy as np

from livefuse.vision.geometry import letterbox, rgb_tensor
from livefuse.vision.runner import Runner

GENERAL_SIZE = (256, 256)  # (width, height) of selfie_segmentation.onnx
LANDSCAPE_SIZE = (256, 144)  # selfie_segmentation_landscape.onnx, for 16:9 frames


class SelfieSegmenter:
    """MediaPipe selfie segmentation (inputs RGB in [0, 1], output a sigmoid mask, 1 = person).

    MediaPipe stretches the frame to the model size; `letterbox=True` keeps the aspect ratio instead
    (pads with black) and crops the padding off the mask, so the mask then has the frame's aspect.
    """

    def __init__(self, runner: Runner, size: tuple[int, int] = GENERAL_SIZE, letterbox: bool = False) -> None:
        self.runner = runner
        self.size = size
        self.letterbox = letterbox
        self.input_name = runner.input_names[0]
        self.output_name = "mask" if "mask" in runner.output_names else runner.output_names[0]

    def mask(self, image_bgr: np.ndarray) -> np.ndarray:
        """float32 mask at model resolution (less the padding when letterboxing), values in [0, 1]."""
        w, h = self.size
        if self.letterbox:
            img, lb = letterbox(image_bgr, w, h)
        else:
            img = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)
        x = rgb_tensor(img, 1 / 255.0)
        m = self.runner.run({self.input_name: x})[self.output_name].reshape(h, w)
        if self.letterbox:
            fh, fw = image_bgr.shape[:2]
            x0, y0 = int(lb.pad_x), int(lb.pad_y)
            m = m[y0 : y0 + max(1, round(fh * lb.scale)), x0 : x0 + max(1, round(fw * lb.scale))]
        return np.clip(m, 0.0, 1.0).astype(np.float32, copy=False)


def upsample(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a model-resolution mask to frame size with bilinear filtering (smooth edges for blending)."""
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
