"""Peer: the plain OpenCV + onnxruntime loop, on livefuse's converted selfie-segmentation model.

Read, resize to the model's 256x144, RGB float in [0, 1], `session.run`, upsample the mask,
blur the background (livefuse's strength: same sigma at the same 1/4 size) and blend with
numpy. One thread, default onnxruntime session options.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
from common import Timer, blurred_background, finish, make_camera, parse_args, run_loop

from livefuse.bench.report import Measured


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    _, mh, mw, _ = inp.shape

    def process(image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        timer = Timer()
        h, w = image.shape[:2]
        x = cv2.cvtColor(cv2.resize(image, (mw, mh)), cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        mask = session.run(None, {inp.name: x})[0].reshape(mh, mw)
        timer.lap("segment")
        alpha = cv2.resize(mask, (w, h))[..., None]
        out = (image * alpha + blurred_background(image, args) * (1.0 - alpha)).astype(np.uint8)
        timer.lap("composite")
        return out, timer.steps

    camera = make_camera(args, process)
    measured = Measured(release_ns=camera.release_times_ns)
    measured.usage.start()
    camera.start()
    run_loop(args, camera, process, measured)
    measured.usage.stop()
    camera.close()
    finish(args, f"opencv-onnxruntime-{ort.__version__}", "sequential", "CPUExecutionProvider", measured, camera,
           f"{args.model.name}, numpy blend, one thread")


if __name__ == "__main__":
    main()
