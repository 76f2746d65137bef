"""RNNoise (Valin, 2018; BSD-3) through the `pyrnnoise` package's shared library, loaded with ctypes.

It works on 48 kHz mono frames of 480 samples (10 ms) of 16-bit values held as floats, one state per
channel; what it gives back lags what it took by two frames (20 ms, measured in tests/test_denoise.py).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np

from livefuse.errors import UserError

FRAME = 480  # samples: RNNoise's frame at 48 kHz
DELAY = 2 * FRAME  # samples its output lags its input (measured in tests/test_denoise.py)
SCALE = 32768.0  # RNNoise works on 16-bit sample values held as floats
LIBRARY_NAMES = {"darwin": "librnnoise.dylib", "win32": "rnnoise.dll"}


def installed() -> bool:
    return importlib.util.find_spec("pyrnnoise") is not None


@functools.cache
def _library() -> ctypes.CDLL:
    """RNNoise's shared library from the installed `pyrnnoise` package (loaded without importing the
    package, whose own module pulls in a file-conversion stack livefuse does not need)."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "--audio-filter denoise needs RNNoise: install the `pyrnnoise` package (pip install pyrnnoise; "
            "wheels for Linux, Windows x64 and macOS 26 or later), or use --audio-filter deepfilternet or none"
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


def check() -> None:
    """Raise a UserError saying what to install when RNNoise cannot be loaded."""
    _library()


class RNNoise:
    """One RNNoise state a channel; `run` takes and gives (channels, whole frames) float arrays."""

    def __init__(self, channels: int) -> None:
        self.lib = _library()
        self._states = [self.lib.rnnoise_create(None) for _ in range(channels)]
        self._frame = np.zeros(FRAME, np.float32)  # RNNoise's in-place buffer
        self._pointer = self._frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self.speech = 0.0  # RNNoise's voice probability for the last frame (the first channel's)

    def run(self, samples: np.ndarray) -> np.ndarray:
        out = np.empty_like(samples)
        for c, state in enumerate(self._states):
            for start in range(0, samples.shape[1], FRAME):
                np.multiply(samples[c, start : start + FRAME], SCALE, out=self._frame)
                voice = self.lib.rnnoise_process_frame(state, self._pointer, self._pointer)
                if c == 0:
                    self.speech = float(voice)
                np.multiply(self._frame, 1.0 / SCALE, out=out[c, start : start + FRAME])
        return out

    def close(self) -> None:
        for state in self._states:
            self.lib.rnnoise_destroy(state)
        self._states = []
