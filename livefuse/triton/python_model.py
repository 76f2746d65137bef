"""The Triton Python-backend model that serves a livefuse ONNX file with onnxruntime.

For Triton builds without the onnxruntime backend (PyTriton's `tritonserver`, or a CPU box with only
the Python backend): `livefuse models triton-repo --backend python` writes this file as
`<model>/<version>/model.py` beside `model.onnx`. It runs inside Triton's Python stub, so it imports
nothing from livefuse. It refuses to load a `model.onnx` whose SHA-256 is not the one the release
state recorded, naming both hashes, and runs each dynamic batch as one onnxruntime call.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return str(digest.hexdigest())


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        version = str(args["model_version"])
        path = Path(args["model_repository"]) / version / "model.onnx"
        release = json.loads(config["parameters"]["livefuse_release"]["string_value"])
        expected = release.get("sha256", {}).get(version, "")
        actual = _sha256(path)
        if actual != expected:
            raise pb_utils.TritonModelException(
                f"{path} has sha256 {actual}, expected {expected}; it is not loaded (restore the file or "
                f"release it again with `livefuse models release`)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(config["parameters"].get("intra_op_threads", {}).get("string_value", "1"))
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = {
            name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests] for name in self.inputs
        }
        sizes = [len(array) for array in feeds[self.inputs[0]]]
        results = self.session.run(None, {name: np.concatenate(arrays) for name, arrays in feeds.items()})
        responses: list[Any] = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, result[start : start + size])
                for name, result in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
