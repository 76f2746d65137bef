"""Derive face_detection_full_wide.onnx: BlazeFace full range with a 192x128 input instead of 192x192.

Why: the face stage's whole-frame pass looks at a 16:9 frame (with mirrored side edges) letterboxed
into the model's square input, so a third of each run is spent on the empty rows above and below the
picture. The model is fully convolutional (its upsampling Resizes take scales, its output Reshapes
take -1), so the same weights run on a 192x128 input, giving a 48x32 anchor grid in place of 48x48:
a third less work for the pass that runs on every frame before anonymise. Faces are seen at the same
scale whenever the padded frame is at least 1.5:1; the face stage uses the square model otherwise.

    python tools/wide_detector.py          # writes models/mediapipe/face_detection_full_wide.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "models" / "mediapipe" / "face_detection_full.onnx"
TARGET = ROOT / "models" / "mediapipe" / "face_detection_full_wide.onnx"
WIDTH, HEIGHT, STRIDE = 192, 128, 4  # a multiple of 32: the three 2x upsamplings meet their skips


def widen(model: onnx.ModelProto, height: int = HEIGHT) -> onnx.ModelProto:
    """The model with its NHWC input `height` rows tall and its outputs' anchor counts to match."""
    graph = model.graph
    (value,) = graph.input
    dims = value.type.tensor_type.shape.dim
    if [d.dim_value for d in dims] != [1, WIDTH, WIDTH, 3]:
        raise SystemExit(f"{SOURCE.name}: expected a [1, {WIDTH}, {WIDTH}, 3] input, got {dims}")
    dims[1].dim_value = height
    anchors = (height // STRIDE) * (WIDTH // STRIDE)
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_value = anchors
    del graph.value_info[:]
    graph.name = TARGET.stem
    model.doc_string += f"; input made {WIDTH}x{height} by tools/wide_detector.py"
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    onnx.save(widen(onnx.load(str(SOURCE))), str(TARGET))
    print(f"wrote {TARGET.relative_to(ROOT)} ({TARGET.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
