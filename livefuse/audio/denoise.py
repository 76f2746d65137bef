"""Noise removal on the sound: RNNoise (Valin, 2018; BSD-3) through the `pyrnnoise` package's library.

RNNoise works on 48 kHz mono frames of 480 samples (10 ms), one state per channel; what it gives back
lags what it took by two frames (20 ms, measured by cross-correlation in tests/test_denoise.py).
`Denoiser` takes chunks of any length and stamps what it gives back with the capture time of the sound it
really is: its delay is on the audio clock, so outputs still place sound and picture captured at the same
instant together. Sound at another rate is resampled to 48 kHz first (livefuse/audio/filtered.py).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import sys
from collections import deque
from pathlib import Path

import numpy as np

from livefuse.audio.chunk import AudioChunk
from livefuse.errors import UserError

RATE = 48000
FRAME = 480  # samples: RNNoise's frame at 48 kHz
DELAY = 2 * FRAME  # samples: measured (tests/test_denoise.py), a frame comes back two frames late
SCALE = 32768.0  # RNNoise works on 16-bit sample values held as floats
AUDIO_FILTERS = ("none", "denoise")  # what --audio-filter and a preset's audio_filter may name
LIBRARY_NAMES = {"darwin": "librnnoise.dylib", "win32": "rnnoise.dll"}


@functools.cache
def _library() -> ctypes.CDLL:
    """RNNoise's shared library from the installed `pyrnnoise` package (loaded without importing the
    package, whose own module pulls in a file-conversion stack livefuse does not need)."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "--audio-filter denoise needs RNNoise: install the `pyrnnoise` package "
            "(pip install pyrnnoise), or run with --audio-filter none"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / LIBRARY_NAMES.get(sys.platform, "librnnoise.so")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise UserError(
            f"--audio-filter denoise: RNNoise's library {path} does not load ({exc}); reinstall "
            "pyrnnoise, or run with --audio-filter none"
        ) from exc
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_process_frame.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_float),
        ctypes.POINTER(ctypes.c_float),
    ]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    lib.rnnoise_get_frame_size.restype = ctypes.c_int
    if lib.rnnoise_get_frame_size() != FRAME:
        raise UserError(
            f"--audio-filter denoise: this RNNoise build uses {lib.rnnoise_get_frame_size()}-sample "
            f"frames, not {FRAME}; install pyrnnoise >= 0.4"
        )
    return lib


class Denoiser:
    """Streams 48 kHz planar float chunks through RNNoise; `push` and `flush` return the chunks ready."""

    def __init__(self, channels: int) -> None:
        self.lib = _library()
        self.channels = channels
        self._states = [self.lib.rnnoise_create(None) for _ in range(channels)]
        self._pending = np.zeros((channels, 0), np.float32)  # input not yet a whole frame
        self._ready = np.zeros((channels, 0), np.float32)  # output not yet handed on
        self._frame = np.zeros(FRAME, np.float32)  # RNNoise's in-place buffer
        self._pointer = self._frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._anchors: deque[tuple[int, int]] = deque()  # (input sample index, its capture_ns), one a chunk
        self._taken = 0  # input samples taken in
        self._out = -DELAY  # input sample index of the next output sample (the first DELAY are priming)
        self.speech = 0.0  # RNNoise's voice probability for the last frame (the first channel's)

    @staticmethod
    def check() -> None:
        """Raise a UserError saying what to install when RNNoise cannot be loaded."""
        _library()

    def push(self, chunk: AudioChunk) -> list[AudioChunk]:
        if chunk.rate != RATE or chunk.channels != self.channels:
            raise ValueError(
                f"denoise takes {self.channels}-channel {RATE} Hz chunks, not {chunk.channels}-channel {chunk.rate} Hz"
            )
        self._anchors.append((self._taken, chunk.capture_ns))
        self._taken += chunk.samples.shape[1]
        self._pending = np.concatenate([self._pending, chunk.samples], axis=1)
        whole = self._pending.shape[1] // FRAME * FRAME
        if whole:
            self._ready = np.concatenate([self._ready, self._run(self._pending[:, :whole])], axis=1)
            self._pending = self._pending[:, whole:]
        return self._emit(self._taken)

    def flush(self) -> list[AudioChunk]:
        """Everything taken in, the last partial frame and the delayed ones pushed out with silence: the
        stream's end (a denoiser takes nothing after it)."""
        tail = self._pending.shape[1]
        if self._taken == 0:
            return []
        silence = np.zeros((self.channels, (FRAME - tail) % FRAME + DELAY), np.float32)
        self._ready = np.concatenate([self._ready, self._run(np.concatenate([self._pending, silence], axis=1))], axis=1)
        self._pending = self._pending[:, :0]
        return self._emit(self._taken)

    def _run(self, samples: np.ndarray) -> np.ndarray:
        out = np.empty_like(samples)
        for c, state in enumerate(self._states):
            for start in range(0, samples.shape[1], FRAME):
                np.multiply(samples[c, start : start + FRAME], SCALE, out=self._frame)
                voice = self.lib.rnnoise_process_frame(state, self._pointer, self._pointer)
                if c == 0:
                    self.speech = float(voice)
                np.multiply(self._frame, 1.0 / SCALE, out=out[c, start : start + FRAME])
        return out

    def _emit(self, upto: int) -> list[AudioChunk]:
        """The ready output for input samples before `upto`, one chunk per input chunk it came from, each
        stamped with its own input's capture time (so a gap between input chunks stays a gap)."""
        if self._out < 0:  # RNNoise's first DELAY samples are its empty history, not sound
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
        for state in self._states:
            self.lib.rnnoise_destroy(state)
        self._states = []
