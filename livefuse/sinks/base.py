"""What an output is: something a writer thread hands processed frames to."""

from __future__ import annotations

from typing import Protocol

from livefuse.frame import Frame


class Sink(Protocol):
    """An output. `write` runs in the output's own thread, so a slow one never slows the others.

    `repeat_when_idle`: outputs a viewer watches (virtual camera, streams, preview) are
    sent the last frame again when the source stalls, so the picture never freezes.
    """

    name: str
    repeat_when_idle: bool

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Discards frames: for benchmarks, where only latency matters."""

    repeat_when_idle = False
    inline = True  # written on the loop itself: there is nothing to wait for

    def __init__(self) -> None:
        self.name = "null"

    def write(self, frame: Frame) -> None:
        pass

    def close(self) -> None:
        pass


class OutputFailed(Exception):
    """A write error that trying again cannot fix (disk full, file too large, folder gone): the pipeline
    gives that output up at once, and the other outputs go on."""
