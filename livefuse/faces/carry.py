"""The enhancer off the critical path: it runs on one frame in N in its own thread, and the frames between
carry its last result as a detail layer.

The detail layer is what the restorer added (restored minus the crop it was given) in the face's aligned
space. Each frame warps its own face to that space, adds the layer and pastes back, so the detail follows
the face through the current alignment. A face that turned (its five points moved against each other in
aligned space) or moved far in the frame since its layer was made gets no layer (it passes un-restored)
and a fresh run at once. Frames never wait: a run asked for while one is in flight replaces the one
waiting, and the newest result is used when it lands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livefuse.faces.align import transform_points
from livefuse.frame import Face

TURN = 0.02  # of the crop's side: how far the aligned five points may move against each other
SHIFT = 0.25  # of the face box's size: how far the face may move in the frame
COST_WEIGHT = 0.3  # the run time's running mean: the newest run's share


@dataclass(frozen=True)
class Layer:
    """One face's detail layer [S, S, 3] float32 and where the face was when it was made."""

    detail: np.ndarray
    points: np.ndarray  # the five points in aligned space [5, 2]
    centre: np.ndarray  # the face box's centre in the frame
    size: float  # the face box's longer side


@dataclass(frozen=True)
class Job:
    """The aligned crops of one frame's faces, by key."""

    crops: dict[int, np.ndarray]
    points: dict[int, np.ndarray]
    boxes: dict[int, np.ndarray]


def key_of(face: Face, index: int) -> int:
    """A face's key across frames: its track id, else its place in the frame's list."""
    return face.track_id if face.track_id >= 0 else -1 - index


class Carrier:
    """Runs `restore` (aligned BGR crop -> restored crop) in a thread; hands out each face's newest layer."""

    def __init__(self, restore: Callable[[np.ndarray], np.ndarray], size: int) -> None:
        self.restore = restore
        self.size = size
        self.cost: float | None = None  # seconds a run takes, per frame of faces (running mean)
        self._layers: dict[int, Layer] = {}
        self._pending: Job | None = None
        self._busy = False
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="enhance-carry", daemon=True)
        self._thread.start()

    def layer(self, key: int, points: np.ndarray, box: np.ndarray) -> Layer | None:
        """The face's layer, or None when there is none or it is stale (turned or moved past the thresholds)."""
        with self._wake:
            layer = self._layers.get(key)
        if layer is None:
            return None
        turned = float(np.abs(points - layer.points).max()) > TURN * self.size
        moved = float(np.linalg.norm(_centre(box) - layer.centre)) > SHIFT * layer.size
        return None if turned or moved else layer

    def submit(self, job: Job) -> None:
        """Ask for a run on these faces; never blocks (a waiting job is replaced)."""
        with self._wake:
            self._pending = job
            self._wake.notify()

    def idle(self) -> bool:
        with self._wake:
            return not self._busy and self._pending is None

    def forget(self, keep: set[int]) -> None:
        """Drop the layers of faces no longer in view."""
        with self._wake:
            for key in set(self._layers) - keep:
                del self._layers[key]

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job, self._pending, self._busy = self._pending, None, True
            assert job is not None
            start = time.perf_counter()
            layers = {}
            for key, crop in job.crops.items():
                restored = self.restore(crop)
                box = job.boxes[key]
                layers[key] = Layer(
                    restored.astype(np.float32) - crop.astype(np.float32),
                    job.points[key],
                    _centre(box),
                    float(max(box[2] - box[0], box[3] - box[1])),
                )
            took = time.perf_counter() - start
            with self._wake:
                self._layers.update(layers)
                self.cost = took if self.cost is None else (1 - COST_WEIGHT) * self.cost + COST_WEIGHT * took
                self._busy = False


def aligned_points(face: Face, matrix: np.ndarray) -> np.ndarray:
    """The face's five points in the aligned crop's pixels."""
    return transform_points(np.asarray(face.landmarks5, np.float64), matrix)


def every_for(cost: float | None, fps: float) -> int:
    """`every` = auto: 1 (every frame, in line) while a run fits in half the frame budget or has not been
    timed yet, else one frame in the number of frames a run takes plus half again."""
    if cost is None:
        return 1
    budget = 1.0 / max(fps, 1.0)
    return 1 if cost <= 0.5 * budget else max(2, int(np.ceil(1.5 * cost / budget)))


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float64)
