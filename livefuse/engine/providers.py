"""Execution providers: short names, the `auto` order, where their tensors live and why one failed to load.

onnxruntime is imported only by the functions that ask it something, so naming providers (the
registry, `livefuse models list`) stays light.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from livefuse.errors import UserError

# Short names users type (`--provider cuda`) -> onnxruntime provider names.
SHORT_NAMES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

# `auto` tries these in order among what onnxruntime reports; fastest first, CPU always last.
AUTO_ORDER: tuple[str, ...] = tuple(SHORT_NAMES.values())

CPU = "CPUExecutionProvider"

# Providers that compile subgraphs into their own kernels: onnxruntime cannot serialise an optimised
# model for them, so the on-disk optimised-model cache is only used for the others.
COMPILING = frozenset(
    {
        "TensorrtExecutionProvider",
        "MIGraphXExecutionProvider",
        "CoreMLExecutionProvider",
        "OpenVINOExecutionProvider",
        "DmlExecutionProvider",
    }
)

# Shared libraries onnxruntime loads for a provider: loading one ourselves tells why the provider failed.
_PROVIDER_LIBS = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
    "ROCMExecutionProvider": "libonnxruntime_providers_rocm.so",
    "MIGraphXExecutionProvider": "libonnxruntime_providers_migraphx.so",
    "OpenVINOExecutionProvider": "libonnxruntime_providers_openvino.so",
}


def short_name(provider: str) -> str:
    """`CUDAExecutionProvider` -> `cuda` (for messages and cache keys)."""
    for short, full in SHORT_NAMES.items():
        if full == provider:
            return short
    return provider.removesuffix("ExecutionProvider").lower()


def available() -> list[str]:
    """What this onnxruntime build lists (a GPU build lists CUDA even where its libraries are missing).

    NVIDIA's libraries from pip wheels (livefuse[cuda], [tensorrt]) are loaded first, so sessions find them.
    """
    import onnxruntime as ort

    from livefuse.engine.libraries import preload

    preload()
    return list(ort.get_available_providers())


def candidates(provider: str) -> list[str]:
    """Providers to try, in order, for `auto` or an explicit short name, among what onnxruntime lists.

    An explicit provider comes first, followed by the `auto` providers after it (so `tensorrt` falls
    back to `cuda`, then CPU). A provider onnxruntime does not list is a UserError.
    """
    return order_from(provider, available())


def order_from(provider: str, listed: list[str]) -> list[str]:
    """`candidates` for a given list of what the onnxruntime build offers."""
    key = provider.strip().lower()
    if key == "auto":
        order = [p for p in AUTO_ORDER if p in listed]
        return order if CPU in order else [*order, CPU]
    full = SHORT_NAMES.get(key) or (provider if provider in AUTO_ORDER else None)
    if full is None:
        raise UserError(f"unknown provider {provider!r}: use auto or one of {', '.join(SHORT_NAMES)}")
    if full not in listed:
        have = ", ".join(short_name(p) for p in listed) or "none"
        raise UserError(
            f"provider {short_name(full)!r} is not available in this onnxruntime build (it lists: {have}); "
            f"use --provider auto, or install the onnxruntime package built for it "
            f"(e.g. onnxruntime-gpu for cuda/tensorrt)"
        )
    rest = [p for p in AUTO_ORDER[AUTO_ORDER.index(full) + 1 :] if p in listed]
    return [full, *rest] if CPU in rest or full == CPU else [full, *rest, CPU]


GPU = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})  # NVIDIA: CUDA graphs, clocks kept up


def device_type(provider: str) -> str:
    """Where a provider's tensors live, as OrtValue names it (`cuda`, `cpu`, ...)."""
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return "cuda"
    if provider in ("ROCMExecutionProvider", "MIGraphXExecutionProvider"):
        return "cuda"  # HIP devices are exposed to OrtValue under the cuda name in ROCm builds
    if provider == "DmlExecutionProvider":
        return "dml"
    return "cpu"


def load_failure(provider: str) -> str:
    """A short reason a provider's library would not load (missing CUDA/cuDNN/TensorRT libraries)."""
    lib = _PROVIDER_LIBS.get(provider)
    if lib is None:
        return "onnxruntime could not create it"
    import onnxruntime as ort

    from livefuse.engine.libraries import preload

    preload()
    capi = Path(ort.__file__).parent / "capi"
    try:
        ctypes.CDLL(str(capi / "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(capi / lib))
    except OSError as exc:
        text = str(exc)
        return text.split(": ", 1)[1] if text.startswith(str(capi)) and ": " in text else text
    return "onnxruntime could not create it (its libraries load; check the driver and the GPU)"
