"""The FP16 accuracy check: may TensorRT build this model in FP16 (`trt_fp16 = true` in the manifest)?

FP16 roughly doubles TensorRT's speed but can move a model's outputs: a detector's scores past its
threshold, a mask's edge. So FP16 is a declared, per-model choice, and the declaration is checked: the
model's FP32 outputs on a fixed input are compared with those it gives in FP16, and the largest
difference must stay within `tolerance` of each output's largest magnitude (manifest
`trt_fp16_tolerance`, default 1 %). tests/test_precision.py runs it for every model that declares it.

Here the FP16 side runs on the CPU as an emulation (`emulate_fp16`): every weight and every
intermediate tensor is rounded to FP16, as a GPU stores them, and a value past FP16's range becomes
infinite, while the arithmetic itself is FP32 (onnxruntime's CPU provider would otherwise quietly
compute an FP16 model in FP32 and drop the roundings). TensorRT may also accumulate some sums in FP16,
so on a GPU the same comparison against the real engine is the final word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from livefuse.engine.manifest import FP16_TOLERANCE, Preprocess

Shape = Sequence[int | str | None]


@dataclass(frozen=True)
class Fp16Check:
    """The result: the worst output, its relative error and the tolerance it had to meet."""

    label: str
    output: str
    error: float  # max |fp32 - fp16| / max |fp32| over the worst output
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error)) and self.error <= self.tolerance

    def describe(self) -> str:
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"{self.label}: FP16 {verdict} (worst output {self.output!r}: {self.error:.2%} of its range, "
            f"tolerance {self.tolerance:.2%})"
        )


def fixed_feeds(
    inputs: Mapping[str, tuple[Shape, np.dtype]], preprocess: Preprocess | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """A fixed input for every model input: seeded pixels 0..255, normalised as the manifest says.

    Named or unknown axes get size 1. Without a preprocess table, float inputs are uniform in 0..1; a
    uint8 input gets the pixels as they are.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in inputs.items():
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
        if np.dtype(dtype) == np.uint8:  # a model that takes the pixels themselves (tools/pixel_input.py)
            feeds[name] = rng.integers(0, 256, dims, dtype=np.uint8)
            continue
        if not np.issubdtype(dtype, np.floating):
            feeds[name] = np.zeros(dims, dtype)
            continue
        x = rng.uniform(0.0, 255.0, dims)
        if preprocess is None:
            x = x / 255.0
        else:
            axis = 1 if preprocess.layout.upper() == "NCHW" and len(dims) == 4 else -1
            if dims[axis] == 3:
                view = [1] * len(dims)
                view[axis] = 3
                x = (x - np.reshape(preprocess.mean, view)) / np.reshape(preprocess.std, view)
        feeds[name] = x.astype(dtype)
    return feeds


def compare(
    label: str, fp32: Mapping[str, np.ndarray], fp16: Mapping[str, np.ndarray], tolerance: float = FP16_TOLERANCE
) -> Fp16Check:
    """The worst relative difference over the outputs (a non-finite FP16 value fails outright)."""
    worst, worst_name = -1.0, ""
    for name, reference in fp32.items():
        ref = np.asarray(reference, np.float64)
        got = np.asarray(fp16[name], np.float64)
        if not np.all(np.isfinite(got)):
            return Fp16Check(label, name, float("inf"), tolerance)
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-3)
        error = float(np.max(np.abs(ref - got))) / scale if ref.size else 0.0
        if error > worst:
            worst, worst_name = error, name
    return Fp16Check(label, worst_name, max(worst, 0.0), tolerance)


def emulate_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 model with FP16 storage: float weights rounded to FP16, every float tensor a node makes too.

    Each rounding is Cast to FP16, Identity, Cast back: the Identity keeps onnxruntime from removing the
    pair of Casts as redundant. Subgraphs (If, Loop) are left as they are.
    """
    typed = shape_inference.infer_shapes(model)
    floats = {
        v.name
        for v in (*typed.graph.value_info, *typed.graph.output, *typed.graph.input)
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            rounded = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            graph.initializer[index].CopyFrom(numpy_helper.from_array(rounded, init.name))
    nodes = []
    for number, node in enumerate(graph.node):
        nodes.append(node)
        for slot, name in enumerate(node.output):
            if name not in floats:
                continue
            exact = f"{name}/fp32"
            node.output[slot] = exact
            nodes += [
                helper.make_node(
                    "Cast", [exact], [f"{name}/fp16"], name=f"fp16_{number}_{slot}_a", to=TensorProto.FLOAT16
                ),
                helper.make_node("Identity", [f"{name}/fp16"], [f"{name}/kept"], name=f"fp16_{number}_{slot}_b"),
                helper.make_node(
                    "Cast", [f"{name}/kept"], [name], name=f"fp16_{number}_{slot}_c", to=TensorProto.FLOAT
                ),
            ]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def check_fp16(
    model: Path | onnx.ModelProto,
    tolerance: float = FP16_TOLERANCE,
    preprocess: Preprocess | None = None,
    label: str = "",
) -> Fp16Check:
    """Run the check on the CPU (see the module note): FP32 against its FP16 emulation, one fixed input."""
    import onnxruntime as ort

    proto = onnx.load(str(model)) if isinstance(model, Path) else model
    half = emulate_fp16(proto)
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every rounding
    exact.log_severity_level = 3
    sessions = [
        ort.InferenceSession(m.SerializeToString(), exact, providers=["CPUExecutionProvider"]) for m in (proto, half)
    ]
    from livefuse.engine.session import ORT_DTYPES

    inputs = {i.name: (list(i.shape), ORT_DTYPES.get(i.type, np.dtype(np.float32))) for i in sessions[0].get_inputs()}
    feeds = fixed_feeds(inputs, preprocess)
    names = [o.name for o in sessions[0].get_outputs()]
    fp32, fp16 = ({n: v for n, v in zip(names, s.run(None, feeds), strict=True)} for s in sessions)
    return compare(label or (str(model) if isinstance(model, Path) else proto.graph.name), fp32, fp16, tolerance)
