"""A camera emulator: frames are released on a fixed real-time schedule, whatever the reader does.

Every contender in a benchmark (livefuse's pipelined and sequential modes, and each peer)
reads from one of these, so they all see the same source: a thread produces each frame
(renders or decodes it) ahead of time and publishes it at t0 + i/fps. A reader gets the
newest released frame it has not taken yet and blocks when there is none; frames released
while it was busy are never seen (counted as `skipped`). So a slow reader falls behind
exactly as it would behind a camera, and every latency is measured from the moment the
frame was released, not from when the reader got round to it.

This is the generous model for a naive loop (a real driver often queues a few stale
frames, which adds latency); both modes get the same one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livefuse.sources.base import Source


@dataclass
class Released:
    """What a reader got: the frame's index in the release schedule and when it was released."""

    index: int
    release_ns: int


class ReleasedCamera(Source):
    """Releases `frames` frames from `produce` at `fps`; `read()` returns the newest not yet taken.

    `produce()` returns the next image (BGR uint8) or None when it has no more. The schedule
    starts when `start()` is called (or on the first `read()`). If the producer itself is more
    than a frame late (the machine is overloaded), the schedule slips instead of bursting, and
    `slips` counts it: those frames were never released, so they are not charged to the reader.
    """

    def __init__(
        self,
        produce: Callable[[], np.ndarray | None],
        fps: float,
        frames: int,
        *,
        size: tuple[int, int],
        description: str = "camera",
    ) -> None:
        self.fps = fps
        self.size = size
        self.description = description
        self.frames = frames
        self.interval_ns = int(1e9 / fps)
        self._produce = produce
        self._cond = threading.Condition()
        self._latest: tuple[int, int, np.ndarray] | None = None  # (index, release_ns, image)
        self._taken = -1
        self._ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.release_times_ns: list[int] = []  # release time of every frame, by index
        self.reads: list[Released] = []  # one per successful read(), in order: read n is frame seq n
        self.skipped = 0  # released frames no reader took
        self.slips = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bench-camera", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_due = 0
        try:
            for index in range(self.frames):
                image = self._produce()
                if image is None or self._stop.is_set():
                    break
                now = time.monotonic_ns()
                if index == 0:
                    next_due = now
                elif now > next_due + self.interval_ns:  # more than a frame late: slip, don't burst
                    self.slips += 1
                    next_due = now
                delay = next_due - now
                if delay > 0 and self._stop.wait(delay / 1e9):
                    break
                released = time.monotonic_ns()
                with self._cond:
                    self.release_times_ns.append(released)
                    self._latest = (index, released, image)
                    self._cond.notify_all()
                next_due += self.interval_ns
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
            self.error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self) -> np.ndarray | None:
        """The newest released frame not yet taken (waiting for one); None when the camera has ended."""
        self.start()
        with self._cond:
            self._cond.wait_for(lambda: self._ended or (self._latest is not None and self._latest[0] > self._taken))
            if self._latest is None or self._latest[0] <= self._taken:
                if self.error is not None:  # not re-raised as is: a SourceLost would make the pipeline reconnect
                    raise RuntimeError(f"{self.description} failed: {self.error}") from self.error
                return None
            index, released, image = self._latest
            self.skipped += index - self._taken - 1
            self._taken = index
            self._latest = None  # the reader owns the image now
            self.reads.append(Released(index, released))
            return image

    @property
    def released(self) -> int:
        return len(self.release_times_ns)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


def preloaded(produce: Callable[[], np.ndarray | None], count: int) -> Callable[[], np.ndarray | None]:
    """Cycle fresh copies of the first `count` frames: a source that costs (almost) no CPU to release.

    For capacity runs at a release rate far above real time, where decoding every released frame
    would eat the CPU the contender is being measured on.
    """
    frames = [f for f in (produce() for _ in range(count)) if f is not None]
    if not frames:
        return produce
    index = -1

    def next_copy() -> np.ndarray:
        nonlocal index
        index = (index + 1) % len(frames)
        return frames[index].copy()  # a stage may write into it

    return next_copy
