"""Running a small built graph on device tensors, with onnxruntime's arena allocating each output.

The engine's `ModelSession.run_device` keeps two preallocated output sets (A/B), which suits a model run
once per frame with fixed shapes. The device helpers here run several times a frame, on face regions
whose shapes change every frame; a fresh IOBinding per call binds inputs where they already are and
lets the arena allocate the outputs, which then live as long as the frame that holds them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from livefuse.engine.core import Engine
from livefuse.engine.providers import SHORT_NAMES
from livefuse.engine.session import ModelSession
from livefuse.engine.source import ModelSource

TENSORRT = SHORT_NAMES["tensorrt"]


def without_tensorrt(engine: Engine) -> Any:
    """The engine as these helpers use it: TensorRT left out of its provider order (CUDA stays).

    TensorRT compiles an engine per input shape; region graphs see new shapes every frame, and the
    small fixed-shape ones gain nothing from it. The view shares the engine's failure memory and copy
    counters (shallow copies, as `Engine.for_session` makes), so the engine's own provider is unchanged.
    """
    order = [p for p in engine.choice.order if p != TENSORRT]
    if order == engine.choice.order:
        return engine
    view = copy.copy(engine)
    view.choice = copy.copy(engine.choice)
    view.choice.order = order
    view.choice.current = order[0]
    return view


class DeviceGraph:
    """A built graph on the engine's provider (with its fallback, TensorRT aside), run on OrtValues.

    Never as a CUDA graph: its outputs are allocated afresh on every run, which a captured graph cannot
    follow (it replays on the addresses it was captured with).
    """

    def __init__(self, engine: Engine, model: onnx.ModelProto) -> None:
        source = ModelSource.from_proto(model)
        source.fixed_shapes = False
        self._model = ModelSession(without_tensorrt(engine), source)  # provider choice and fallback: the engine's
        self.output_names: list[str] = [o.name for o in self._model.session.get_outputs()]

    @property
    def device(self) -> str:
        """Where its outputs live: "cpu" or "cuda" (the provider the session really got)."""
        return str(self._model.device)

    def run(
        self, feeds: Mapping[str, np.ndarray | ort.OrtValue], outputs: Sequence[str] | None = None
    ) -> dict[str, ort.OrtValue]:
        """Outputs by name as OrtValues on the session's device; numpy inputs are copied up by onnxruntime."""
        session = self._model.session
        io = session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                io.bind_ortvalue_input(name, value)
            else:
                io.bind_cpu_input(name, np.ascontiguousarray(value))
        names = list(outputs) if outputs is not None else self.output_names
        for name in names:
            io.bind_output(name, self.device, 0)
        session.run_with_iobinding(io)
        return dict(zip(names, io.get_outputs(), strict=True))
