"""PyTorch -> ONNX export with a numerical check (torch is an optional extra, imported here only).

The export names inputs/outputs, makes the batch axis dynamic, folds constants, simplifies with
onnxslim, stamps metadata (source, tool, date) and then compares onnxruntime's output with torch's
on random inputs; a difference above `atol` is an error, so a bad export is never written.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from livefuse.errors import ModelError, UserError


@dataclass
class ExportReport:
    path: Path
    opset: int
    sha256: str
    size: int
    max_abs_diff: float


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' -> (1, 3, 224, 224)."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError as exc:
        raise UserError(f"--input-shape {text!r}: give integers separated by commas, like 1,3,224,224") from exc
    if not shape or any(d <= 0 for d in shape):
        raise UserError(f"--input-shape {text!r}: every dimension must be a positive integer")
    return shape


def load_factory(spec: str) -> Any:
    """'package.module:make_model' -> the callable (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"{spec!r}: give MODULE:FACTORY, e.g. mypkg.nets:build_model")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {module_name!r} for {spec!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"{spec!r}: {module_name} has no callable {attr!r}")
    return factory


def _state_dict(weights: Any) -> dict[str, Any]:
    """Unwrap the usual checkpoint layouts ({'state_dict': ...}, {'params_ema': ...}, 'module.' prefixes)."""
    if isinstance(weights, dict):
        for key in ("params_ema", "state_dict", "model_state_dict", "params", "model"):
            if isinstance(weights.get(key), dict):
                weights = weights[key]
                break
    if not isinstance(weights, dict):
        raise UserError("the weights file does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in weights.items()}


def export(
    factory: str | Any,
    weights: Path | None,
    output: Path,
    input_shapes: list[tuple[int, ...]],
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    opset: int | None = None,
    source: str = "",
    atol: float = 1e-4,
    seed: int = 0,
) -> ExportReport:
    """Export, simplify, stamp and check a model; `factory` is MODULE:FACTORY or a callable."""
    try:
        import torch
    except ImportError as exc:
        raise UserError("`models export` needs PyTorch: pip install torch (CPU build is enough)") from exc
    import onnxruntime as ort
    import onnxslim

    from livefuse.engine.optimize import stamp

    build = load_factory(factory) if isinstance(factory, str) else factory
    model = build()
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"{factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        if not Path(weights).is_file():
            raise UserError(f"--weights {weights}: no such file")
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(_state_dict(state), strict=False)
        if missing or unexpected:
            raise UserError(
                f"--weights {weights} does not fit {factory}: missing {list(missing)[:5]}, "
                f"unexpected {list(unexpected)[:5]}"
            )
    model.eval()
    names_in = input_names or [f"input{i}" if len(input_shapes) > 1 else "input" for i in range(len(input_shapes))]
    if len(names_in) != len(input_shapes):
        raise UserError(f"{len(names_in)} input names for {len(input_shapes)} --input-shape values")
    gen = torch.Generator().manual_seed(seed)
    args = tuple(torch.rand(*s, generator=gen) for s in input_shapes)
    with torch.no_grad():
        expected = model(*args)
    expected_list = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    names_out = output_names or (
        ["output"] if len(expected_list) == 1 else [f"output{i}" for i in range(len(expected_list))]
    )
    dynamic = {n: {0: "batch"} for n in [*names_in, *names_out]}
    from torch.onnx import _constants

    opset = opset or _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        # The TorchScript exporter needs no extra packages (the torch.export one needs onnxscript).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                args,
                str(raw),
                input_names=names_in,
                output_names=names_out,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnxslim.slim(onnx.load(str(raw)))
    stamp(
        proto,
        source or str(factory),
        "export",
        f"torch {torch.__version__} torch.onnx.export (opset {opset}) + onnxslim {onnxslim.__version__}",
        {"livefuse.weights": str(weights) if weights else ""},
    )
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    got = session.run(names_out, {n: a.numpy() for n, a in zip(names_in, args, strict=True)})
    diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected_list, strict=True))
    if not diff <= atol:
        raise ModelError(
            f"export of {factory} differs from torch by {diff:.3g} (> --atol {atol}); the model "
            f"was not written. Check for ops that export differently (e.g. in-place, data-"
            f"dependent control flow)"
        )
    tmp_out = output.with_name(f"{output.name}.{os.getpid()}.tmp")
    tmp_out.write_bytes(data)
    os.replace(tmp_out, output)
    return ExportReport(output, opset, hashlib.sha256(data).hexdigest(), len(data), diff)
