"""One model on one execution provider, with run-time fallback and double-buffered IOBinding.

A session that fails while running moves, once, to the next provider its engine's choice offers. A
session with a CUDA graph whose capture (or replay) fails is first opened again on the same provider
without the graph.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import onnxruntime as ort

from livefuse.engine import providers as prov
from livefuse.engine.iobinding import DoubleBinding
from livefuse.engine.reasons import first_line
from livefuse.engine.shapes import all_fixed
from livefuse.engine.source import ModelSource

if TYPE_CHECKING:
    from livefuse.engine.iobinding import Copies
    from livefuse.engine.keep_warm import KeepWarm
    from livefuse.engine.provider_choice import ProviderChoice
    from livefuse.engine.session_open import Opened
    from livefuse.engine.shared import SessionPool

T = TypeVar("T")


class SessionHost(Protocol):
    """What a session needs of its engine (`core.Engine`): opening sessions, the choice, the counters."""

    iobinding: bool
    choice: ProviderChoice
    keep_warm: KeepWarm
    _copies: Copies

    pool: SessionPool

    def create(self, source: ModelSource, order: list[str], quiet: bool = False) -> Opened: ...

    def shared(self, source: ModelSource) -> Opened: ...

    def open_on(self, source: ModelSource, provider: str, cuda_graph: bool) -> Opened | None: ...


class Session(Protocol):
    """A model to run, wherever it runs: the local `ModelSession` and Triton's `RemoteSession` both are one.

    `inputs` and `outputs` map each name to (shape, numpy dtype); `provider` is where the calls run now.
    """

    source: ModelSource
    input_names: list[str]
    output_names: list[str]
    inputs: dict[str, tuple[list[int | str | None], np.dtype]]
    outputs: dict[str, tuple[list[int | str | None], np.dtype]]

    @property
    def provider(self) -> str: ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


log = logging.getLogger("livefuse.engine")

# onnxruntime type strings -> numpy dtypes.
ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


class ModelSession:
    """A loaded model. Create it with `Engine.session`; call `run` once per frame.

    `run` returns numpy arrays that are views of preallocated buffers (with IOBinding on): they stay
    valid while the next frame runs and are overwritten two runs later; copy them to keep them.
    """

    def __init__(self, engine: SessionHost, source: ModelSource) -> None:
        self.engine = engine
        self.source = source
        self._lock = threading.Lock()
        self._runtime_fallback_done = False
        self._adopt(engine.shared(source))  # its own binding, on the session every stream shares

    def _adopt(self, opened: Opened) -> None:
        self._session, self.provider, self.cuda_graph = opened.session, opened.provider, opened.cuda_graph
        self._setup()

    def _setup(self) -> None:
        s = self._session
        self.input_names: list[str] = [i.name for i in s.get_inputs()]
        self.output_names: list[str] = [o.name for o in s.get_outputs()]
        self.inputs: dict[str, tuple[list[int | str | None], np.dtype]] = {
            i.name: (list(i.shape), ORT_DTYPES.get(i.type, np.dtype(object))) for i in s.get_inputs()
        }
        self.outputs: dict[str, tuple[list[int | str | None], np.dtype]] = {
            o.name: (list(o.shape), ORT_DTYPES.get(o.type, np.dtype(object))) for o in s.get_outputs()
        }
        self.device = prov.device_type(self.provider)
        self._binding: DoubleBinding | None = None
        if self.engine.iobinding or self.cuda_graph:
            fixed = {
                n: ([int(d) for d in shape if isinstance(d, int)], dtype) for n, (shape, dtype) in self.outputs.items()
            }
            graph = self.cuda_graph and all_fixed(shape for shape, _ in self.outputs.values())
            self._binding = DoubleBinding(
                s,
                self.device,
                {n: d for n, (_, d) in self.inputs.items()},
                self.engine._copies,
                graph_outputs=fixed if graph else None,
            )

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session (for tools; stages should use `run`)."""
        return self._session

    def metadata(self) -> dict[str, str]:
        """The model's metadata_props (source, version, tool, date for optimised/exported models)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    # -- running ---------------------------------------------------------------------------------

    def _check(self, feeds: Mapping[str, Any]) -> None:
        if set(feeds) != set(self.input_names):
            raise ValueError(f"{self.source.label} takes inputs {self.input_names}, got {sorted(feeds)}")
        for name, value in feeds.items():
            shape = value.shape() if isinstance(value, ort.OrtValue) else value.shape
            want = self.inputs[name][0]
            if len(shape) != len(want) or any(isinstance(w, int) and w != d for w, d in zip(want, shape, strict=True)):
                raise ValueError(f"{self.source.label} input {name!r} has shape {want}, got {list(shape)}")

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one frame: inputs by name -> outputs by name (numpy; see the class note on validity).

        With batching on, the frame runs in a batch with other streams' frames (engine/batcher.py).
        """
        self._check(feeds)
        batcher = self.engine.pool.batcher(self._session, self.source.label)
        if batcher is not None:
            return batcher.run(feeds)
        with self._lock:
            out = self._with_fallback(lambda: self._run_numpy(feeds))
        self.engine.keep_warm.ran()
        return out

    def run_device(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> dict[str, ort.OrtValue]:
        """Run one frame keeping tensors on the session's device.

        Inputs may be OrtValues already on the device (the outputs of a previous stage: bound with no
        copy) or numpy arrays (uploaded once). Outputs are the bound OrtValues of this run's buffer
        set; pass them on to the next session, or call `download` once at the end of the chain.
        """
        self._check(feeds)
        with self._lock:
            out = self._with_fallback(lambda: self._run_device(feeds))
        self.engine.keep_warm.ran()
        return out

    def download(self, value: ort.OrtValue) -> np.ndarray:
        """An OrtValue as numpy: a view on CPU, one counted device-to-host copy elsewhere."""
        if value.device_name().lower() != "cpu":
            self.engine._copies.add(d2h=1)
        array: np.ndarray = value.numpy()
        return array

    def _run_numpy(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._binding is None:
            values = self._session.run(None, dict(feeds))
            if self.device != "cpu":  # onnxruntime copies inputs up and outputs down itself
                self.engine._copies.add(h2d=len(feeds), d2h=len(values))
            return dict(zip(self.output_names, values, strict=True))
        return self._binding.to_numpy(self._binding.run(feeds))

    def _run_device(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> dict[str, ort.OrtValue]:
        if self._binding is None:
            host = {n: v.numpy() if isinstance(v, ort.OrtValue) else v for n, v in feeds.items()}
            return {n: ort.OrtValue.ortvalue_from_numpy(v) for n, v in self._run_numpy(host).items()}
        return self._binding.run(feeds)

    def _with_fallback(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            if self.cuda_graph and self._without_cuda_graph(exc):
                return self._with_fallback(call)  # without the graph now; a second failure moves provider
            if self.provider == prov.CPU or self._runtime_fallback_done:
                raise
            self._runtime_fallback_done = True
            failed = self.provider
            rest = self.engine.choice.after(failed)
            log.warning(
                "provider %s failed while running %s (%s); moving it to %s",
                prov.short_name(failed),
                self.source.label,
                first_line(exc, 200),
                prov.short_name(rest[0]),
            )
            self.engine.choice.fail(failed, "failed at run time")
            self._adopt(self.engine.create(source=self.source, order=rest, quiet=True))
            return call()

    def _without_cuda_graph(self, exc: Exception) -> bool:
        """The CUDA graph failed to capture or replay: the same provider without it (whether that opened)."""
        log.warning(
            "CUDA graph failed for %s (%s); running it without one on %s",
            self.source.label,
            first_line(exc, 200),
            prov.short_name(self.provider),
        )
        self.source.fixed_shapes = False  # later sessions of this source do not try again
        opened = self.engine.open_on(self.source, self.provider, cuda_graph=False)
        if opened is None:
            return False
        self._adopt(opened)
        return True

    def __repr__(self) -> str:
        return f"ModelSession({self.source.label}, provider={self.provider})"
