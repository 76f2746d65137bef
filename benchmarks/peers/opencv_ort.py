"""Peer: the plain OpenCV + onnxruntime loop, on livefuse's converted selfie-segmentation model.

Read, resize to the model's 256x144, RGB float in [0, 1], `session.run`, upsample the mask,
blur the background (livefuse's strength: same sigma at the same 1/4 size) and blend with
numpy. One thread, default onnxruntime session options.
"""

from __future__ import annotations

import onnxruntime as ort
from common import finish, measure, ort_segment_blur, parse_args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    camera, measured = measure(args, ort_segment_blur(args))
    finish(
        args,
        f"opencv-onnxruntime-{ort.__version__}",
        "sequential",
        "CPUExecutionProvider",
        measured,
        camera,
        f"{args.model.name}, numpy blend, one thread",
    )


if __name__ == "__main__":
    main()
