"""The face stage's reads of a device frame (see `livefuse.vision.pixels`): made on the device by small
graphs, and only they are downloaded (counted as region copies against the stage)."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from livefuse.device import graphs
from livefuse.device.runner import DeviceGraph
from livefuse.engine.core import Engine
from livefuse.transfers import TransferCounter


class DeviceReads:
    """One stage's shrink and warp graphs, by size (built once each, reused frame to frame)."""

    def __init__(self, engine: Engine, counter: TransferCounter, label: str) -> None:
        self.engine = engine
        self.counter = counter
        self.label = label
        self._shrink: dict[tuple[tuple[int, int], tuple[int, int]], DeviceGraph] = {}
        self._warp: dict[tuple[int, int], DeviceGraph] = {}

    def pixels(self, frame: ort.OrtValue) -> DevicePixels:
        return DevicePixels(self, frame)


class DevicePixels:
    """A frame on the device; what is read of it is made there and only that is downloaded."""

    def __init__(self, reads: DeviceReads, frame: ort.OrtValue) -> None:
        self.reads = reads
        self.frame = frame
        h, w, c = (int(d) for d in frame.shape())
        self._shape = (h, w, c)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def _download(self, value: ort.OrtValue) -> np.ndarray:
        out = np.array(value.numpy(), copy=True)
        self.reads.counter.region(self.reads.label, out.nbytes)
        return out

    def resized(self, width: int, height: int) -> np.ndarray:
        h, w = self._shape[:2]
        key = ((w, h), (width, height))
        reads = self.reads
        if key not in reads._shrink:
            reads._shrink[key] = DeviceGraph(reads.engine, graphs.shrink_frame((w, h), (width, height)))
        return self._download(reads._shrink[key].run({"frame": self.frame})["small"])

    def warped(self, matrix: np.ndarray, size: tuple[int, int], inverse: bool = True) -> np.ndarray:
        if not inverse:
            matrix = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
        reads = self.reads
        if size not in reads._warp:
            reads._warp[size] = DeviceGraph(reads.engine, graphs.warp_frame(size))
        h, w = self._shape[:2]
        theta = graphs.warp_theta(matrix, (w, h), size)
        return self._download(reads._warp[size].run({"frame": self.frame, "theta": theta})["crop"])

    def host(self) -> np.ndarray:
        self.reads.counter.force(self.reads.label, 1)
        return np.array(self.frame.numpy(), copy=True)
