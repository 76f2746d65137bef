"""A provider that does not load is explained: what is missing and what to install, in the log and status."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import onnxruntime as ort
import pytest

from livefuse.chain import Chain
from livefuse.engine import Engine
from livefuse.engine import provider_help as help_
from livefuse.engine.libraries import missing_from, preload
from livefuse.pipeline import Pipeline
from livefuse.presets import load_preset
from livefuse.runtime import Runtime
from livefuse.sources.base import Source
from livefuse.stage import StageContext

CUDA, TENSORRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"
MISSING = "{}: cannot open shared object file: No such file or directory"


@pytest.fixture
def cuda13(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(help_, "build_cuda_major", lambda: 13)


def test_a_missing_cuda_library_names_the_extra_and_the_versions(cuda13: None) -> None:
    assert help_.explain(CUDA, MISSING.format("libcublasLt.so.13"), driver="580.65.06") == (
        "CUDA: libcublasLt.so.13 not found; install livefuse[cuda] or CUDA 13 + cuDNN 9"
    )
    assert help_.explain(TENSORRT, MISSING.format("libnvinfer.so.10"), driver="580.65.06") == (
        "TensorRT: libnvinfer.so.10 not found; install livefuse[tensorrt] or TensorRT 10 + CUDA 13 + cuDNN 9"
    )
    assert help_.explain(CUDA, MISSING.format("libcublasLt.so.13"), driver="") == (
        "CUDA: libcublasLt.so.13 not found; install livefuse[cuda] or CUDA 13 + cuDNN 9 "
        "(and the NVIDIA driver, 580 or newer: none is installed)"
    )


def test_windows_error_126_names_the_provider_library_and_the_fix(cuda13: None) -> None:
    reason = (
        'LoadLibrary failed with error 126 "" when trying to load '
        '"C:\\venv\\Lib\\site-packages\\onnxruntime\\capi\\onnxruntime_providers_cuda.dll"'
    )
    assert help_.explain(CUDA, reason, driver="581.15") == (
        "CUDA: onnxruntime_providers_cuda.dll does not load (a library it needs is missing); "
        "install livefuse[cuda] or CUDA 13 + cuDNN 9"
    )


def test_an_old_driver_and_a_missing_one_are_told_apart(cuda13: None) -> None:
    assert help_.explain(
        CUDA, "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version", driver="535.104.05"
    ) == ("CUDA: the NVIDIA driver (535.104.05) is too old for CUDA 13; install driver 580 or newer")
    # an old driver is the reason even where onnxruntime only says a library is missing
    assert "too old for CUDA 13" in help_.explain(CUDA, MISSING.format("libcublasLt.so.13"), driver="535.1")
    assert help_.explain(CUDA, MISSING.format("libcuda.so.1"), driver="") == (
        "CUDA: no NVIDIA driver (libcuda.so.1 not found); install the NVIDIA driver (580 or newer for CUDA 13), "
        "or run with --provider cpu"
    )
    assert "no NVIDIA GPU is visible" in help_.explain(
        CUDA, "CUDA failure 100: no CUDA-capable device is detected", driver="580.65"
    )


def test_onnxruntimes_notice_without_a_library_is_looked_into(cuda13: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(help_.prov, "load_failure", lambda provider: MISSING.format("libnvinfer.so.10"))
    assert help_.explain(
        TENSORRT, "Please install TensorRT libraries as mentioned in the GPU requirements page", driver="580.1"
    ).startswith("TensorRT: libnvinfer.so.10 not found; install livefuse[tensorrt]")
    assert help_.explain("CoreMLExecutionProvider", "model not supported") == "CoreML: model not supported"


def test_preload_dlls_notes_become_missing_libraries() -> None:
    printed = (
        "Failed to load /x/site-packages/nvidia/cu13/lib/libcublasLt.so.13: libcublasLt.so.13: cannot open "
        "shared object file\nFailed to load libcudart.so.13: libcudart.so.13: cannot open shared object file\n"
        "Please follow https://onnxruntime.ai/docs/install/#cuda-and-cudnn to install CUDA.\n"
    )
    assert missing_from(printed) == {
        "libcublasLt.so.13": "libcublasLt.so.13: cannot open shared object file",
        "libcudart.so.13": "libcudart.so.13: cannot open shared object file",
    }


def test_preload_runs_once_and_where_onnxruntime_offers_it() -> None:
    first = preload()
    assert preload() is first
    assert first.available == (
        "CUDAExecutionProvider" in ort.get_available_providers() and hasattr(ort, "preload_dlls")
    )


class Blank(Source):
    description, size, fps = "blank", (64, 48), 30.0

    def read(self) -> None:
        return None

    def close(self) -> None:
        pass


@pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="this onnxruntime build does not list CUDA")
def test_a_real_fallback_is_explained_once_and_in_status(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livefuse.engine")
    engine = Engine(provider="auto", cache_dir=tmp_path)
    if engine.resolve_provider() != "CPUExecutionProvider":
        pytest.skip("a GPU provider really works here: nothing to explain")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    explained = r"CUDA: (lib\S+ not found; install livefuse\[cuda\] or CUDA \d+ \+ cuDNN 9|no NVIDIA driver|the NVIDIA)"
    assert re.search(explained, warnings[0]), warnings[0]
    preset = load_preset("passthrough")
    context = StageContext(engine=engine, size=(64, 48), fps=30.0, preset_dir=preset.path.parent)
    runtime = Runtime(Pipeline(Blank(), Chain("none", []), [], fps=30.0), preset, context, engine)
    status = runtime.status()["provider_fallbacks"]
    assert re.search(explained, status["cuda"]), status
    engine.close()
