"""What a source is: something the capture thread can read frames from."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np


class SourceLost(Exception):
    """A live source stopped delivering (camera unplugged, stream dropped); the pipeline reopens it."""


class Source(ABC):
    """A frame source. `read` blocks in the capture thread; None means the source has ended.

    A live source that stops delivering raises `SourceLost`; the pipeline then calls `reopen` with
    backoff until it works again.
    """

    description: str
    size: tuple[int, int]  # (width, height) of the frames it returns
    fps: float

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame (HxWx3 BGR uint8), or None at the end."""

    @abstractmethod
    def close(self) -> None:
        """Release the device, file or stream (called from the capture thread)."""

    def reopen(self) -> None:  # noqa: B027 - optional: a source may recover by itself
        """Open again after `SourceLost` (raise to be retried later). By default nothing: the next `read`
        tries again by itself."""


class Pacer:
    """Releases frames on a fixed real-time schedule, like a camera.

    Sources that could deliver faster than real time (files, stills, the demo)
    call `wait()` before returning each frame. When the reader falls behind, the
    schedule skips ahead instead of bursting to catch up, as a camera would.
    """

    MAX_CATCH_UP_NS = 1_000_000_000

    def __init__(self, fps: float, *, catch_up: bool = False) -> None:
        self.interval_ns = int(1e9 / fps)
        self.catch_up = catch_up  # a file with sound: keep every slot (sound cannot skip), up to a second behind
        self._next_ns = 0

    def wait(self) -> int:
        """Sleep until the next slot; return that slot's time (the frame's ideal capture instant, which a
        late wake-up does not move: sound stamped from it stays in step with the picture)."""
        now = time.monotonic_ns()
        if self._next_ns == 0:
            self._next_ns = now
        delay = self._next_ns - now
        if delay > 0:
            time.sleep(delay / 1e9)
            slot = self._next_ns
            self._next_ns += self.interval_ns
        elif self.catch_up and -delay < self.MAX_CATCH_UP_NS:
            slot = self._next_ns
            self._next_ns += self.interval_ns
        else:
            missed = -delay // self.interval_ns
            slot = self._next_ns + missed * self.interval_ns
            self._next_ns += (missed + 1) * self.interval_ns
        return slot
