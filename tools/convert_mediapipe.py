"""Build livefuse's built-in ONNX models from the MediaPipe 0.10.14 wheel on PyPI.

Reproducible: the only input is the `mediapipe==0.10.14` wheel (Apache-2.0), fetched with
`pip download --no-deps`. The source .tflite files are copied to models/mediapipe/tflite/ so the
tests can compare the ONNX graphs with the reference TFLite interpreter without network.

Needs tf2onnx and tensorflow-cpu, which are tools-only; keep them out of the product's venv:

    python3.11 -m venv .cache/tools-venv
    .cache/tools-venv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.17.0
    .cache/tools-venv/bin/python tools/convert_mediapipe.py [--wheel PATH] [--manifest]

tf2onnx handles the face and hand models (palm detection and hand landmarks, the "lite" ones) directly.
The selfie segmentation models end in MediaPipe's custom op
Convolution2DTransposeBias, which tf2onnx does not know; a handler registered here rewrites it as an
ONNX ConvTranspose with bias, taking padding and strides from the op's raw custom options
(a TfLiteTransposeConvParams struct: int32 padding, stride_w, stride_h). HardSwish needs opset >= 14.

face_detection_full_range_sparse.tflite keeps its weights sparse behind DENSIFY ops, which tf2onnx
does not convert (and TF's interpreter segfaults listing sparse tensors). It is densified first: the
TFLite interpreter computes each DENSIFY output, which becomes a constant buffer, and the ops go.

PRelu (FaceMesh has 23) is rewritten as depthwise convolutions that onnxruntime's CPU provider keeps
in its blocked layout: FaceMesh runs 2.7x faster on the CPU, with the same outputs (prelu_rewrite.py).
FaceMesh then takes the crop's uint8 BGR pixels, with the channel swap and the 1/255 scale folded into
its first convolution (pixel_input.py), so the face stage makes no input tensor of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    import onnx

MEDIAPIPE_VERSION = "0.10.14"
OPSET = 17
TOOL = "tools/convert_mediapipe.py"
ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "models" / "mediapipe"
TFLITE_DIR = OUT_DIR / "tflite"


@dataclass(frozen=True)
class Spec:
    """One model to convert: where it is in the wheel and the readable names its tensors get."""

    name: str
    wheel_path: str
    sha256: str  # of the .tflite in the wheel (the same in every platform's wheel)
    inputs: dict[str, str]  # tflite tensor name -> onnx name
    outputs: dict[str, str]
    sparse: bool = False  # weights stored sparse behind DENSIFY ops: densify before converting
    pixel_input: bool = False  # take uint8 BGR pixels instead of RGB floats in [0, 1] (pixel_input.py)


SPECS = [
    Spec(
        "face_detection_short",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        {"input": "input"},
        {"regressors": "regressors", "classificators": "logits"},
    ),
    Spec(
        "face_detection_full",
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        {"input_1": "input"},
        {"Identity": "regressors", "Identity_1": "logits"},
        sparse=True,
    ),
    Spec(
        "face_landmark",
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        {"input_1": "input"},
        {"conv2d_21": "landmarks", "conv2d_31": "face_flag"},
        pixel_input=True,
    ),
    Spec(
        "selfie_segmentation",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        {"input_1": "input"},
        {"activation_10": "mask"},
    ),
    Spec(
        "selfie_segmentation_landscape",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        {"input_1": "input"},
        {"segment_back": "mask"},
    ),
    Spec(
        "palm_detection",
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
        {"input_1": "input"},
        {"Identity": "regressors", "Identity_1": "logits"},
    ),
    Spec(
        "hand_landmark",
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
        {"input_1": "input"},
        {
            "Identity": "landmarks",
            "Identity_1": "hand_flag",
            "Identity_2": "handedness",
            "Identity_3": "world_landmarks",
        },
    ),
]

# Filled per model before conversion: output tensor name -> (padding, stride_w, stride_h).
_TRANSPOSE_PARAMS: dict[str, tuple[int, int, int]] = {}


def fetch_wheel(dest: Path) -> Path:
    """Download the mediapipe wheel for this interpreter (the .tflite files are platform-independent)."""
    found = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-d",
        str(dest),
        f"mediapipe=={MEDIAPIPE_VERSION}",
    ]
    subprocess.run(cmd, check=True, stdout=sys.stderr)  # stdout is for --manifest
    found = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not found:
        sys.exit(f"pip download did not leave a mediapipe {MEDIAPIPE_VERSION} wheel in {dest}")
    return found[0]


def extract(wheel: Path) -> None:
    """Copy the .tflite files and the wheel's licence into models/mediapipe/tflite/."""
    TFLITE_DIR.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for spec in SPECS:
            blob, name = zf.read(spec.wheel_path), Path(spec.wheel_path).name
            if hashlib.sha256(blob).hexdigest() != spec.sha256:
                sys.exit(f"{wheel.name}: {spec.wheel_path} is not the file this tool was written for")
            (TFLITE_DIR / name).write_bytes(blob)
        lic = zf.read(f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE")
    (TFLITE_DIR / "LICENSE").write_bytes(lic)


def read_transpose_params(tflite_path: Path) -> dict[str, tuple[int, int, int]]:
    """Find every Convolution2DTransposeBias op and decode its raw (non-flexbuffer) custom options."""
    from tf2onnx.tflite.Model import Model

    model = Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    params = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if codes[op.OpcodeIndex()] != b"Convolution2DTransposeBias":
                continue
            padding, stride_w, stride_h = struct.unpack("<3i", op.CustomOptionsAsNumpy().tobytes()[:12])
            params[graph.Tensors(op.Outputs(0)).Name().decode()] = (padding, stride_w, stride_h)
    return params


def densify(src: Path, dst: Path) -> None:
    """Write a copy of a sparse .tflite with every DENSIFY op replaced by its (constant) dense output."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    codes = {
        i
        for i, oc in enumerate(model.operatorCodes)
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.DENSIFY
    }
    interp = tf.lite.Interpreter(str(src), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    interp.invoke()  # DENSIFY outputs only depend on constants
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex not in codes:
                continue
            buf = schema.BufferT()
            buf.data = np.frombuffer(interp.get_tensor(op.outputs[0]).tobytes(), np.uint8)
            model.buffers.append(buf)
            for t in (op.inputs[0], op.outputs[0]):
                graph.tensors[t].buffer = len(model.buffers) - 1
                graph.tensors[t].sparsity = None
        graph.operators = [op for op in graph.operators if op.opcodeIndex not in codes]
    flatbuffer_utils.write_model(model, str(dst))


def _register_handlers() -> None:
    from tf2onnx.handler import tf_op

    @tf_op("TFL_Convolution2DTransposeBias")
    class ConvTransposeBias:
        """NHWC transpose conv (kernel O,H,W,I) + bias -> NCHW ONNX ConvTranspose between transposes."""

        @classmethod
        def version_11(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
            padding, stride_w, stride_h = _TRANSPOSE_PARAMS[node.output[0]]
            x_shape = ctx.get_shape(node.input[0])
            w_shape = ctx.get_shape(node.input[1])
            out_shape = ctx.get_shape(node.output[0])
            kh, kw = w_shape[1], w_shape[2]
            pads = [0, 0, 0, 0]
            if padding == 1:  # SAME: output = input * stride; trim the overlap, extra at the end as TF does
                th = max(0, (x_shape[1] - 1) * stride_h + kh - out_shape[1])
                tw = max(0, (x_shape[2] - 1) * stride_w + kw - out_shape[2])
                pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
            elif padding != 2:
                raise ValueError(f"unknown padding {padding} in {node.name}")
            node.type = "ConvTranspose"
            node.set_attr("strides", [stride_h, stride_w])
            node.set_attr("kernel_shape", [kh, kw])
            node.set_attr("pads", pads)
            ctx.insert_new_node_on_input(node, "Transpose", node.input[0], perm=[0, 3, 1, 2])
            ctx.insert_new_node_on_input(node, "Transpose", node.input[1], input_index=1, perm=[3, 0, 1, 2])
            nchw = [out_shape[0], out_shape[3], out_shape[1], out_shape[2]]
            dtype = ctx.get_dtype(node.output[0])
            back = ctx.insert_new_node_on_output("Transpose", node.output[0], perm=[0, 2, 3, 1])
            ctx.set_shape(node.output[0], nchw)
            ctx.set_shape(back.output[0], out_shape)
            ctx.set_dtype(back.output[0], dtype)


def canonical_names(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Rename nodes, initializers and intermediate values by position.

    tf2onnx numbers the names it makes up in an order that changes from run to run; the graph is
    otherwise identical, so positional names make the output byte-for-byte reproducible.
    """
    names: dict[str, str] = {k: k for k in keep}
    inits = {i.name: i for i in graph.initializer}
    order = []
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
        for x in node.input:
            if x in inits and x not in names:
                names[x] = f"w{len(order)}"
                order.append(inits[x])
        for k, y in enumerate(node.output):
            names.setdefault(y, f"{node.op_type}_{i}:{k}" if k else f"{node.op_type}_{i}")
    for node in graph.node:
        node.input[:] = [names.get(x, x) if x else x for x in node.input]
        node.output[:] = [names[y] for y in node.output]
    for init in order:
        init.name = names[init.name]
    del graph.initializer[:]
    graph.initializer.extend(order)
    del graph.value_info[:]


def convert(spec: Spec) -> Path:
    """Convert one model, give its inputs and outputs readable names, check it loads."""
    import onnx
    import tf2onnx
    from pixel_input import pixels_as_input  # tools/, beside this script
    from prelu_rewrite import prelu_as_depthwise

    src = TFLITE_DIR / Path(spec.wheel_path).name
    _TRANSPOSE_PARAMS.clear()
    _TRANSPOSE_PARAMS.update(read_transpose_params(src))
    with tempfile.TemporaryDirectory() as tmp:
        if spec.sparse:
            densify(src, Path(tmp) / src.name)
            src = Path(tmp) / src.name
        model, _ = tf2onnx.convert.from_tflite(str(src), opset=OPSET)
    renames = {**spec.inputs, **spec.outputs}
    got = [v.name for v in model.graph.input] + [v.name for v in model.graph.output]
    if sorted(got) != sorted(renames):
        raise SystemExit(f"{spec.name}: unexpected graph inputs/outputs {got}")
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = renames[value.name]
    prelu_as_depthwise(model)  # FaceMesh's PRelu, kept in onnxruntime's NCHWc layout (prelu_rewrite.py)
    canonical_names(model.graph, set(renames.values()))
    if spec.pixel_input:
        pixels_as_input(model)  # after the renaming: its Cast keeps its own name
    model.graph.name = spec.name
    model.doc_string = f"mediapipe=={MEDIAPIPE_VERSION} {spec.wheel_path}, converted by {TOOL}"
    del model.metadata_props[:]  # tf2onnx writes its own version and paths there; keep output stable
    onnx.checker.check_model(model, full_check=True)
    dst = OUT_DIR / f"{spec.name}.onnx"
    onnx.save(model, dst)
    return dst


def manifest_entry(spec: Spec, path: Path) -> str:
    """The models/manifest.toml block for one converted model."""
    import onnx

    model = onnx.load(path)

    def io(values: Iterable[onnx.ValueInfoProto]) -> str:
        parts = []
        for v in values:
            shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
            parts.append(f'{{ name = "{v.name}", shape = {shape}, dtype = "{dtype}" }}')
        return "[ " + ", ".join(parts) + " ]"

    data = path.read_bytes()
    # Face detection takes [-1, 1] (x / 127.5 - 1); selfie segmentation and the hand models take [0, 1];
    # FaceMesh the pixels.
    centred = spec.name.startswith("face_detection")
    mean, std = ("127.5", "127.5") if centred else ("0.0", "1.0") if spec.pixel_input else ("0.0", "255.0")
    return "\n".join(
        [
            "[[model]]",
            f'name = "{spec.name}"',
            f'version = "{MEDIAPIPE_VERSION}"',
            f'file = "mediapipe/{path.name}"',
            f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
            f"size = {len(data)}",
            'license = "Apache-2.0"',
            'url = ""',
            f'origin = "mediapipe=={MEDIAPIPE_VERSION} wheel, {spec.wheel_path}, converted by {TOOL}"',
            f"inputs = {io(model.graph.input)}",
            f"outputs = {io(model.graph.output)}",
            "[model.preprocess]",
            f'color = "{"BGR" if spec.pixel_input else "RGB"}"',
            'layout = "NHWC"',
            f"mean = [{mean}, {mean}, {mean}]",
            f"std = [{std}, {std}, {std}]",
            "",
        ]
    )


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # tf2onnx's optimiser walks sets of strings, so the graph it leaves depends on the hash seed
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="use this mediapipe wheel instead of downloading it")
    ap.add_argument("--manifest", action="store_true", help="print the manifest.toml entries")
    ap.add_argument(
        "--only",
        action="append",
        choices=[spec.name for spec in SPECS],
        help="convert only this model (repeatable; default: all)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(
            ROOT / ".cache" / "mediapipe-wheel" if (ROOT / ".cache").is_dir() else Path(tmp)
        )
        extract(wheel)
    _register_handlers()
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            continue
        dst = convert(spec)
        print(f"wrote {dst.relative_to(ROOT)} ({dst.stat().st_size} bytes)", file=sys.stderr)
        if args.manifest:
            print(manifest_entry(spec, dst))
    if args.only and "face_detection_full" not in args.only:
        return
    from wide_detector import main as widen_full_range  # tools/, beside this script

    widen_full_range()  # face_detection_full_wide.onnx, from the full-range model just written


if __name__ == "__main__":
    main()
