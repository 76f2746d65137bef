"""Aligned face crops cut out of a device frame and pasted back into it, on the device.

`graphs.face_crop` cuts the model's input straight from the device frame (normalised for the model, so
it binds to the model as it is), and `graphs.face_paste` warps the model's output back and blends it in
with the stage's own mask, bicubic with replicated borders as the CPU path's OpenCV warps are. Only the
matrices go up; the frame stays down.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from livefuse.device import graphs as device_graphs
from livefuse.device.regions import OnRegions, RegionLocal
from livefuse.device.runner import DeviceGraph
from livefuse.engine.core import Engine
from livefuse.engine.session import ModelSession, Session
from livefuse.faces.paste import paste_region
from livefuse.stage import DevicePath
from livefuse.transfers import TransferCounter


def runs_on_device(session: Session) -> bool:
    """A local session with float32 inputs (what the crop graphs give); a remote or FP16-input one is not."""
    return isinstance(session, ModelSession) and all(dtype == np.float32 for _, dtype in session.inputs.values())


def local(session: Session) -> ModelSession:
    """The session a device path was built for: `runs_on_device` accepted it, so it is a local one."""
    if not isinstance(session, ModelSession):
        raise TypeError(f"{session!r} is not a local session; no device path runs it")
    return session


class FaceCrops:
    """One crop size and normalisation: `cut` model inputs, `put` model outputs back."""

    def __init__(self, engine: Engine, size: int, mean: float, std: float) -> None:
        self.size = size
        self._warp = DeviceGraph(engine, device_graphs.face_crop(size, mean, std))
        self._paste = DeviceGraph(engine, device_graphs.face_paste(size, mean, std))

    @staticmethod
    def _frame_size(frame: ort.OrtValue) -> tuple[int, int]:
        h, w = (int(d) for d in frame.shape()[:2])
        return w, h

    def cut(self, frame: ort.OrtValue, matrix: np.ndarray) -> ort.OrtValue:
        """The model input [1, 3, S, S] for the face a frame-to-crop `matrix` aligns."""
        theta = device_graphs.crop_theta(matrix[None], self._frame_size(frame), self.size)
        return self._warp.run({"frame": frame, "theta": theta})["crop"]

    def put(
        self, frame: ort.OrtValue, crop: ort.OrtValue | np.ndarray, matrix: np.ndarray, mask: np.ndarray
    ) -> ort.OrtValue:
        """A new device frame with `crop` (model output range, [1, 3, S, S]) blended in by `mask` [S, S].

        Only the region the crop covers is sampled (as `faces.paste.paste_back` does on the host).
        """
        width, height = self._frame_size(frame)
        x1, y1, x2, y2 = paste_region((height, width, 3), self.size, matrix)
        if x2 <= x1 or y2 <= y1:
            return frame
        shifted = np.asarray(matrix, np.float64).copy()
        shifted[:, 2] += shifted[:, :2] @ np.array([x1, y1], np.float64)  # region pixels -> crop pixels
        theta = device_graphs.paste_theta(shifted[None], (x2 - x1, y2 - y1), self.size)
        weight = np.ascontiguousarray(np.clip(mask, 0.0, 1.0)[None, None], np.float32)
        box = np.array([x1, y1, x2, y2], np.int64)
        return self._paste.run({"frame": frame, "crop": crop, "box": box, "theta": theta, "mask": weight})["image"]


def crops_or_regions(
    stage: RegionLocal,
    session: Session,
    engine: Engine,
    counter: TransferCounter,
    on_crops: Callable[[Engine, TransferCounter], DevicePath],
) -> DevicePath:
    """A face model's stage on a device frame: `on_crops` (crops cut on the device) where its session runs
    there, else its own `process` on the faces' regions brought to the host."""
    return on_crops(engine, counter) if runs_on_device(session) else OnRegions(stage, engine, counter)
