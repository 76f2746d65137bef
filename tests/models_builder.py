"""Small ONNX stand-ins for the face models, with exactly the real models' tensor names, shapes and dtypes.

The real inswapper/ArcFace/GFPGAN/GPEN/CodeFormer weights cannot be downloaded in CI; these graphs let the
stages run end to end through onnxruntime. Identity models make the geometry measurable (what comes back
must be what went in); the tinting swapper makes the output depend on the source identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="livefuse-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tensor(name: str, dtype: int, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def arcface(seed: int = 0) -> onnx.ModelProto:
    """w600k_r50 stand-in: 'input.1' [1,3,112,112] -> '683' [1,512]: two strided convs, 4x4 pooling, projection.

    Random but fixed weights: different faces give different embeddings, the same face the same one.
    """
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.1, (32, 16, 3, 3)).astype(np.float32), "w2")
    proj = numpy_helper.from_array(rng.normal(0, 0.05, (512, 512)).astype(np.float32), "proj")
    shape = numpy_helper.from_array(np.array([1, 512], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["input.1", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p"], kernel_shape=[7, 7], strides=[7, 7]),  # 28 -> 4x4 x 32
        helper.make_node("Reshape", ["p", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "proj"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_standin",
        [_tensor("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [_tensor("683", TensorProto.FLOAT, [1, 512])],
        [w1, w2, proj, shape],
    )
    return _model(graph)


def inswapper(kind: str = "identity", fp16: bool = False, seed: int = 1) -> onnx.ModelProto:
    """inswapper_128 stand-in: 'target' [1,3,128,128] + 'source' [1,512] -> 'output' [1,3,128,128], emap last.

    identity: output = target (the source is read but has no effect).
    tint: output = 0.5 * target + 0.5 * sigmoid(source @ W) * ramp: a per-channel left-to-right ramp whose
    colours are set by the identity (structure, so colour matching does not undo it).
    fp16: weights (and the emap) stored as float16 with float32 inputs/outputs, like inswapper_128_fp16.
    """
    rng = np.random.default_rng(seed)
    wdt = np.float16 if fp16 else np.float32
    tdt = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    emap = numpy_helper.from_array(rng.normal(0, 0.05, (512, 512)).astype(wdt), "emap")
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    if kind == "identity":
        inits.append(numpy_helper.from_array(np.zeros((512, 1), np.float32), "zero_w"))
        nodes += [
            helper.make_node("MatMul", ["source", "zero_w"], ["s0"]),  # reads the source, contributes 0
            helper.make_node("Unsqueeze", ["s0", "axes"], ["s1"]),
            helper.make_node("Add", ["target", "s1"], ["output"]),
        ]
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    elif kind == "tint":
        inits.append(numpy_helper.from_array((rng.normal(0, 1.0, (512, 3)) * 4).astype(wdt), "tint_w"))
        inits.append(numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "tint_shape"))
        inits.append(numpy_helper.from_array(np.array(0.5, wdt), "half"))
        ramp = np.tile(np.linspace(0.0, 1.0, 128, dtype=np.float32), (128, 1))[None, None]
        inits.append(numpy_helper.from_array(ramp.astype(wdt), "ramp"))
        nodes += [
            helper.make_node("Cast", ["source"], ["src_w"], to=tdt),
            helper.make_node("MatMul", ["src_w", "tint_w"], ["t0"]),
            helper.make_node("Sigmoid", ["t0"], ["t1"]),
            helper.make_node("Reshape", ["t1", "tint_shape"], ["t1r"]),
            helper.make_node("Mul", ["t1r", "ramp"], ["t2"]),
            helper.make_node("Cast", ["target"], ["tgt_w"], to=tdt),
            helper.make_node("Add", ["tgt_w", "t2"], ["t3"]),
            helper.make_node("Mul", ["t3", "half"], ["t4"]),
            helper.make_node("Cast", ["t4"], ["output"], to=TensorProto.FLOAT),
        ]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes,
        f"inswapper_{kind}",
        [_tensor("target", TensorProto.FLOAT, [1, 3, 128, 128]), _tensor("source", TensorProto.FLOAT, [1, 512])],
        [_tensor("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        [*inits, emap],
    )  # emap last, as in the real file
    return _model(graph)


def emap_of(model: onnx.ModelProto) -> np.ndarray:
    return numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)


ENHANCERS = {"gfpgan_1.4": 512, "gpen_bfr_256": 256, "gpen_bfr_512": 512, "codeformer": 512}


def enhancer(name: str = "gfpgan_1.4", kind: str = "identity", convs: int = 4) -> onnx.ModelProto:
    """GFPGAN/GPEN/CodeFormer stand-in: 'input' [1,3,N,N] in [-1,1] -> 'output' (CodeFormer also takes
    'weight' [1] double).

    identity: output = input. flat: output = 0 everywhere (mid grey), an obviously visible change.
    sharpen: an unsharp mask, detail that depends on the face. slow: output = input after `convs` 32-channel
    3x3 convolutions at full size (a cost to match a real restorer's).
    """
    size = ENHANCERS[name]
    inputs = [_tensor("input", TensorProto.FLOAT, [1, 3, size, size])]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    image = "input"
    if name == "codeformer":
        inputs.append(_tensor("weight", TensorProto.DOUBLE, [1]))
        inits.append(numpy_helper.from_array(np.zeros(1, np.float32), "zero"))
        nodes += [
            helper.make_node("Cast", ["weight"], ["wf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["wf", "zero"], ["w0"]),
            helper.make_node("Add", ["input", "w0"], ["with_w"]),
        ]
        image = "with_w"
    if kind == "identity":
        nodes.append(helper.make_node("Identity", [image], ["output"]))
    elif kind == "flat":
        inits.append(numpy_helper.from_array(np.zeros(1, np.float32), "nil"))
        nodes.append(helper.make_node("Mul", [image, "nil"], ["output"]))
    elif kind == "sharpen":  # output = input + 0.8 * (input - its 3x3 mean): detail that follows the face
        kernel = np.full((3, 1, 3, 3), -0.8 / 9, np.float32)
        kernel[:, 0, 1, 1] += 1.8
        inits.append(numpy_helper.from_array(kernel, "sharp_w"))
        nodes.append(helper.make_node("Conv", [image, "sharp_w"], ["output"], group=3, pads=[1, 1, 1, 1]))
    elif kind == "slow":  # output = input, after `convs` wide 3x3 convolutions whose result is multiplied by 0
        rng = np.random.default_rng(3)
        inits += [
            numpy_helper.from_array(rng.normal(0, 0.1, (32, 3, 3, 3)).astype(np.float32), "slow_in"),
            numpy_helper.from_array(rng.normal(0, 0.05, (32, 32, 3, 3)).astype(np.float32), "slow_w"),
            numpy_helper.from_array(rng.normal(0, 0.1, (3, 32, 3, 3)).astype(np.float32), "slow_out"),
            numpy_helper.from_array(np.zeros(1, np.float32), "nil"),
        ]
        nodes.append(helper.make_node("Conv", [image, "slow_in"], ["h0"], pads=[1, 1, 1, 1]))
        for i in range(convs):
            nodes.append(helper.make_node("Conv", [f"h{i}", "slow_w"], [f"h{i + 1}"], pads=[1, 1, 1, 1]))
        nodes += [
            helper.make_node("Conv", [f"h{convs}", "slow_out"], ["hz"], pads=[1, 1, 1, 1]),
            helper.make_node("Mul", ["hz", "nil"], ["h0z"]),
            helper.make_node("Add", [image, "h0z"], ["output"]),
        ]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes, f"{name}_{kind}", inputs, [_tensor("output", TensorProto.FLOAT, [1, 3, size, size])], inits
    )
    return _model(graph)


def face_standins(folder: Path) -> dict[str, Path]:
    """The pulled face models' stand-ins (real names, shapes and dtypes) and a source photo, in `folder`:
    what the swap presets need to run without the real files (the device tests and benchmarks/gpu/check.py)."""
    import cv2

    from livefuse.sources.demo import astronaut_bgr

    source = folder / "source.png"
    cv2.imwrite(str(source), astronaut_bgr())
    return {
        "inswapper_128": save(inswapper("tint"), folder / "inswapper_128.onnx"),
        "w600k_r50": save(arcface(), folder / "w600k_r50.onnx"),
        "gfpgan_1.4": save(enhancer("gfpgan_1.4", "flat"), folder / "gfpgan_1.4.onnx"),
        "bisenet_resnet_34": save(face_parser(), folder / "bisenet_resnet_34.onnx"),
        "source": source,
    }


# Where the stand-in parser puts its classes, on a 64-cell grid over the aligned crop (ArcFace template): the
# template's eyes, nose tip and mouth corners are at (23.1, 25.8), (40.8, 25.8), (32, 35.9), (24.8, 46.2) and
# (39.4, 46.1) in cells.
PARSER_LAYOUT = {  # class: (x1, y1, x2, y2) in cells, painted in this order over skin
    17: (0, 0, 64, 16),  # hair
    2: (16, 15, 30, 20),
    3: (34, 15, 48, 20),  # brows
    4: (17, 22, 29, 30),
    5: (35, 22, 47, 30),  # eyes
    10: (27, 31, 37, 40),  # nose
    12: (23, 42, 41, 45),
    11: (23, 45, 41, 47),
    13: (23, 47, 41, 51),  # upper lip, mouth, lower lip
}


def parser_classes() -> np.ndarray:
    """The stand-in parser's class map at 64 x 64 (skin inside a face oval, background outside)."""
    yy, xx = np.mgrid[0:64, 0:64]
    classes = np.where(((xx - 32) / 29.0) ** 2 + ((yy - 34) / 32.0) ** 2 <= 1.0, 1, 0).astype(np.int64)
    for cls, (x1, y1, x2, y2) in PARSER_LAYOUT.items():
        classes[y1:y2, x1:x2] = cls
    return classes


def face_parser() -> onnx.ModelProto:
    """bisenet_resnet_34 stand-in: 'input' [1,3,512,512] -> 'output' [1,19,512,512], the class scores of a fixed
    face layout on the aligned crop (PARSER_LAYOUT), whatever the input (which it reads, as a zero term)."""
    onehot = np.eye(19, dtype=np.float32)[parser_classes()].transpose(2, 0, 1)[None]  # [1, 19, 64, 64]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Resize", ["onehot", "", "scales"], ["big"], mode="nearest"),
        helper.make_node("Add", ["big", "z"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(onehot, "onehot"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([1, 1, 8, 8], np.float32), "scales"),
    ]
    graph = helper.make_graph(
        nodes,
        "bisenet_standin",
        [_tensor("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [_tensor("output", TensorProto.FLOAT, [1, 19, 512, 512])],
        inits,
    )
    return _model(graph)
