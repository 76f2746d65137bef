"""What moves on the audio path: a run of samples and the capture time of its first one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioChunk:
    """Samples as float32, planar (channels x samples), stamped on the same clock as video frames.

    `capture_ns` is the `time.monotonic_ns()` instant the first sample belongs to, in the same
    terms as `Frame.capture_ns`: an output places a chunk and a frame with equal capture times at
    the same instant, which is what keeps picture and sound in sync whatever the video's delay.
    """

    samples: np.ndarray  # float32 [channels, n]
    rate: int
    capture_ns: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"

    @property
    def duration_ns(self) -> int:
        return self.samples.shape[1] * 1_000_000_000 // self.rate


@dataclass(frozen=True)
class AudioFormat:
    """What an audio input delivers, so outputs can add their audio track before the first chunk."""

    rate: int
    channels: int
