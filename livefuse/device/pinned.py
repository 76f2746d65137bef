"""Page-locked ("pinned") host buffers, so a frame's upload is one DMA transfer, not a staged copy.

onnxruntime's Python API does not allocate pinned host memory, so a numpy buffer is registered with the
CUDA runtime itself (`cudaHostRegister`) through ctypes. Where no CUDA runtime library loads (a CPU-only
machine, or a GPU build without it on the library path) the buffer stays ordinary pageable memory: the
upload still works, at pageable-memory speed, and `pinned` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("livefuse.device")

_RUNTIME: ctypes.CDLL | None = None
_TRIED = False


def _candidates() -> list[str]:
    names = ["libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so"]
    found = ctypes.util.find_library("cudart")
    if found:
        names.append(found)
    for base in sys.path:  # the nvidia-cuda-runtime wheel onnxruntime-gpu uses (CUDA 12 layout, then 13's)
        names += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
        names += sorted(glob.glob(os.path.join(base, "nvidia", "cu1[3-9]", "lib", "libcudart.so*")))
    return names


def cuda_runtime() -> ctypes.CDLL | None:
    """The CUDA runtime library, or None where none loads (looked for once)."""
    global _RUNTIME, _TRIED
    if not _TRIED:
        _TRIED = True
        for name in _candidates():
            try:
                _RUNTIME = ctypes.CDLL(name)
                break
            except OSError:
                continue
    return _RUNTIME


def pin(array: np.ndarray) -> bool:
    """Register `array`'s memory as pinned for its lifetime; False where that is not possible here."""
    runtime = cuda_runtime()
    if runtime is None or array.nbytes == 0:
        return False
    register = runtime.cudaHostRegister
    register.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    register.restype = ctypes.c_int
    status = register(ctypes.c_void_p(array.ctypes.data), ctypes.c_size_t(array.nbytes), 0)
    if status != 0:
        log.debug("cudaHostRegister failed (error %d); uploads use pageable memory", status)
        return False
    return True


def unpin(array: np.ndarray) -> None:
    """Undo `pin` (before the buffer is freed)."""
    runtime = cuda_runtime()
    if runtime is not None:
        runtime.cudaHostUnregister.argtypes = [ctypes.c_void_p]
        runtime.cudaHostUnregister(ctypes.c_void_p(array.ctypes.data))


def runtime_path() -> Path | None:
    """Where the CUDA runtime was loaded from (for the GPU check's report)."""
    runtime = cuda_runtime()
    return Path(runtime._name) if runtime is not None else None
