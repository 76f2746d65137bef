"""Face regions of a device frame brought to the host, worked on by a stage's own code, and written back.

The face effects (anonymise, beauty, swap, enhance, debug) read and write only inside face regions. On
the device path such a stage names those regions first (`plan`), the regions alone come to a host
canvas the size of the frame (allocated once: the rest of it is never read), the stage's CPU code runs
on the canvas unchanged (`apply`), and the regions go back into the device frame in one graph run. The
result is the CPU path's, pixel for pixel, and the frame itself never leaves the device; the region
copies are counted (with their bytes) by stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort

from livefuse.device import graphs
from livefuse.device.runner import DeviceGraph
from livefuse.engine.core import Engine
from livefuse.frame import Frame
from livefuse.stage import DevicePath
from livefuse.transfers import TransferCounter

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels, x2/y2 exclusive


def clip_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[Box]:
    """Boxes rounded outwards and clipped to the frame; empty ones dropped."""
    out: list[Box] = []
    for box in boxes:
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x2 > x1 and y2 > y1:
            out.append((x1, y1, x2, y2))
    return out


class RegionIO:
    """Moves face regions between one stage's device frames and its host canvas."""

    def __init__(self, engine: Engine, counter: TransferCounter, label: str) -> None:
        self.engine = engine
        self.counter = counter
        self.label = label
        self._slice: dict[int, DeviceGraph] = {}
        self._paste: dict[int, DeviceGraph] = {}
        self._canvas: np.ndarray | None = None

    def _graph(self, cache: dict[int, DeviceGraph], count: int, paste: bool) -> DeviceGraph:
        if count not in cache:
            model = graphs.paste_regions(count) if paste else graphs.slice_regions(count)
            cache[count] = DeviceGraph(self.engine, model)
        return cache[count]

    def canvas(self, shape: tuple[int, ...]) -> np.ndarray:
        """The host canvas for frames of this shape (reused: only the fetched regions are meaningful)."""
        if self._canvas is None or self._canvas.shape != shape:
            self._canvas = np.zeros(shape, np.uint8)
        return self._canvas

    def fetch(self, frame: ort.OrtValue, boxes: Sequence[Box]) -> np.ndarray:
        """The canvas with `boxes` filled from the device frame."""
        height, width = (int(d) for d in frame.shape()[:2])
        canvas = self.canvas((height, width, 3))
        if not boxes:
            return canvas
        outs = self._graph(self._slice, len(boxes), paste=False).run(
            {"frame": frame, "boxes": np.asarray(boxes, np.int64)}
        )
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            region = outs[f"region_{i}"].numpy()
            canvas[y1:y2, x1:x2] = region
            self._count((x1, y1, x2, y2), (width, height), region.nbytes)
        return canvas

    def _count(self, box: Box, size: tuple[int, int], nbytes: int) -> None:
        if box == (0, 0, *size):
            self.counter.force(self.label, 1)  # the whole frame (anonymise failing closed): a full copy
        else:
            self.counter.region(self.label, nbytes)

    def store(self, frame: ort.OrtValue, canvas: np.ndarray, boxes: Sequence[Box]) -> ort.OrtValue:
        """A new device frame: `frame` with `boxes` taken from the canvas."""
        if not boxes:
            return frame
        height, width = canvas.shape[:2]
        feeds: dict[str, np.ndarray | ort.OrtValue] = {"frame": frame, "boxes": np.asarray(boxes, np.int64)}
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            patch = np.ascontiguousarray(canvas[y1:y2, x1:x2])
            feeds[f"patch_{i}"] = patch
            self._count((x1, y1, x2, y2), (width, height), patch.nbytes)
        return self._graph(self._paste, len(boxes), paste=True).run(feeds)["image"]


class RegionLocal(Protocol):
    """A stage whose work on a frame stays inside regions it can name before doing it."""

    name: str

    def regions(self, frame: Frame, shape: tuple[int, int]) -> Sequence[Sequence[float]]:
        """The boxes (x1, y1, x2, y2) this frame's `process` will read and write, for a frame of `shape`
        (height, width). Called once per frame, just before `process`."""

    def process(self, frame: Frame) -> None: ...


class OnRegions(DevicePath):
    """A face-local stage's device path: its regions to the host canvas, its own `process` there, back."""

    def __init__(self, stage: RegionLocal, engine: Engine, counter: TransferCounter) -> None:
        self.stage = stage
        self.io = RegionIO(engine, counter, stage.name)

    def run(self, frame: Frame) -> None:
        height, width = (int(d) for d in frame.device_image.shape()[:2])
        boxes = clip_boxes(self.stage.regions(frame, (height, width)), width, height)
        host = frame.image  # stale on the device path: the stage sees the canvas instead
        frame.image = self.io.fetch(frame.device_image, boxes)
        try:
            self.stage.process(frame)
            canvas = frame.image
        finally:
            frame.image = host
        frame.device_image = self.io.store(frame.device_image, canvas, boxes)
