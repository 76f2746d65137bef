"""The engine's own graph: the probe that settles which provider works before any model loads.

Graphs that touch a frame are in livefuse/device/graphs.py; a stage's own fused graph is in its package.
"""

from __future__ import annotations

import onnx

from livefuse.engine.graph_builder import FLOAT, GraphBuilder


def identity_probe() -> onnx.ModelProto:
    """The smallest graph a provider can run: used to settle which provider works before any model loads."""
    b = GraphBuilder("provider_probe")
    b.op("Identity", b.input("x", FLOAT, [1]), out="y")
    b.output("y", FLOAT, [1])
    return b.build("provider probe")
