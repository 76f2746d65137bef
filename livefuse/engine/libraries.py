"""NVIDIA's libraries from pip wheels, loaded once before the first onnxruntime session.

`livefuse[cuda]` installs CUDA and cuDNN as NVIDIA's wheels (site-packages/nvidia/...), which the
dynamic loader does not search: `onnxruntime.preload_dlls()` loads them so the CUDA provider finds them.
`livefuse[tensorrt]` adds TensorRT's (site-packages/tensorrt_libs), loaded here the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Load order matters: each library's own dependencies first.
_TENSORRT_LINUX = ("libnvinfer.so.*", "libnvinfer_plugin.so.*", "libnvonnxparser.so.*")


@dataclass
class Preloaded:
    """What the preload did: whether onnxruntime offers it, what it loaded, what it could not."""

    available: bool = False  # this onnxruntime has preload_dlls (onnxruntime-gpu 1.21 and later)
    missing: dict[str, str] = field(default_factory=dict)  # library -> why it did not load
    tensorrt: list[str] = field(default_factory=list)  # TensorRT libraries loaded from tensorrt_libs


_lock = threading.Lock()
_done: Preloaded | None = None
_dll_dirs: list[object] = []  # Windows: the handles os.add_dll_directory returns, kept so the folders stay added


def preload() -> Preloaded:
    """Load CUDA, cuDNN and TensorRT from NVIDIA's wheels, once; quiet (onnxruntime's notes are kept)."""
    global _done
    with _lock:
        if _done is None:
            _done = _preload()
        return _done


def _preload() -> Preloaded:
    import onnxruntime as ort

    result = Preloaded()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return result  # a CPU, CoreML or DirectML build: nothing of NVIDIA's to load
    function = getattr(ort, "preload_dlls", None)
    if function is not None:
        result.available = True
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # it prints what failed; that goes to doctor and the fallback
            try:
                function()
            except (OSError, RuntimeError) as exc:
                print(f"Failed to load CUDA libraries: {exc}")
        result.missing = missing_from(printed.getvalue())
    result.tensorrt = _load_tensorrt()
    return result


def missing_from(printed: str) -> dict[str, str]:
    """preload_dlls' "Failed to load NAME: REASON" lines -> {basename: reason}."""
    found: dict[str, str] = {}
    for line in printed.splitlines():
        if line.startswith("Failed to load ") and ": " in line:
            name, why = line.removeprefix("Failed to load ").split(": ", 1)
            found[Path(name).name] = why.strip()
    return found


def tensorrt_dirs() -> list[Path]:
    """site-packages/tensorrt_libs folders (the tensorrt-cu13-libs wheel)."""
    return [Path(p) / "tensorrt_libs" for p in sys.path if p and (Path(p) / "tensorrt_libs").is_dir()]


def _load_tensorrt() -> list[str]:
    loaded: list[str] = []
    for folder in tensorrt_dirs()[:1]:
        if sys.platform == "win32":
            _dll_dirs.append(os.add_dll_directory(str(folder)))
            loaded.append(str(folder))
            continue
        for pattern in _TENSORRT_LINUX:
            for lib in sorted(folder.glob(pattern))[:1]:
                with contextlib.suppress(OSError):  # a broken one: the provider's own load says why
                    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
                    loaded.append(lib.name)
    return loaded
