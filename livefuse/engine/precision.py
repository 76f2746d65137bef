"""The FP16 accuracy check: may TensorRT build this model in FP16 (`trt_fp16 = true` in the manifest)?

FP16 roughly doubles TensorRT's speed but can move a model's outputs: a detector's scores past its
threshold, a mask's edge. So FP16 is a declared, per-model choice, and the declaration is checked: the
model's FP32 outputs on a fixed input are compared with those of its FP16 conversion, and the largest
difference must stay within `tolerance` of each output's largest magnitude (manifest
`trt_fp16_tolerance`, default 1 %). tests/test_precision.py runs it for every model that declares it.

Here the FP16 side runs on the CPU: the converted model with graph optimisation off, so weights and
every intermediate tensor are rounded to FP16 as on the GPU, while sums accumulate in FP32 (TensorRT
may accumulate some in FP16, so on a GPU the same check with the real engine is the final word).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

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
        return (f"{self.label}: FP16 {verdict} (worst output {self.output!r}: {self.error:.2%} of its range, "
                f"tolerance {self.tolerance:.2%})")


def fixed_feeds(inputs: Mapping[str, tuple[Shape, np.dtype]], preprocess: Preprocess | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed input for every model input: seeded pixels 0..255, normalised as the manifest says.

    Named or unknown axes get size 1. Without a preprocess table, float inputs are uniform in 0..1.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in inputs.items():
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
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


def compare(label: str, fp32: Mapping[str, np.ndarray], fp16: Mapping[str, np.ndarray],
            tolerance: float = FP16_TOLERANCE) -> Fp16Check:
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


def check_fp16(model: Path | onnx.ModelProto, tolerance: float = FP16_TOLERANCE,
               preprocess: Preprocess | None = None, label: str = "") -> Fp16Check:
    """Run the check on the CPU (see the module note): FP32 against the FP16 conversion, one fixed input."""
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(model)) if isinstance(model, Path) else model
    half = convert_float_to_float16(proto, keep_io_types=True)
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every FP16 rounding
    exact.log_severity_level = 3
    sessions = [ort.InferenceSession(m.SerializeToString(), exact, providers=["CPUExecutionProvider"])
                for m in (proto, half)]
    from livefuse.engine.session import ORT_DTYPES

    inputs = {i.name: (list(i.shape), ORT_DTYPES.get(i.type, np.dtype(np.float32))) for i in sessions[0].get_inputs()}
    feeds = fixed_feeds(inputs, preprocess)
    names = [o.name for o in sessions[0].get_outputs()]
    fp32, fp16 = ({n: v for n, v in zip(names, s.run(None, feeds), strict=True)} for s in sessions)
    return compare(label or (str(model) if isinstance(model, Path) else proto.graph.name), fp32, fp16, tolerance)
