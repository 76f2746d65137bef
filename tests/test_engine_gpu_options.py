"""The GPU options where they are safe: what each provider is asked for, and the fallbacks that run here.

No GPU here, so these check what can be checked on the CPU: the option dicts, a listed GPU provider
that fails (this onnxruntime-gpu build lists CUDA and TensorRT, whose libraries are missing), the fixed
buffers a CUDA graph needs (run for real on the CPU provider), the fallback when capture fails, the
keep-warm decision and thread. The FP16 accuracy check is tests/test_precision.py.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from livefuse.device import graphs
from livefuse.engine import Engine
from livefuse.engine.graph_builder import FLOAT, GraphBuilder
from livefuse.engine.keep_warm import PAUSE_S, KeepWarm, warm_graph_runner
from livefuse.engine.provider_choice import ProviderChoice
from livefuse.engine.provider_options import CUDA, TENSORRT, provider_list, provider_options, uses_cuda_graph
from livefuse.engine.providers import CPU
from livefuse.engine.registry import Registry
from livefuse.engine.session_open import Opened
from livefuse.engine.source import ModelSource
from livefuse.errors import UserError

ALL = [TENSORRT, CUDA, CPU]


def fixed_graph(scale: float = 2.0) -> GraphBuilder:
    b = GraphBuilder("fixed")
    b.op("Mul", b.input("x", FLOAT, [2, 3]), b.const(np.full((2, 3), scale, np.float32)), out="y")
    b.output("y", FLOAT, [2, 3])
    return b


# -- what each provider is asked for ---------------------------------------------------------------


def test_tensorrt_keeps_engines_and_timing_cache_on_disk_and_fp16_only_when_declared(tmp_path: Path) -> None:
    plain = provider_options(TENSORRT, tmp_path)
    assert plain["trt_engine_cache_enable"] == "True" and plain["trt_timing_cache_enable"] == "True"
    assert Path(plain["trt_engine_cache_path"]) == tmp_path / "tensorrt" / "fp32"
    assert Path(plain["trt_timing_cache_path"]) == tmp_path / "tensorrt" / "timing"
    assert plain["trt_fp16_enable"] == "False"
    half = provider_options(TENSORRT, tmp_path, fp16=True)
    assert half["trt_fp16_enable"] == "True" and Path(half["trt_engine_cache_path"]) == tmp_path / "tensorrt" / "fp16"
    assert all(Path(plain[k]).is_dir() for k in ("trt_engine_cache_path", "trt_timing_cache_path"))
    assert "trt_fp16_enable" not in provider_options(CUDA, tmp_path)


def test_cuda_graphs_only_for_fixed_shapes_and_only_on_cuda(tmp_path: Path) -> None:
    assert provider_options(CUDA, tmp_path, cuda_graph=True)["enable_cuda_graph"] == "1"
    assert "enable_cuda_graph" not in provider_options(CUDA, tmp_path)
    assert uses_cuda_graph(CUDA, True) and not uses_cuda_graph(CUDA, False) and not uses_cuda_graph(CPU, True)
    assert ModelSource.from_proto(fixed_graph().build()).fixed_shapes
    assert not ModelSource.from_proto(graphs.preprocess((32, 24))).fixed_shapes  # any frame size: no graph


def test_tensorrt_hands_what_it_cannot_take_to_cuda(tmp_path: Path) -> None:
    chain = provider_list(TENSORRT, tmp_path, ALL, fp16=True)
    assert [p if isinstance(p, str) else p[0] for p in chain] == [TENSORRT, CUDA, CPU]
    assert [p if isinstance(p, str) else p[0] for p in provider_list(TENSORRT, tmp_path, [TENSORRT, CPU])] == [
        TENSORRT,
        CPU,
    ]
    assert provider_list(CPU, tmp_path, ALL) == [CPU]


def test_manifest_sources_say_whether_their_shapes_are_fixed_and_fp16_is_declared() -> None:
    registry = Registry()
    seg = registry.source("selfie_segmentation")
    assert seg.fixed_shapes and seg.trt_fp16
    assert not registry.entry("retinaface_mobilenet0.25").trt_fp16  # not declared: FP32 engines


# -- the provider choice --------------------------------------------------------------------------


def test_the_choice_remembers_what_failed_and_says_what_is_next() -> None:
    choice = ProviderChoice("auto", ALL)
    assert choice.order == ALL and choice.candidates() == ALL
    choice.fail(TENSORRT, "no libnvinfer")
    assert choice.candidates() == [CUDA, CPU] and choice.failures() == {TENSORRT: "no libnvinfer"}
    assert choice.after(CUDA) == [CPU] and choice.after(CPU) == [CPU]
    choice.fail(CPU, "never given up")
    assert CPU in choice.candidates()
    choice.note_printed(
        CUDA,
        "*************** EP Error ***************\nEP Error /src/pybind_state.cc:505 void "
        "Register(Options&, const Map&) libcudart.so.12: cannot open shared object file when "
        "using ['CUDAExecutionProvider']\n",
    )
    assert choice.fell_back_reason(CUDA) == "libcudart.so.12: cannot open shared object file"
    assert ProviderChoice("tensorrt", ALL).order == ALL and ProviderChoice("cuda", ALL).order == [CUDA, CPU]
    with pytest.raises(UserError, match="'coreml' is not available"):
        ProviderChoice("coreml", ALL)


@pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="this onnxruntime build does not list CUDA")
def test_a_listed_gpu_that_fails_falls_back_for_a_fixed_shape_graph(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probe = ort.InferenceSession(fixed_graph().build().SerializeToString(), providers=[CUDA, CPU])
    if probe.get_providers()[0] == CUDA:
        pytest.skip("CUDA really works here: nothing to fall back from")
    caplog.set_level(logging.INFO, logger="livefuse.engine")
    engine = Engine(provider="cuda", cache_dir=tmp_path)
    session = engine.session(fixed_graph().build())  # would ask for a CUDA graph; CUDA itself fails
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(session.run({"x": x})["y"], x * 2)
    assert session.provider == CPU == engine.provider and not session.cuda_graph
    assert CUDA in engine.choice.failures()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cuda" in warnings[0] and "using cpu" in warnings[0]
    assert not engine.keep_warm.running  # it runs on the CPU: no keep-warm


# -- CUDA graph buffers and the capture fallback ------------------------------------------------------


class GraphEngine(Engine):
    """An engine whose sessions are opened as if they captured a CUDA graph (here on the CPU provider)."""

    def create(self, source: ModelSource, order: list[str], quiet: bool = False) -> Opened:
        opened = super().create(source, order, quiet)
        return Opened(opened.session, opened.provider, cuda_graph=source.fixed_shapes)


def test_graph_capture_buffers_are_fixed_and_results_exact(tmp_path: Path) -> None:
    engine = GraphEngine(provider="cpu", cache_dir=tmp_path)
    session = engine.session(fixed_graph().build())
    assert session.cuda_graph
    binding = session._binding
    assert binding is not None and binding.graph_outputs is not None
    frames = [np.full((2, 3), i, np.float32) for i in range(6)]
    outs = [session.run({"x": f}) for f in frames[:2]]
    pointers = [
        ({k: v.data_ptr() for k, v in s.inputs.items()}, {k: v.data_ptr() for k, v in (s.outputs or {}).items()})
        for s in binding.sets
    ]
    for i, frame in enumerate(frames[2:], start=2):
        out = session.run({"x": frame})
        assert np.array_equal(out["y"], frame * 2)
        assert np.array_equal(outs[-1]["y"], frames[i - 1] * 2)  # the previous frame's output is untouched
        outs.append(out)
    # The graph reads and writes the same addresses every run: nothing rebound, the caller's array copied in.
    assert pointers == [
        ({k: v.data_ptr() for k, v in s.inputs.items()}, {k: v.data_ptr() for k, v in (s.outputs or {}).items()})
        for s in binding.sets
    ]
    assert all(s.bound_in["x"] == s.inputs["x"].data_ptr() for s in binding.sets)
    chained = session.run_device({"x": session.run_device({"x": frames[1]})["y"]})  # a device value: copied on it
    assert np.array_equal(session.download(chained["y"]), frames[1] * 4)


def test_a_failed_capture_reopens_the_session_without_a_graph(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = GraphEngine(provider="cpu", cache_dir=tmp_path)
    session = engine.session(fixed_graph().build())
    binding = session._binding
    assert binding is not None

    def capture_fails(buf: object, options: object = None) -> None:
        raise RuntimeError("CUDA failure 900: operation not permitted when stream is capturing")

    binding._run = capture_fails  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="livefuse.engine")
    x = np.ones((2, 3), np.float32)
    assert np.array_equal(session.run({"x": x})["y"], x * 2)
    assert not session.cuda_graph and session.provider == CPU and not session.source.fixed_shapes
    assert session._binding is not binding and session._binding is not None and session._binding.graph_outputs is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "CUDA graph failed" in messages[0] and "stream is capturing" in messages[0]
    assert np.array_equal(session.run({"x": x * 3})["y"], x * 6)  # and it keeps running without one


# -- keeping the clocks up --------------------------------------------------------------------------


def test_keep_warm_runs_only_in_gaps_and_not_after_the_stream_paused() -> None:
    runs: list[int] = []
    warm = KeepWarm(20.0, lambda: lambda: runs.append(1))
    warm.ran()
    start = time.monotonic()
    assert not warm.tick(start + 0.005)  # frames are coming: nothing to do
    assert warm.tick(start + 0.025) and runs == [1]  # a 25 ms gap: the tiny graph runs
    assert not warm.tick(start + PAUSE_S + 0.1)  # the stream stopped: the GPU may rest
    warm.ran()
    assert not warm.tick(time.monotonic())
    assert not KeepWarm(0.0, lambda: lambda: None).idle_s  # 0 turns it off


def test_keep_warm_thread_starts_on_request_and_stops(tmp_path: Path) -> None:
    engine = Engine(provider="cpu", cache_dir=tmp_path)
    run = warm_graph_runner(engine.opener, CPU)  # the real tiny graph, here on the CPU provider
    run()
    done = threading.Event()

    def run_and_tell() -> None:
        run()
        done.set()

    warm = KeepWarm(5.0, lambda: run_and_tell)
    warm.start()
    try:
        assert done.wait(5.0) and warm.running and warm.warm_runs >= 1
    finally:
        warm.stop()
    assert not warm.running
    off = KeepWarm(0.0, lambda: run)
    off.start()
    assert not off.running


def test_a_cpu_engine_never_starts_keep_warm(tmp_path: Path) -> None:
    engine = Engine(provider="cpu", cache_dir=tmp_path)
    session = engine.session(fixed_graph().build())
    for _ in range(3):
        session.run({"x": np.ones((2, 3), np.float32)})
    assert not engine.keep_warm.running
    assert not any(t.name == "livefuse-keep-warm" for t in threading.enumerate())
