"""Model variants: onnxslim simplification, FP16 conversion and INT8 static quantisation.

Every output carries metadata_props (source model and hash, variant, tool and version, date) that
`livefuse models info` shows, so a variant can always be traced back to what it was made from.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx

from livefuse.engine.manifest import ModelEntry, Preprocess
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError, UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def stamp(model: onnx.ModelProto, source: str, variant: str, tool: str, extra: dict[str, str] | None = None) -> None:
    """Record where a derived model came from in its metadata_props (replacing older livefuse keys)."""
    values = {
        "livefuse.source": source,
        "livefuse.variant": variant,
        "livefuse.tool": tool,
        "livefuse.date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)


def metadata(path: Path) -> dict[str, str]:
    """A model file's metadata_props, read without loading its weights."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _save(model: onnx.ModelProto, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, dest)
    return dest


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and dead-node removal with onnxslim."""
    import onnxslim

    slim: onnx.ModelProto = onnxslim.slim(model)
    return slim


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, FP32 inputs/outputs (so callers feed the same arrays)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True)
    return half


def calibration_images(directory: Path) -> list[Path]:
    """The images of a calibration directory (a UserError when there are none)."""
    if not directory.is_dir():
        raise UserError(
            f"--calibration {directory}: not a directory; give a folder of sample frames "
            f"(jpg/png) like the ones the model will see"
        )
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(
            f"--calibration {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found; add a few "
            f"dozen representative frames"
        )
    return files


def image_tensor(image: np.ndarray, shape: tuple[int, ...], pre: Preprocess, dtype: str = "float32") -> np.ndarray:
    """A BGR image as a model input of `shape` (batch 1) and `dtype` following the manifest's preprocess table
    (a uint8 input takes the pixels: BGR, mean 0, std 1)."""
    if pre.layout.upper() == "NCHW":
        h, w = shape[2], shape[3]
    else:
        h, w = shape[1], shape[2]
    x: np.ndarray = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if pre.color.upper() == "RGB":
        x = x[..., ::-1]
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    if pre.layout.upper() == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], np.dtype(dtype))


class _ImageReader:
    """onnxruntime CalibrationDataReader over a folder of images (duck-typed: get_next/rewind)."""

    def __init__(self, files: list[Path], input_name: str, shape: tuple[int, ...], pre: Preprocess, dtype: str) -> None:
        self.files, self.input_name, self.shape, self.pre, self.dtype = files, input_name, shape, pre, dtype
        self._it: Iterator[Path] = iter(files)

    def get_next(self) -> dict[str, np.ndarray] | None:
        for path in self._it:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return {self.input_name: image_tensor(image, self.shape, self.pre, self.dtype)}
        return None

    def rewind(self) -> None:
        self._it = iter(self.files)


def to_int8(model_path: Path, dest: Path, calibration: Path, entry: ModelEntry) -> bool:
    """INT8 static quantisation (QDQ) calibrated on a folder of images; True if weights are per-channel."""
    import onnx.version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(entry.inputs) != 1:
        raise UserError(
            f"{entry.ref} has {len(entry.inputs)} inputs; INT8 calibration from images needs a single image input"
        )
    spec = entry.inputs[0]
    if not all(isinstance(d, int) for d in spec.shape):
        raise ModelError(
            f"{entry.ref}: input {spec.name} shape {list(spec.shape)} must be fixed in the manifest for calibration"
        )
    reader = _ImageReader(
        calibration_images(calibration),
        spec.name,
        tuple(int(d) for d in spec.shape),
        entry.preprocess or Preprocess(),
        spec.dtype,
    )
    model = onnx.load(str(model_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    # Per-channel weights need DequantizeLinear's axis (opset 13); older graphs that onnx cannot convert
    # are quantised per tensor (the quantiser lifts them to opset 11 itself).
    per_channel = opset >= 13
    with tempfile.TemporaryDirectory() as tmp:
        prepared = model_path
        if not per_channel:
            converted = Path(tmp) / "prepared.onnx"
            try:
                onnx.save(onnx.version_converter.convert_version(model, 13), str(converted))
                prepared, per_channel = converted, True
            except Exception:  # noqa: BLE001 (onnx's version converter raises assorted errors)
                pass
        quantize_static(
            str(prepared),
            str(dest),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return per_channel


def optimize(
    registry: Registry,
    spec: str,
    fp16: bool = False,
    int8: bool = False,
    calibration: Path | None = None,
    simplify_model: bool = False,
) -> list[Path]:
    """Write the requested variants of a (verified) model next to it; return their paths."""
    import onnxruntime
    import onnxslim

    if not (fp16 or int8 or simplify_model):
        raise UserError("choose at least one of --simplify, --fp16, --int8")
    if int8 and calibration is None:
        raise UserError("--int8 needs --calibration DIR (a folder of representative frames)")
    entry = registry.entry(spec)
    src = registry.check(entry)
    source = f"{entry.ref} sha256:{registry.expected_sha(entry)}"
    written: list[Path] = []
    base = onnx.load(str(src))
    if simplify_model:
        slim = simplify(base)
        stamp(slim, source, "slim", f"onnxslim {onnxslim.__version__}")
        written.append(_save(slim, registry.variant_path(entry, "slim")))
        base = slim
    if fp16:
        half = to_fp16(base)
        tool = f"onnxruntime.transformers.float16 {onnxruntime.__version__} (keep_io_types)"
        stamp(half, source, "fp16", tool + (" after onnxslim" if simplify_model else ""))
        written.append(_save(half, registry.variant_path(entry, "fp16")))
    if int8:
        assert calibration is not None
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            onnx.save(base, str(fp32))
            out = Path(tmp) / "int8.onnx"
            per_channel = to_int8(fp32, out, calibration, entry)
            q = onnx.load(str(out))
        n = len(calibration_images(calibration))
        how = "per-channel" if per_channel else "per-tensor"
        stamp(
            q,
            source,
            "int8",
            f"onnxruntime.quantization.quantize_static {onnxruntime.__version__} (QDQ, {how}, MinMax)",
            {"livefuse.calibration": f"{n} images"},
        )
        written.append(_save(q, registry.variant_path(entry, "int8")))
    return written
