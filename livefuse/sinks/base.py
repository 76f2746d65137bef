"""What an output is: something a writer thread hands processed frames to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from livefuse.audio.feed import AudioFeed
from livefuse.frame import Frame

if TYPE_CHECKING:
    from livefuse.stats import OutputStats


class Sink(ABC):
    """An output. `write` runs in the output's own thread, so a slow one never slows the others.

    What an output can do it declares here, and the pipeline reads it, never probes:
    - `repeat_when_idle`: outputs a viewer watches (virtual camera, streams, preview) are sent the last
      frame again when the source stalls, so the picture never freezes.
    - `inline`: `write` costs nothing (null): the thread that emits the frame writes it, without a hop.
    - `audio_feed`: an output that carries sound reads chunks from this feed (None: no sound).
    - `watched()`: whether anyone consumes it now; when no output is, the daemon sleeps (livefuse/sleep.py).
      Recordings and pushes always are; the preview while a viewer is connected; the virtual camera while
      an application has it open, where the OS can tell.
    """

    name: str
    repeat_when_idle: bool = False
    inline: ClassVar[bool] = False
    audio_feed: AudioFeed | None = None

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Output one processed frame (its image is read-only: outputs share it)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release (a recording is finalised here)."""

    def bind_stats(self, stats: OutputStats) -> None:  # noqa: B027 - optional: a push reports its connection
        """The stats its output keeps: a sink with a state of its own (a push's connection) writes it there."""

    def watched(self) -> bool:
        """Whether anything consumes this output now (called about twice a second, off the loop)."""
        return True


class NullSink(Sink):
    """Discards frames: for benchmarks, where only latency matters."""

    inline = True  # written by the emitting thread itself: there is nothing to wait for

    def __init__(self) -> None:
        self.name = "null"

    def write(self, frame: Frame) -> None:
        pass

    def close(self) -> None:
        pass


class OutputFailed(Exception):
    """A write error that trying again cannot fix (disk full, file too large, folder gone): the pipeline
    gives that output up at once, and the other outputs go on."""
