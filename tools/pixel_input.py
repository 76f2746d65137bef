"""Give a model that takes RGB floats in [0, 1] the pixels themselves: a uint8 BGR input.

Why: FaceMesh runs once per face per frame, and its input used to be made on the host with three
numpy/OpenCV calls (BGR to RGB, to float, times 1/255) after the crop. On this project's CPU machine
each such call after the frame's pause costs 0.05-0.15 ms, where the whole face stage is about 4 ms.
Folding them into the model costs one Cast and nothing else:

- the input becomes uint8 [1, H, W, 3] BGR, followed by a Cast to float;
- the first convolution's weights take the channel swap (their input channels reversed) and the
  1/255 scale (a convolution is linear; its zero padding stays zero).

Outputs match the float model's to float rounding (tests/test_mediapipe_models.py holds the converted
models to the TFLite reference). tools/convert_mediapipe.py applies it to FaceMesh; by hand:

    python tools/pixel_input.py models/mediapipe/face_landmark.onnx   # in place
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CAST_OUTPUT = "input_float"


def pixels_as_input(model: onnx.ModelProto, scale: float = 1 / 255) -> None:
    """Rewrite the model's one NHWC float RGB input (`x * scale` of the pixels) as uint8 BGR pixels."""
    graph = model.graph
    (value,) = graph.input
    name = value.name
    if value.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise SystemExit(f"{graph.name}: input {name!r} is not float; already rewritten?")
    transpose, conv = graph.node[0], graph.node[1]
    perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
    if (
        transpose.op_type != "Transpose"
        or perm != [0, 3, 1, 2]
        or conv.op_type != "Conv"
        or conv.input[0] != transpose.output[0]
    ):
        raise SystemExit(f"{graph.name}: expected the input to go NHWC -> NCHW into a Conv")
    users = [n for n in graph.node if name in n.input]
    if users != [transpose]:
        raise SystemExit(f"{graph.name}: {name!r} feeds more than the first Transpose")
    weights = next(i for i in graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(weights)
    if w.shape[1] != 3:
        raise SystemExit(f"{graph.name}: the first Conv takes {w.shape[1]} channels, not 3")
    weights.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w[:, ::-1] * np.float32(scale)), weights.name))
    value.type.tensor_type.elem_type = TensorProto.UINT8
    transpose.input[0] = CAST_OUTPUT
    graph.node.insert(0, helper.make_node("Cast", [name], [CAST_OUTPUT], name="pixels_to_float", to=TensorProto.FLOAT))


def main() -> None:
    for path in map(Path, sys.argv[1:]):
        model = onnx.load(path)
        pixels_as_input(model)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)
        print(f"{path}: input is now uint8 BGR pixels")


if __name__ == "__main__":
    main()
