"""The one way livefuse writes ONNX graphs: named nodes and constants, declared inputs and outputs, one opset.

Every graph livefuse builds itself (the frame graphs in `device/graphs.py`, the stages' fused graphs)
goes through `GraphBuilder`, so they share one opset, one IR version and one checker call:

    b = GraphBuilder("grade")
    x = b.op("Cast", b.input("image", UINT8, ["height", "width", 3]), to=FLOAT)
    y = b.op("Add", b.op("MatMul", x, b.input("matrix", FLOAT, [3, 3])), b.const([0.5, 0.5, 0.5]))
    b.op("Cast", b.op("Clip", y, b.const(0.0), b.const(255.0)), to=UINT8, out="output")
    b.output("output", UINT8, ["height", "width", 3])
    model = b.build("what the graph does")

Names a caller does not choose are generated (`c1`, `t2`, ...), so two graphs built alike are
byte-identical and keep the same cache key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper, version_converter

OPSET = 20  # AffineGrid and 3-D GridSample need 20; onnxruntime >= 1.17 runs it
IR_VERSION = 10
FLOAT = TensorProto.FLOAT
UINT8 = TensorProto.UINT8
INT64 = TensorProto.INT64

Dim = int | str
ConstValue = np.ndarray | float | int | Sequence[float] | Sequence[int] | Sequence[Sequence[float]]


def tensor_info(name: str, elem_type: int, shape: Sequence[Dim]) -> onnx.ValueInfoProto:
    """A graph input or output: its name, element type (`FLOAT`, `UINT8`, ...) and shape (ints or names)."""
    return helper.make_tensor_value_info(name, elem_type, list(shape))


class GraphBuilder:
    """Collects the nodes, constants, inputs and outputs of one graph; `build` checks and returns it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def _next(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    # -- the graph's interface ------------------------------------------------------------------

    def input(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        """Declare a graph input; returns its name, to feed nodes with."""
        self.inputs.append(tensor_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: Sequence[Dim]) -> None:
        """Declare a graph output; a node must produce it (`op(..., out=name)`)."""
        self.outputs.append(tensor_info(name, elem_type, shape))

    # -- contents ---------------------------------------------------------------------------------

    def const(self, value: ConstValue, dtype: type | np.dtype = np.float32, name: str | None = None) -> str:
        """A constant tensor (an initializer) of `dtype`; returns its name."""
        name = name or self._next("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Sequence[int]) -> str:
        """An int64 vector constant: the shapes, axes and indices many operators take."""
        return self.const(values, np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """One node of the default domain; `""` for an optional input left out. Returns its output's name."""
        node_name = self._next("n")
        output = out or f"t{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=node_name, **attrs))
        return output

    def inline(self, model: onnx.ModelProto, prefix: str, source: str) -> str:
        """Add a one-input, one-output model's nodes under `prefix`, fed by `source`; returns its output.

        Inlining (rather than a second session) keeps a whole step one graph on one device. A model of
        an older opset is converted up to `OPSET` first.
        """
        if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < OPSET:
            model = version_converter.convert_version(model, OPSET)
        graph = compose.add_prefix(model, prefix).graph
        self.op("Identity", source, out=graph.input[0].name)
        self.nodes.extend(graph.node)
        self.inits.extend(graph.initializer)
        return str(graph.output[0].name)

    # -- the result -------------------------------------------------------------------------------

    def build(self, doc: str = "", full_check: bool = False) -> onnx.ModelProto:
        """The checked model (with `full_check`, shape inference must agree with the declared shapes too)."""
        if not self.outputs:
            raise ValueError(f"graph {self.name!r} declares no output; call output() for each")
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="livefuse")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=full_check)
        return model

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], doc: str) -> onnx.ModelProto:
        """`build` with the inputs and outputs given as value infos (`tensor_info`) instead of declared."""
        self.inputs.extend(inputs)
        self.outputs.extend(outputs)
        return self.build(doc)
