"""ONNX inference: provider selection with fallback, double-buffered IOBinding, and the model registry.

engine = Engine(provider="auto")
sess = engine.session("selfie_segmentation")     # a manifest name, a path, or an onnx.ModelProto
outs = sess.run({"input": tensor})               # name -> np.ndarray (views, valid for two runs)
"""

from livefuse.engine.core import Engine
from livefuse.engine.session import ModelSession

__all__ = ["Engine", "ModelSession"]
