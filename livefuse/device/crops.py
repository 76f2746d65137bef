"""Aligned face crops cut out of a device frame and pasted back into it, on the device.

`engine/graphs.py`'s `warp_crops` cuts the model's input straight from the device frame (normalised
for the model, so it binds to the model as it is), and `paste_back` warps the model's output back and
blends it in with the stage's own mask. Only the transform matrices go up; the frame never comes down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from livefuse.device.runner import DeviceGraph
from livefuse.engine import graphs


class FaceCrops:
    """One crop size and normalisation: `cut` model inputs, `put` model outputs back."""

    def __init__(self, engine: Any, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = size
        self._warp = DeviceGraph(engine, graphs.warp_crops(size, "RGB", "NCHW", mean, std))
        # No feather of its own (padding 0, the least blur): the stage's mask is the blend weight.
        self._paste = DeviceGraph(engine, graphs.paste_back(size, "RGB", "NCHW", mean, std, padding=0.0, blur=0.0,
                                                            with_mask=True))

    @staticmethod
    def _frame_size(frame: ort.OrtValue) -> tuple[int, int]:
        h, w = (int(d) for d in frame.shape()[:2])
        return w, h

    def cut(self, frame: ort.OrtValue, matrix: np.ndarray) -> ort.OrtValue:
        """The model input [1, 3, S, S] for the face a frame-to-crop `matrix` aligns."""
        theta = graphs.crop_theta(matrix[None], self._frame_size(frame), self.size)
        return self._warp.run({"frame": frame, "theta": theta})["crops"]

    def put(self, frame: ort.OrtValue, crop: ort.OrtValue | np.ndarray, matrix: np.ndarray,
            mask: np.ndarray) -> ort.OrtValue:
        """A new device frame with `crop` (model output range, [1, 3, S, S]) blended in by `mask` [S, S]."""
        theta = graphs.paste_theta(matrix[None], self._frame_size(frame), self.size)
        weight = np.ascontiguousarray(np.clip(mask, 0.0, 1.0)[None, None], np.float32)
        return self._paste.run({"frame": frame, "crops": crop, "theta": theta, "mask": weight})["image"]
