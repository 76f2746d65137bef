"""Opening one onnxruntime session on exactly one provider, with the optimised-model cache on disk.

Graph optimisation of a big model takes seconds; the optimised graph is saved per model hash,
provider and onnxruntime version and loaded from then on (not for providers that compile subgraphs
into their own kernels: onnxruntime cannot save those). What onnxruntime prints when it silently
put a session on the CPU is kept for the provider choice's one log line.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import onnxruntime as ort

from livefuse.engine import providers as prov
from livefuse.engine.provider_choice import ProviderChoice
from livefuse.engine.provider_options import TENSORRT, provider_list
from livefuse.engine.reasons import first_line
from livefuse.engine.source import ModelSource
from livefuse.errors import ModelError
from livefuse.threads import usable_cores


def intra_op_threads() -> int:
    """Threads for one session: the machine's cores less one, left for capture and encoding."""
    return max(1, usable_cores() - 1)


def session_options(cache_file: Path | None, from_cache: bool) -> ort.SessionOptions:
    """Full graph optimisation (saved to `cache_file`), threads sized to leave room for capture/encoding."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = intra_op_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads would steal the cores capture and encoding need between frames.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if from_cache:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if cache_file is not None:
            so.optimized_model_filepath = str(cache_file)
    return so


def cache_name(key: str, provider: str) -> str:
    """The optimised-model file for a model hash on a provider with this onnxruntime."""
    return f"{key[:24]}-{prov.short_name(provider)}-ort{ort.__version__}.onnx"


def tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


class Opened:
    """A session onnxruntime opened, the provider it runs on, and whether it captures a CUDA graph."""

    __slots__ = ("cuda_graph", "provider", "session")

    def __init__(self, session: ort.InferenceSession, provider: str, cuda_graph: bool) -> None:
        self.session, self.provider, self.cuda_graph = session, provider, cuda_graph


class SessionOpener:
    """Opens sessions for one engine: its cache dir, and the provider choice that hears what failed."""

    def __init__(self, cache_dir: Path, choice: ProviderChoice) -> None:
        self.cache_dir = cache_dir
        self.choice = choice
        self._lock = threading.Lock()  # onnxruntime's logger severity and stdout are process-wide

    def open(self, source: ModelSource, provider: str, cuda_graph: bool = False) -> ort.InferenceSession | None:
        """A session on exactly `provider`, or None when onnxruntime put it on the CPU instead.

        A model that does not load on the CPU is a ModelError; other providers raise what onnxruntime raised.
        """
        path, data, key = source.variant_for(provider)
        providers = provider_list(
            provider,
            self.cache_dir,
            self.choice.listed,
            cuda_graph=cuda_graph,
            fp16=source.trt_fp16 and provider == TENSORRT,
        )
        cached: Path | None = None
        if provider not in prov.COMPILING and key:
            cached = self.cache_dir / "optimized" / cache_name(key, provider)
        model: str | bytes = str(path) if path is not None else data  # type: ignore[assignment]
        if cached is not None and cached.is_file():
            try:
                session = self._create(str(cached), providers, session_options(None, from_cache=True), provider)
                if session is not None:
                    return session
            except Exception:  # noqa: BLE001 (a stale or broken cache file of any kind: rebuild it below)
                with contextlib.suppress(OSError):
                    cached.unlink()
        tmp: Path | None = None
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = tmp_name(cached)
            except OSError:
                tmp = None
        try:
            session = self._create(model, providers, session_options(tmp, from_cache=False), provider)
        except Exception as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            if provider == prov.CPU:
                raise ModelError(
                    f"{source.label} does not load in onnxruntime: "
                    f"{first_line(exc, 300)}; run `livefuse models verify`, "
                    f"and re-download or re-export the model"
                ) from exc
            raise
        if tmp is not None and cached is not None:
            with contextlib.suppress(OSError):
                if session is not None and tmp.is_file():
                    os.replace(tmp, cached)
                else:
                    tmp.unlink()
        return session

    def _create(
        self,
        model: str | bytes,
        providers: list[str | tuple[str, dict[str, str]]],
        options: ort.SessionOptions,
        provider: str,
    ) -> ort.InferenceSession | None:
        printed = io.StringIO()
        with self._lock:
            if provider != prov.CPU:
                ort.set_default_logger_severity(4)  # we log the reason once ourselves
            try:
                # onnxruntime prints its own fallback notice on stdout; keep it for our one log line.
                with contextlib.redirect_stdout(printed):
                    session = ort.InferenceSession(model, options, providers=providers)
            finally:
                if provider != prov.CPU:
                    ort.set_default_logger_severity(3)
        # Run-time failures are ours to handle (one log line, next provider), not onnxruntime's silent retry.
        session.disable_fallback()
        if session.get_providers()[0] != provider:
            self.choice.note_printed(provider, printed.getvalue())
            return None
        return session
