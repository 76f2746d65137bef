"""The one ONNX graph builder: what it builds runs in onnxruntime and equals a numpy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from livefuse.engine import Engine
from livefuse.engine.graph_builder import FLOAT, IR_VERSION, OPSET, UINT8, GraphBuilder, tensor_info


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine("cpu", cache_dir=tmp_path_factory.mktemp("engine"))


def grade_graph() -> onnx.ModelProto:
    """A colour-stage-like graph: uint8 pixels through a 3x3 matrix and offset, rounded and clipped."""
    b = GraphBuilder("grade")
    x = b.op("Cast", b.input("image", UINT8, ["height", "width", 3]), to=FLOAT)
    y = b.op("Add", b.op("MatMul", x, b.input("matrix", FLOAT, [3, 3])), b.input("offset", FLOAT, [3]))
    y = b.op("Clip", y, b.const(0.0, name="zero"), b.const(255.0, name="max8"))
    b.op("Cast", y, to=UINT8, out="output")
    b.output("output", UINT8, ["height", "width", 3])
    return b.build("grade", full_check=True)


def test_a_built_graph_runs_and_matches_numpy(engine: Engine) -> None:
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    matrix = np.array([[1.1, 0.1, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]], np.float32)
    offset = np.array([10.5, -3.5, 0.5], np.float32)
    got = engine.session(grade_graph()).run({"image": image, "matrix": matrix, "offset": offset})["output"]
    want = np.clip(image.astype(np.float32) @ matrix + offset, 0, 255).astype(np.uint8)
    assert np.array_equal(got, want)


def test_one_opset_and_ir_version_and_deterministic_names() -> None:
    first, second = grade_graph(), grade_graph()
    assert first.SerializeToString() == second.SerializeToString()  # same graph, same cache key
    assert [o.version for o in first.opset_import] == [OPSET] and first.ir_version == IR_VERSION
    assert {i.name for i in first.graph.initializer} == {"zero", "max8"}
    assert [n.name for n in first.graph.node] == [f"n{i}" for i in range(1, 6)]
    assert [i.name for i in first.graph.input] == ["image", "matrix", "offset"]


def test_a_graph_without_outputs_or_with_a_dangling_one_is_refused() -> None:
    b = GraphBuilder("empty")
    b.op("Identity", b.input("x", FLOAT, [1]), out="y")
    with pytest.raises(ValueError, match="declares no output"):
        b.build()
    b.output("z", FLOAT, [1])  # nothing produces z
    with pytest.raises(onnx.checker.ValidationError):
        b.build()


def test_inline_runs_a_model_inside_the_graph(engine: Engine, tmp_path: Path) -> None:
    inner = GraphBuilder("double")
    inner.op("Mul", inner.input("v", FLOAT, [2]), inner.const([2.0, 2.0]), out="w")
    inner.output("w", FLOAT, [2])
    outer = GraphBuilder("outer")
    shifted = outer.op("Add", outer.input("x", FLOAT, [2]), outer.const([1.0, 1.0]))
    doubled = outer.inline(inner.build(), "inner/", shifted)
    outer.op("Identity", doubled, out="y")
    outer.output("y", FLOAT, [2])
    got = engine.session(outer.build()).run({"x": np.array([1.0, 3.0], np.float32)})["y"]
    assert np.array_equal(got, [4.0, 8.0])


def test_value_infos_can_be_given_at_the_end() -> None:
    b = GraphBuilder("probe")
    b.op("Identity", "x", out="y")
    model = b.model([tensor_info("x", FLOAT, [1])], [tensor_info("y", FLOAT, [1])], "probe")
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
