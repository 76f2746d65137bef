"""Double-buffered IOBinding: inputs and outputs live in two preallocated sets used alternately.

Run N uses set N % 2, so the arrays (or OrtValues) returned for frame N are views of set N % 2's
output buffers and stay valid while frame N + 1 runs; run N + 2 overwrites them. Buffers are
allocated on the session's device once per input-shape signature (the first run on each set lets
onnxruntime allocate the outputs, which are then kept and re-bound), never per frame.

Copies are counted: a numpy input to a GPU session is one host-to-device copy, reading a GPU
output back as numpy is one device-to-host copy. On CPU nothing is copied: a contiguous input of the
right dtype is bound in place and outputs are numpy views of the bound OrtValues.

With `graph_capture` (a CUDA graph: every input and output of fixed shape) nothing is bound in place:
a graph replays on the addresses it was captured with, so each set keeps its own input and output
buffers from the start, inputs are copied into them (numpy: one upload; a device value: a copy on the
device), and each set is its own graph (`gpu_graph_id` 0 and 1).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort


@dataclass
class Copies:
    """Cumulative host<->device copies for an engine (shared by its sessions)."""

    h2d: int = 0
    d2h: int = 0
    host: int = 0  # host-side copies into a staging buffer (dtype cast or non-contiguous input)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, h2d: int = 0, d2h: int = 0, host: int = 0) -> None:
        with self.lock:
            self.h2d += h2d
            self.d2h += d2h
            self.host += host


def _shape(value: np.ndarray | ort.OrtValue) -> tuple[int, ...]:
    if isinstance(value, ort.OrtValue):
        return tuple(int(d) for d in value.shape())
    return tuple(value.shape)


@dataclass
class _Set:
    """One buffer set: its IOBinding and the OrtValues bound to it."""

    io: ort.IOBinding
    inputs: dict[str, ort.OrtValue] = field(default_factory=dict)  # staging buffers on the device
    bound_in: dict[str, int] = field(default_factory=dict)  # name -> data pointer now bound
    outputs: dict[str, ort.OrtValue] | None = None  # None until the first run on this set


class DoubleBinding:
    """Preallocated, alternating input/output buffers for one InferenceSession."""

    def __init__(
        self,
        session: ort.InferenceSession,
        device: str,
        dtypes: Mapping[str, np.dtype],
        copies: Copies,
        graph_outputs: Mapping[str, tuple[list[int], np.dtype]] | None = None,
    ) -> None:
        self.session = session
        self.device = device  # "cpu" or "cuda" (OrtValue device names)
        self.dtypes = dict(dtypes)  # input name -> numpy dtype
        self.copies = copies
        self.output_names = [o.name for o in session.get_outputs()]
        self.graph_outputs = dict(graph_outputs) if graph_outputs is not None else None  # fixed: CUDA graph
        self._run_options: list[ort.RunOptions | None] = [None, None]
        if self.graph_outputs is not None:
            for index in range(2):
                options = ort.RunOptions()
                options.add_run_config_entry("gpu_graph_id", str(index))
                self._run_options[index] = options
        self.signature: tuple[tuple[int, ...], ...] | None = None
        self.sets: list[_Set] = []
        self.runs = 0
        self.dynamic_outputs = False  # outputs whose shape depends on the data: re-allocated each run

    # -- buffers ---------------------------------------------------------------------------------

    def _prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """(Re)allocate both sets when the input shapes change (a resolution change, not per frame)."""
        signature = tuple(shapes[name] for name in self.dtypes)
        if signature == self.signature:
            return
        self.signature = signature
        self.sets = []
        for _ in range(2):
            buf = _Set(io=self.session.io_binding())
            for name, shape in shapes.items():
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), self.dtypes[name], self.device, 0)
                buf.inputs[name] = value
                buf.io.bind_ortvalue_input(name, value)
                buf.bound_in[name] = value.data_ptr()
            if self.graph_outputs is not None:
                buf.outputs = {
                    name: ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, self.device, 0)
                    for name, (shape, dtype) in self.graph_outputs.items()
                }
                for name, value in buf.outputs.items():
                    buf.io.bind_ortvalue_output(name, value)
            self.sets.append(buf)

    def _bind_outputs(self, buf: _Set) -> None:
        buf.io.clear_binding_outputs()
        for name in self.output_names:
            buf.io.bind_output(name, self.device, 0)

    def current(self) -> _Set:
        """The set the next run will use (for tests that poison the other one)."""
        return self.sets[self.runs % 2]

    # -- running ---------------------------------------------------------------------------------

    def _feed(self, buf: _Set, name: str, value: np.ndarray | ort.OrtValue) -> None:
        """Bind one input: in place when possible, else copy into the set's staging buffer."""
        staging = buf.inputs[name]
        if self.graph_outputs is not None:
            self._copy_in(staging, self.dtypes[name], value)
            return
        if isinstance(value, ort.OrtValue):
            if value.device_name().lower() == self.device:
                ptr = value.data_ptr()
                if buf.bound_in.get(name) != ptr:
                    buf.io.bind_ortvalue_input(name, value)
                    buf.bound_in[name] = ptr
                return
            value = value.numpy()  # another device: bring it to the host first
            self.copies.add(d2h=1)
        dtype = self.dtypes[name]
        if self.device == "cpu":
            if value.dtype == dtype and value.flags.c_contiguous:
                ptr = value.ctypes.data
                if buf.bound_in.get(name) != ptr:
                    buf.io.bind_input(name, "cpu", 0, dtype, list(value.shape), ptr)
                    buf.bound_in[name] = ptr
                return
            np.copyto(staging.numpy(), value, casting="same_kind")
            self.copies.add(host=1)
        else:
            if value.dtype != dtype or not value.flags.c_contiguous:
                value = np.ascontiguousarray(value, dtype=dtype)
                self.copies.add(host=1)
            staging.update_inplace(value)
            self.copies.add(h2d=1)
        if buf.bound_in.get(name) != staging.data_ptr():
            buf.io.bind_ortvalue_input(name, staging)
            buf.bound_in[name] = staging.data_ptr()

    def _copy_in(self, staging: ort.OrtValue, dtype: np.dtype, value: np.ndarray | ort.OrtValue) -> None:
        """Graph capture: the value into the fixed buffer the graph reads (never rebinding it)."""
        if isinstance(value, ort.OrtValue):
            if value.device_name().lower() == self.device:
                if self.device == "cpu":
                    np.copyto(staging.numpy(), value.numpy())
                    self.copies.add(host=1)
                else:
                    ort.copy_tensors([value], [staging])  # on the device: no trip through the host
                return
            value = value.numpy()
            self.copies.add(d2h=1)
        if value.dtype != dtype or not value.flags.c_contiguous:
            value = np.ascontiguousarray(value, dtype=dtype)
            self.copies.add(host=1)
        staging.update_inplace(value)
        if self.device != "cpu":
            self.copies.add(h2d=1)

    def run(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> dict[str, ort.OrtValue]:
        """Run once on the next set; return its output OrtValues (on the session's device)."""
        self._prepare({name: _shape(feeds[name]) for name in self.dtypes})
        index = self.runs % 2
        buf = self.sets[index]
        for name, value in feeds.items():
            self._feed(buf, name, value)
        if self.graph_outputs is not None and buf.outputs is not None:
            self._run(buf, self._run_options[index])  # a capture that fails is the caller's to handle
            self.runs += 1
            return buf.outputs
        if buf.outputs is None or self.dynamic_outputs:
            self._bind_outputs(buf)
            self._run(buf)
        else:
            try:
                self._run(buf)
            except Exception:  # noqa: BLE001 (onnxruntime reports a shape mismatch as a bare Fail)
                # A data-dependent output shape changed: let onnxruntime allocate outputs from now on.
                self.dynamic_outputs = True
                self._bind_outputs(buf)
                self._run(buf)
        if buf.outputs is None and not self.dynamic_outputs:
            values = buf.io.get_outputs()
            buf.outputs = dict(zip(self.output_names, values, strict=True))
            buf.io.clear_binding_outputs()
            for name, value in buf.outputs.items():
                buf.io.bind_ortvalue_output(name, value)
            out = buf.outputs
        elif self.dynamic_outputs or buf.outputs is None:
            out = dict(zip(self.output_names, buf.io.get_outputs(), strict=True))
        else:
            out = buf.outputs
        self.runs += 1
        return out

    def _run(self, buf: _Set, options: ort.RunOptions | None = None) -> None:
        if self.device != "cpu":
            buf.io.synchronize_inputs()
        self.session.run_with_iobinding(buf.io, options)
        if self.device != "cpu":
            buf.io.synchronize_outputs()

    def to_numpy(self, values: Mapping[str, ort.OrtValue]) -> dict[str, np.ndarray]:
        """Outputs as numpy: views on CPU, one counted download per output elsewhere."""
        out = {name: value.numpy() for name, value in values.items()}
        if self.device != "cpu":
            self.copies.add(d2h=len(out))
        return out
