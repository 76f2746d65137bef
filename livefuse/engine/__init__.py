"""ONNX inference: provider selection with fallback, double-buffered IOBinding, and the model registry.

engine = Engine(provider="auto")
sess = engine.session("selfie_segmentation")     # a manifest name, a path, or an onnx.ModelProto
outs = sess.run({"input": tensor})               # name -> np.ndarray (views, valid for two runs)

Engine and ModelSession are imported on first use, so `livefuse models list` (the registry alone)
does not load onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livefuse.engine.core import Engine
    from livefuse.engine.session import ModelSession

__all__ = ["Engine", "ModelSession"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from livefuse.engine.core import Engine

        return Engine
    if name == "ModelSession":
        from livefuse.engine.session import ModelSession

        return ModelSession
    raise AttributeError(f"module 'livefuse.engine' has no attribute {name!r}")
