"""One model on one execution provider, with provider fallback and double-buffered IOBinding."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort

from livefuse.engine import providers as prov
from livefuse.engine.iobinding import DoubleBinding
from livefuse.errors import ModelError

if TYPE_CHECKING:
    from livefuse.engine.core import Engine

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


@dataclass
class ModelSource:
    """A model to load: a file (possibly with an FP16 variant for GPUs) or serialised bytes."""

    label: str  # for messages: a manifest name@version, a path, or "built graph"
    path: Path | None = None
    data: bytes | None = None
    fp16_path: Path | None = None
    key: str = ""  # content hash, keys the optimised-model cache

    @classmethod
    def from_proto(cls, model: onnx.ModelProto, label: str = "") -> ModelSource:
        data = model.SerializeToString()
        name = label or model.graph.name or "graph"
        return cls(label=f"built graph {name!r}", data=data, key=hashlib.sha256(data).hexdigest())

    @classmethod
    def from_path(cls, path: Path, key: str = "", label: str = "") -> ModelSource:
        if not path.is_file():
            raise ModelError(
                f"model file {path} does not exist: check the path, or use a model name from "
                f"`livefuse models list`"
            )
        if not key:
            st = path.stat()
            key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        return cls(label=label or str(path), path=path, key=key)

    def variant_for(self, provider: str) -> tuple[Path | None, bytes | None, str]:
        """What to load on `provider`: the FP16 variant on GPUs when there is one."""
        if self.fp16_path is not None and provider != prov.CPU:
            return self.fp16_path, None, self.key + "-fp16"
        return self.path, self.data, self.key


class ModelSession:
    """A loaded model. Create it with `Engine.session`; call `run` once per frame.

    `run` returns numpy arrays that are views of preallocated buffers (with IOBinding on): they stay
    valid while the next frame runs and are overwritten two runs later; copy them to keep them.
    """

    def __init__(self, engine: Engine, source: ModelSource) -> None:
        self.engine = engine
        self.source = source
        self._lock = threading.Lock()
        self._runtime_fallback_done = False
        self._session, self.provider = engine.shared_session(source)  # its own binding, a shared session
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
        if self.engine.iobinding:
            self._binding = DoubleBinding(
                s, self.device, {n: d for n, (_, d) in self.inputs.items()}, self.engine._copies
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
            if len(shape) != len(want) or any(
                isinstance(w, int) and w != d for w, d in zip(want, shape, strict=True)
            ):
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
            return self._with_fallback(lambda: self._run_numpy(feeds))

    def run_device(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> dict[str, ort.OrtValue]:
        """Run one frame keeping tensors on the session's device.

        Inputs may be OrtValues already on the device (the outputs of a previous stage: bound with no
        copy) or numpy arrays (uploaded once). Outputs are the bound OrtValues of this run's buffer
        set; pass them on to the next session, or call `download` once at the end of the chain.
        """
        self._check(feeds)
        with self._lock:
            return self._with_fallback(lambda: self._run_device(feeds))

    def download(self, value: ort.OrtValue) -> np.ndarray:
        """An OrtValue as numpy: a view on CPU, one counted device-to-host copy elsewhere."""
        if value.device_name().lower() != "cpu":
            self.engine._copies.add(d2h=1)
        return value.numpy()

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

    def _with_fallback(self, call: Any) -> Any:
        try:
            return call()
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            if self.provider == prov.CPU or self._runtime_fallback_done:
                raise
            self._runtime_fallback_done = True
            failed = self.provider
            rest = self.engine._candidates()
            rest = rest[rest.index(failed) + 1 :] if failed in rest else [prov.CPU]
            log.warning(
                "provider %s failed while running %s (%s); moving it to %s",
                prov.short_name(failed),
                self.source.label,
                first_line(exc, 200),
                prov.short_name(rest[0]) if rest else "cpu",
            )
            self.engine._failed[failed] = "failed at run time"
            self._session, self.provider = self.engine._create(
                source=self.source, order=rest or [prov.CPU], quiet=True
            )
            self._setup()
            return call()

    def __repr__(self) -> str:
        return f"ModelSession({self.source.label}, provider={self.provider})"


def session_options(cache_file: Path | None, from_cache: bool) -> ort.SessionOptions:
    """Full graph optimisation (saved to `cache_file`), threads sized to leave room for capture/encoding."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = prov.intra_op_threads()
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


def first_line(exc: BaseException, limit: int) -> str:
    """An exception's first line, cut to `limit` characters (its type name when it has no message)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
