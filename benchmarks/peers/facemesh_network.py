"""FaceMesh's network alone, once per released frame: the floor under any face stage that runs it.

A face stage that follows a face with FaceMesh, as MediaPipe's face mesh graph and livefuse's `face`
stage do, pays at least one run of this network per face per frame. This contender pays only that:
each frame's 192x192 crop (the face's square, resized) and the network's input are made before the
timed step, and the timed step is the network's run. The input is the crop's pixels for livefuse's
model (tools/pixel_input.py) and RGB floats in [0, 1] for MediaPipe's.

`--runtime onnxruntime` runs livefuse's converted model through livefuse's own engine, with the stage's
session options; `--runtime tflite` runs MediaPipe's own `face_landmark.tflite` on TFLite with its
XNNPACK delegate and one thread, as MediaPipe 0.10.14's graph does on Linux (in benchmarks/.venv-peers,
which has tflite-runtime). Both read the clip through the same `ReleasedCamera` and loop as the other
face contenders, so the run after a 33 ms pause pays what it pays there.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import cv2
import numpy as np
from common import ROOT, Timer, face_args, finish, measure

SIZE = 192
TFLITE_MODEL = ROOT / "models/mediapipe/tflite/face_landmark.tflite"
Network = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], None]]  # (crop -> input, run)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=("onnxruntime", "tflite"), default="onnxruntime")


@contextmanager
def onnxruntime_network() -> Iterator[tuple[Network, str]]:
    """livefuse's FaceMesh session, opened as the face stage opens it."""
    import onnxruntime

    from livefuse.engine import Engine
    from livefuse.engine.loader import open_model
    from livefuse.vision.models import LANDMARK_MODEL

    with tempfile.TemporaryDirectory() as cache:
        runner = open_model(Engine(provider="cpu", cache_dir=cache), LANDMARK_MODEL)
        name = runner.input_names[0]
        # livefuse's FaceMesh takes the crop's pixels (tools/pixel_input.py)
        network = (lambda crop: crop[None]), (lambda x: runner.run({name: x}))
        yield network, f"onnxruntime-{onnxruntime.__version__} CPU, livefuse's engine"


@contextmanager
def tflite_network() -> Iterator[tuple[Network, str]]:
    """MediaPipe's own FaceMesh model on TFLite (XNNPACK delegate, one thread)."""
    import tflite_runtime
    from tflite_runtime.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(TFLITE_MODEL), num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    outputs = [o["index"] for o in interpreter.get_output_details()]

    def run(x: np.ndarray) -> None:
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        for o in outputs:
            interpreter.get_tensor(o)

    yield (rgb_floats, run), f"tflite-runtime-{tflite_runtime.__version__} XNNPACK, 1 thread"


def face_crop(image: np.ndarray) -> np.ndarray:
    """The frame's central square (where the clip's face is) as a 192x192 BGR crop."""
    h, w = image.shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def rgb_floats(crop: np.ndarray) -> np.ndarray:
    """TFLite FaceMesh's input: [1, 192, 192, 3] RGB in [0, 1]."""
    return np.ascontiguousarray(crop[None, :, :, ::-1], dtype=np.float32) / np.float32(255.0)


def main() -> None:
    args = face_args(__doc__.splitlines()[0], options)
    opened = onnxruntime_network() if args.runtime == "onnxruntime" else tflite_network()
    with opened as ((prepare, network), provider):

        def process(image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
            x = prepare(face_crop(image))
            timer = Timer()
            network(x)
            timer.lap("face")
            return image, timer.steps

        camera, measured = measure(args, process)
    finish(
        args,
        f"FaceMesh network alone ({args.runtime})",
        "sequential",
        provider,
        measured,
        camera,
        "one run of FaceMesh's network per frame on a prepared crop: the floor of a tracking face stage",
        preset="face",
    )


if __name__ == "__main__":
    main()
