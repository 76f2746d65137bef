"""What each execution provider is asked for: the GPU options that are safe, and only where they are.

- TensorRT keeps its built engines and its timing cache on disk under the engine cache, so a second
  start loads them instead of building for minutes. FP16 engines are built only for models whose FP16
  accuracy check passed (`ModelSource.trt_fp16`, see `engine/precision.py`); they are kept apart from
  the FP32 ones, because TensorRT's cache file names do not say which precision an engine has.
- CUDA captures a CUDA graph (`enable_cuda_graph`) only for sessions whose inputs and outputs all have
  fixed shapes: a graph replays the same kernels on the same addresses, so the session's I/O binding
  then keeps fixed buffers (`iobinding.DoubleBinding(graph_capture=True)`). A session where capture
  fails is opened again without it (`core.Engine`).
- Nodes TensorRT cannot take run on CUDA rather than on the CPU, when CUDA is there.
"""

from __future__ import annotations

from pathlib import Path

from livefuse.engine.providers import CPU

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

ProviderList = list[str | tuple[str, dict[str, str]]]


def tensorrt_dirs(cache_dir: Path, fp16: bool) -> tuple[Path, Path]:
    """(engine cache, timing cache) folders under the engine cache dir."""
    root = cache_dir / "tensorrt"
    return root / ("fp16" if fp16 else "fp32"), root / "timing"


def provider_options(provider: str, cache_dir: Path, *, cuda_graph: bool = False, fp16: bool = False) -> dict[str, str]:
    """The options for `provider`; `cuda_graph` and `fp16` are what this session may use (see above)."""
    if provider == TENSORRT:
        engines, timing = tensorrt_dirs(cache_dir, fp16)
        for folder in (engines, timing):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(engines),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(timing),
            "trt_fp16_enable": "True" if fp16 else "False",
        }
    if provider == CUDA:
        options = {"cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "True"}
        if cuda_graph:
            options["enable_cuda_graph"] = "1"
        return options
    return {}


def provider_list(
    provider: str, cache_dir: Path, listed: list[str], *, cuda_graph: bool = False, fp16: bool = False
) -> ProviderList:
    """What onnxruntime gets for a session on `provider`: it with its options, then the helpers after it."""
    if provider == CPU:
        return [CPU]
    chain: ProviderList = [(provider, provider_options(provider, cache_dir, cuda_graph=cuda_graph, fp16=fp16))]
    if provider == TENSORRT and CUDA in listed:
        chain.append((CUDA, provider_options(CUDA, cache_dir)))
    chain.append(CPU)
    return chain


def uses_cuda_graph(provider: str, fixed_shapes: bool) -> bool:
    """Whether a session on `provider` with these shapes asks for a CUDA graph."""
    return provider == CUDA and fixed_shapes
