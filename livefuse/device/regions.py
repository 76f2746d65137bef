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
from typing import Any

import numpy as np
import onnxruntime as ort

from livefuse.device import graphs
from livefuse.device.runner import DeviceGraph
from livefuse.device.transfers import TransferCounter

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

    def __init__(self, engine: Any, counter: TransferCounter, label: str) -> None:
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
            {"frame": frame, "boxes": np.asarray(boxes, np.int64)})
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            region = outs[f"region_{i}"].numpy()
            canvas[y1:y2, x1:x2] = region
            self.counter.region(self.label, region.nbytes)
        return canvas

    def store(self, frame: ort.OrtValue, canvas: np.ndarray, boxes: Sequence[Box]) -> ort.OrtValue:
        """A new device frame: `frame` with `boxes` taken from the canvas."""
        if not boxes:
            return frame
        feeds: dict[str, np.ndarray | ort.OrtValue] = {"frame": frame, "boxes": np.asarray(boxes, np.int64)}
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            patch = np.ascontiguousarray(canvas[y1:y2, x1:x2])
            feeds[f"patch_{i}"] = patch
            self.counter.region(self.label, patch.nbytes)
        return self._graph(self._paste, len(boxes), paste=True).run(feeds)["image"]
