"""The one place a whole frame crosses between host and device: one upload after capture, one download
before the outputs.

Uploads alternate between two buffer sets (A/B), as `engine/iobinding.py` does for model inputs: frame
N + 1 is uploaded into set B while frame N, in set A, is still being filtered or downloaded. On CUDA
each set is a device tensor plus a pinned host staging buffer, so the copy to the device is one DMA
transfer; on "cpu" the captured array itself is wrapped as the OrtValue (nothing is copied), so the
same code path runs on both and only the device name differs.

Two sets suffice because at most two frames are in a chain at once (the pipeline's `max_in_flight`,
2): frame N + 2 is uploaded only after frame N has been downloaded. The stages' own model sessions
keep their outputs in A/B sets the same way (`engine/iobinding.py`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from livefuse.device import pinned
from livefuse.transfers import TransferCounter


@dataclass
class _UploadSet:
    device: ort.OrtValue
    staging: np.ndarray  # pinned when the CUDA runtime allows it


class DeviceBoundary:
    """Uploads captured frames to `device` ("cpu" or "cuda") and downloads finished ones, counting both."""

    def __init__(self, device: str, counter: TransferCounter | None = None, device_id: int = 0) -> None:
        self.device = device
        self.device_id = device_id
        self.counter = counter or TransferCounter()
        self.pinned = False  # True once the staging buffers are page-locked
        self._sets: list[_UploadSet] = []
        self._shape: tuple[int, ...] | None = None
        self._next = 0
        self._lock = threading.Lock()

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Both sets for this frame size: allocated when the size changes, never per frame."""
        if shape == self._shape:
            return
        self.close()
        for _ in range(2):
            staging = np.empty(shape, np.uint8)
            self.pinned = pinned.pin(staging)
            value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.uint8, self.device, self.device_id)
            self._sets.append(_UploadSet(value, staging))
        self._shape = shape

    def upload(self, image: np.ndarray) -> ort.OrtValue:
        """The captured frame as an OrtValue on the device (valid until the upload after next)."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        self.counter.upload()
        if self.device == "cpu":
            return ort.OrtValue.ortvalue_from_numpy(image, "cpu", 0)  # shares the array's memory
        with self._lock:
            self._prepare(tuple(image.shape))
            buf = self._sets[self._next]
            self._next ^= 1
        np.copyto(buf.staging, image)
        buf.device.update_inplace(buf.staging)
        return buf.device

    def download(self, value: ort.OrtValue) -> np.ndarray:
        """The finished frame in host memory, owned by the caller (the engines' buffers are reused)."""
        self.counter.download()
        host = value.numpy()
        return np.array(host, copy=True) if self.device == "cpu" else host

    def to_host(self, value: ort.OrtValue, stage: str) -> np.ndarray:
        """The whole frame brought to the host for a stage without a device path (counted against it)."""
        self.counter.force(stage, 1)
        host = value.numpy()
        return np.array(host, copy=True) if self.device == "cpu" else host

    def to_device(self, image: np.ndarray, stage: str) -> ort.OrtValue:
        """The whole frame sent back up after such a stage (counted against it, not as the frame's upload)."""
        self.counter.force(stage, 1)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if self.device == "cpu":
            return ort.OrtValue.ortvalue_from_numpy(image, "cpu", 0)
        return ort.OrtValue.ortvalue_from_numpy(image, self.device, self.device_id)

    def close(self) -> None:
        for buf in self._sets:
            if self.pinned:
                pinned.unpin(buf.staging)
        self._sets = []
        self._shape = None
