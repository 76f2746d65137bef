"""Why a provider does not load, said as a user can act on it: what is missing and what to install.

"CUDA: libcublasLt.so.13 not found; install livefuse[cuda] or CUDA 13 + cuDNN 9", "CUDA: the NVIDIA
driver (535) is too old for CUDA 13; install driver 580 or newer". Used by the fallback's log line,
/api/status and `livefuse doctor`.
"""

from __future__ import annotations

import re

from livefuse.engine import providers as prov
from livefuse.engine.gpus import MIN_DRIVER, driver_too_old, driver_version

CUDNN_MAJOR = 9  # every onnxruntime-gpu on PyPI since 1.19
TENSORRT_MAJOR = 10  # what onnxruntime-gpu 1.31's TensorRT provider links (libnvinfer.so.10): livefuse[tensorrt]
LABELS = {
    "CUDAExecutionProvider": "CUDA",
    "TensorrtExecutionProvider": "TensorRT",
    "ROCMExecutionProvider": "ROCm",
    "MIGraphXExecutionProvider": "MIGraphX",
    "DmlExecutionProvider": "DirectML",
    "CoreMLExecutionProvider": "CoreML",
    "OpenVINOExecutionProvider": "OpenVINO",
    "CPUExecutionProvider": "CPU",
}
_LIBRARY = re.compile(r"\b(lib[\w+-]+\.so(?:\.\d+)*|[\w-]+\.dll)\b")
_NOT_LOADED = ("cannot open shared object", "not found", "No such file", "LoadLibrary", "error 126")


def label(provider: str) -> str:
    return LABELS.get(provider, prov.short_name(provider))


def build_cuda_major() -> int | None:
    """The CUDA major version this onnxruntime was built with (13 for onnxruntime-gpu 1.31), or None."""
    try:
        from onnxruntime.capi.build_and_package_info import cuda_version
    except ImportError:
        return None
    head = str(cuda_version).split(".")[0]
    return int(head) if head.isdigit() else None


def missing_library(reason: str) -> str | None:
    """The shared library a loader error names (the first one), if the error is a library not loading."""
    if not any(marker in reason for marker in _NOT_LOADED):
        return None
    match = _LIBRARY.search(reason)
    return match[1] if match else None


def explain(provider: str, reason: str, driver: str | None = None) -> str:
    """One line: the provider, what is wrong, what to do. `driver`: the NVIDIA driver's version ("" for none;
    found if None)."""
    name = label(provider)
    if provider not in prov.GPU:
        return f"{name}: {reason}"
    major = build_cuda_major()
    cuda = f"CUDA {major}" if major else "CUDA"
    lower = reason.lower()
    driver = driver if driver is not None else driver_version()
    if driver_too_old(driver, major) or "driver version is insufficient" in lower:
        need = f"install driver {MIN_DRIVER[major]} or newer" if major in MIN_DRIVER else "update the driver"
        return f"{name}: the NVIDIA driver ({driver or 'installed'}) is too old for {cuda}; {need}"
    if "no cuda-capable device" in lower or "cudaerrornodevice" in lower:
        return f"{name}: no NVIDIA GPU is visible (is CUDA_VISIBLE_DEVICES set? `nvidia-smi` lists the GPUs)"
    lib = missing_library(reason)
    if lib is None and ("tensorrt libraries" in lower or "could not create" in lower or "cudnn" in lower):
        lib = missing_library(prov.load_failure(provider))  # onnxruntime's notice names no library: find it
    if lib is not None and (lib.startswith("libcuda.so") or lib.startswith("nvcuda")):
        driver_need = f" ({MIN_DRIVER[major]} or newer for {cuda})" if major in MIN_DRIVER else ""
        return (
            f"{name}: no NVIDIA driver ({lib} not found); install the NVIDIA driver{driver_need}, "
            "or run with --provider cpu"
        )
    stack = f"{cuda} + cuDNN {CUDNN_MAJOR}"
    trt = provider == "TensorrtExecutionProvider"
    fix = (
        f"install livefuse[tensorrt] or TensorRT {TENSORRT_MAJOR} + {stack}"
        if trt
        else f"install livefuse[cuda] or {stack}"
    )
    if not driver and major in MIN_DRIVER:  # no driver either: say so, or installing the libraries looks enough
        fix += f" (and the NVIDIA driver, {MIN_DRIVER[major]} or newer: none is installed)"
    if lib is not None and "onnxruntime_providers" in lib:  # Windows' error 126: one of its dependencies is missing
        return f"{name}: {lib} does not load (a library it needs is missing); {fix}"
    if lib is not None:
        return f"{name}: {lib} not found; {fix}"
    if any(marker in reason for marker in _NOT_LOADED) or "tensorrt libraries" in lower:
        return f"{name}: its libraries do not load ({reason[:120]}); {fix}"
    return f"{name}: {reason}"
