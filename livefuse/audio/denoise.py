"""Noise removal on the sound: the suppressors `--audio-filter` can name, and the stream that runs one.

Both suppressors work on 48 kHz frames of 480 samples (10 ms) and give back what they took some frames
late. `Denoiser` takes chunks of any length and stamps what it gives back with the capture time of the
sound it really is: the delay is on the audio clock, so outputs still place sound and picture captured at
the same instant together. Sound at another rate is resampled to 48 kHz first (livefuse/audio/filtered.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from livefuse.audio import deepfilternet, rnnoise
from livefuse.audio.chunk import AudioChunk

RATE = 48000
FRAME = 480  # samples: both suppressors' frame at 48 kHz


class Suppressor(Protocol):
    """What the stream needs of a suppressor: whole frames of (channels, samples) in, as many out."""

    def run(self, samples: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SuppressorSpec:
    """A noise suppressor as data: its name, what it is, its measured delay, and how to check and make it."""

    name: str
    label: str
    delay: int  # samples its output lags its input (measured in tests/test_denoise.py)
    installed: Callable[[], bool]  # whether its package is installed (nothing loaded)
    check: Callable[[], None]  # a UserError naming what to install when it cannot run
    make: Callable[[int], Suppressor]  # one for this many channels


SUPPRESSORS = {
    spec.name: spec
    for spec in (
        SuppressorSpec("denoise", "RNNoise", rnnoise.DELAY, rnnoise.installed, rnnoise.check, rnnoise.RNNoise),
        SuppressorSpec(
            "deepfilternet",
            "DeepFilterNet 3",
            deepfilternet.DELAY,
            deepfilternet.installed,
            deepfilternet.check,
            deepfilternet.DeepFilterNet,
        ),
    )
}
AUDIO_FILTERS = ("none", *SUPPRESSORS)  # what --audio-filter and a preset's audio_filter may name


def offered() -> list[str]:
    """The filters this installation can run: none, and each suppressor whose package is installed."""
    return ["none", *(name for name, spec in SUPPRESSORS.items() if spec.installed())]


class Denoiser:
    """Streams 48 kHz planar float chunks through a suppressor; `push` and `flush` return the chunks ready."""

    def __init__(self, channels: int, name: str = "denoise") -> None:
        self.spec = SUPPRESSORS[name]
        self.channels = channels
        self._suppressor = self.spec.make(channels)
        self._pending = np.zeros((channels, 0), np.float32)  # input not yet a whole frame
        self._ready = np.zeros((channels, 0), np.float32)  # output not yet handed on
        self._anchors: deque[tuple[int, int]] = deque()  # (input sample index, its capture_ns), one a chunk
        self._taken = 0  # input samples taken in
        self._out = -self.spec.delay  # input sample index of the next output sample (the first `delay` prime it)

    def push(self, chunk: AudioChunk) -> list[AudioChunk]:
        if chunk.rate != RATE or chunk.channels != self.channels:
            raise ValueError(
                f"{self.spec.name} takes {self.channels}-channel {RATE} Hz chunks, "
                f"not {chunk.channels}-channel {chunk.rate} Hz"
            )
        self._anchors.append((self._taken, chunk.capture_ns))
        self._taken += chunk.samples.shape[1]
        self._pending = np.concatenate([self._pending, chunk.samples], axis=1)
        whole = self._pending.shape[1] // FRAME * FRAME
        if whole:
            self._ready = np.concatenate([self._ready, self._suppressor.run(self._pending[:, :whole])], axis=1)
            self._pending = self._pending[:, whole:]
        return self._emit(self._taken)

    def flush(self) -> list[AudioChunk]:
        """Everything taken in, the last partial frame and the delayed ones pushed out with silence: the
        stream's end (a denoiser takes nothing after it)."""
        tail = self._pending.shape[1]
        if self._taken == 0:
            return []
        silence = np.zeros((self.channels, (FRAME - tail) % FRAME + self.spec.delay), np.float32)
        last = self._suppressor.run(np.concatenate([self._pending, silence], axis=1))
        self._ready = np.concatenate([self._ready, last], axis=1)
        self._pending = self._pending[:, :0]
        return self._emit(self._taken)

    def _emit(self, upto: int) -> list[AudioChunk]:
        """The ready output for input samples before `upto`, one chunk per input chunk it came from, each
        stamped with its own input's capture time (so a gap between input chunks stays a gap)."""
        if self._out < 0:  # the suppressor's first `delay` samples are its empty history, not sound
            drop = min(-self._out, self._ready.shape[1])
            self._ready = self._ready[:, drop:]
            self._out += drop
        chunks = []
        while self._ready.shape[1] and self._out < upto and self._anchors:
            start, capture_ns = self._anchors[0]
            end = self._anchors[1][0] if len(self._anchors) > 1 else upto
            count = min(end, upto) - self._out
            count = min(count, self._ready.shape[1])
            if count <= 0:
                self._anchors.popleft()
                continue
            stamp = capture_ns + (self._out - start) * 1_000_000_000 // RATE
            chunks.append(AudioChunk(np.ascontiguousarray(self._ready[:, :count]), RATE, stamp))
            self._ready = self._ready[:, count:]
            self._out += count
            if self._out >= end and len(self._anchors) > 1:
                self._anchors.popleft()
        return chunks

    def close(self) -> None:
        self._suppressor.close()
