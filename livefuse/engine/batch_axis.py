"""Give a fixed-batch-1 model a dynamic batch axis, and prove the batched model still answers per item.

MediaPipe's converted models (and many exports) fix the batch at 1: their inputs, outputs and the
target shapes of their Reshape nodes all start with 1. A server that merges requests from several
streams (Triton's dynamic batcher, a cross-stream batcher) needs that axis free. The rewrite below
frees it, and `batch_error` runs the result on a few random items, alone and together, so a model
the rewrite would break is never served batched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

BATCH_DIM = "batch"


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The fixed batch size of the model's first input (None when the first axis is already dynamic)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def with_dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose inputs, outputs and batch-carrying Reshapes take any batch size.

    Every Reshape whose target is a constant and whose output (measured on one batch-1 run) starts
    with the batch of 1 gets the target `[-1, *rest]`, with `rest` taken from that run, so a `-1`
    already elsewhere in the target does not clash.
    """
    static = _reshape_shapes(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = BATCH_DIM
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers:
            continue
        shape = static.get(node.output[0])
        target = numpy_helper.to_array(initializers[node.input[1]])
        if shape is None or not shape or shape[0] != 1 or target.ndim != 1 or target.size != len(shape):
            continue
        # A target of its own: converters share one constant between Reshapes of different shapes.
        name = f"{node.output[0]}__batch_target"
        graph.initializer.append(numpy_helper.from_array(np.array([-1, *shape[1:]], dtype=target.dtype), name))
        node.input[1] = name
    del graph.value_info[:]  # stale batch-1 shapes; onnxruntime infers them again
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return out


def _cpu_session(model: onnx.ModelProto) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _dtype(value: Any) -> type[np.generic]:
    """An onnxruntime input's numpy type: uint8 for a model that takes pixels (tools/pixel_input.py), else
    float32."""
    return np.uint8 if value.type == "tensor(uint8)" else np.float32


def _reshape_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """The real output shape of every Reshape, from one run at batch 1 with those tensors exposed.

    A run, not onnx shape inference: converted graphs carry value_info that inference trusts even
    where it disagrees with what the graph computes.
    """
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    known = {o.name for o in probe.graph.output}
    names = [n.output[0] for n in probe.graph.node if n.op_type == "Reshape" and n.output[0] not in known]
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session: Any = _cpu_session(probe)
    feeds = {
        v.name: np.zeros([d if isinstance(d, int) else 1 for d in v.shape], _dtype(v)) for v in session.get_inputs()
    }
    outputs = [o.name for o in session.get_outputs()]
    return {name: list(value.shape) for name, value in zip(outputs, session.run(None, feeds), strict=True)}


def batch_error(model: onnx.ModelProto, items: int = 3, seed: int = 0) -> float:
    """Largest difference between running `items` random inputs as one batch and one at a time.

    Raises whatever onnxruntime raises when the batched model does not load or run.
    """
    session: Any = _cpu_session(model)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in session.get_inputs():
        shape = [items, *[d if isinstance(d, int) else 1 for d in value.shape[1:]]]
        if _dtype(value) == np.uint8:
            feeds[value.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            feeds[value.name] = rng.random(shape, dtype=np.float32)
    batched = session.run(None, feeds)
    worst = 0.0
    for i in range(items):
        alone = session.run(None, {name: array[i : i + 1] for name, array in feeds.items()})
        for b, a in zip(batched, alone, strict=True):
            worst = max(worst, float(np.abs(b[i : i + 1] - a).max()))
    return worst
