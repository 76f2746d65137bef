"""What a session loads: a model file (possibly with an FP16 variant for GPUs) or a built graph's bytes.

Kept apart from the sessions so the registry can describe a model without importing onnxruntime.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from livefuse.engine.providers import CPU
from livefuse.engine.shapes import all_fixed
from livefuse.errors import ModelError

if TYPE_CHECKING:
    import onnx

    from livefuse.engine.manifest import ModelEntry


@dataclass
class ModelSource:
    """A model to load: a file (possibly with an FP16 variant for GPUs) or serialised bytes.

    `fixed_shapes` says every input and output has a fixed shape, the condition for a CUDA graph;
    `trt_fp16` that the model passed its FP16 accuracy check (models/manifest.toml), so TensorRT may
    build it in FP16.
    """

    label: str  # for messages: a manifest name@version, a path, or "built graph"
    path: Path | None = None
    data: bytes | None = None
    fp16_path: Path | None = None
    key: str = ""  # content hash, keys the optimised-model cache
    fixed_shapes: bool = False
    trt_fp16: bool = False
    entry: ModelEntry | None = None  # the manifest's entry, for a manifest model: its size, template, mean, std

    @classmethod
    def from_proto(cls, model: onnx.ModelProto, label: str = "") -> ModelSource:
        data = model.SerializeToString()
        name = label or model.graph.name or "graph"
        shapes = [
            [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
            for v in (*model.graph.input, *model.graph.output)
        ]
        return cls(
            label=f"built graph {name!r}",
            data=data,
            key=hashlib.sha256(data).hexdigest(),
            fixed_shapes=all_fixed(shapes),
        )

    @classmethod
    def from_path(cls, path: Path, key: str = "", label: str = "") -> ModelSource:
        if not path.is_file():
            raise ModelError(
                f"model file {path} does not exist: check the path, or use a model name from `livefuse models list`"
            )
        if not key:
            st = path.stat()
            key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        return cls(label=label or str(path), path=path, key=key)

    def variant_for(self, provider: str) -> tuple[Path | None, bytes | None, str]:
        """What to load on `provider`: the FP16 variant on GPUs when there is one."""
        if self.fp16_path is not None and provider != CPU:
            return self.fp16_path, None, self.key + "-fp16"
        return self.path, self.data, self.key
