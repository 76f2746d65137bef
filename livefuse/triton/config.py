"""One model's Triton `config.pbtxt`, built as the ModelConfig protobuf tritonclient ships.

Building the message (not formatting text by hand) means a config that is written always parses in
Triton; `parse_config` reads one back, for `triton-repo` checks and for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from livefuse.errors import UserError
from livefuse.triton.release import PARAMETER, ReleaseState

BACKENDS = ("onnxruntime", "python")
PREFERRED_BATCHES = (2, 4, 8)

# ONNX element types -> Triton data types.
TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
}


def model_config_pb2() -> Any:
    """tritonclient's ModelConfig protobuf module, or a UserError saying how to get it."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb
    except (ImportError, RuntimeError) as exc:  # tritonclient raises RuntimeError without its grpc extra
        raise UserError(
            "Triton support needs tritonclient: pip install 'livefuse[triton]' (or pip install 'tritonclient[grpc]')"
        ) from exc
    return pb


@dataclass(frozen=True)
class ServingOptions:
    """How Triton should serve every model of a repository."""

    backend: str = "onnxruntime"
    max_batch_size: int = 8  # used where the model has (or was given) a dynamic batch axis
    max_queue_delay_us: int = 2000
    instances: int = 1
    gpu: bool = False  # instance_group KIND_GPU instead of KIND_CPU
    tensorrt_fp16: bool = False  # the TensorRT accelerator stanza, FP16 (onnxruntime backend on GPUs)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"--backend {self.backend!r}: use onnxruntime or python")
        if self.max_batch_size < 1 or self.instances < 1 or self.max_queue_delay_us < 0:
            raise UserError("--max-batch, --instances must be at least 1 and --queue-delay-us at least 0")


def _dims(value: onnx.ValueInfoProto, batched: bool) -> list[int]:
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
    return dims[1:] if batched else dims


def build_config(name: str, model: onnx.ModelProto, state: ReleaseState, options: ServingOptions, batched: bool) -> Any:
    """The ModelConfig for `model` served as `name`; `batched` when its first axis is a free batch axis."""
    pb = model_config_pb2()
    config = pb.ModelConfig(name=name, backend=options.backend, max_batch_size=options.max_batch_size if batched else 0)
    initializers = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        elem = value.type.tensor_type.elem_type
        if elem not in TRITON_TYPES:
            raise UserError(f"{name}: input {value.name!r} has an element type Triton cannot take ({elem})")
        config.input.add(name=value.name, data_type=pb.DataType.Value(TRITON_TYPES[elem]), dims=_dims(value, batched))
    for value in model.graph.output:
        elem = value.type.tensor_type.elem_type
        config.output.add(
            name=value.name,
            data_type=pb.DataType.Value(TRITON_TYPES.get(elem, "TYPE_FP32")),
            dims=_dims(value, batched),
        )
    if batched:
        config.dynamic_batching.preferred_batch_size.extend(b for b in PREFERRED_BATCHES if b <= options.max_batch_size)
        config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    kind = pb.ModelInstanceGroup.Kind.Value("KIND_GPU" if options.gpu else "KIND_CPU")
    config.instance_group.add(count=options.instances, kind=kind)
    config.version_policy.specific.versions.extend(state.served())
    if options.tensorrt_fp16 and options.backend == "onnxruntime":
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accelerator.parameters["precision_mode"] = "FP16"
        accelerator.parameters["max_workspace_size_bytes"] = str(1 << 30)
        accelerator.parameters["trt_engine_cache_enable"] = "1"
    config.parameters[PARAMETER].string_value = state.to_json()
    return config


def config_text(config: Any) -> str:
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def parse_config(path: Path) -> Any:
    """A config.pbtxt parsed with the ModelConfig protobuf; a UserError naming the file when it does not parse."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), pb.ModelConfig())
    except (OSError, text_format.ParseError) as exc:
        raise UserError(f"{path}: not a valid Triton model config: {exc}") from exc


def release_state(config: Any, where: str) -> ReleaseState:
    """The release state a config carries, or a UserError when it was not written by livefuse."""
    if PARAMETER not in config.parameters:
        raise UserError(f"{where}: no {PARAMETER} parameter; write the repository with `livefuse models triton-repo`")
    return ReleaseState.from_json(config.parameters[PARAMETER].string_value)
