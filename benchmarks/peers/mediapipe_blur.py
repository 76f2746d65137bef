"""Peer: MediaPipe's legacy Python selfie-segmentation solution, blurring the background as its docs show.

The docs' webcam loop, minus the selfie-view flip and the window: convert to RGB, mark the
image read-only, `process`, then `np.where(mask > 0.1, image, blurred)`. The docs blur with
`cv2.GaussianBlur(image, (55, 55), 0)` at full size; by default (`--blur matched`) this uses
livefuse's blur strength instead (same sigma at the same 1/4 size), so both draw the same picture
for the same blur work. model_selection=1 is the landscape model, the one livefuse's stage uses
for 16:9 frames. Runs in benchmarks/.venv-peers (mediapipe 0.10.14 pins its own OpenCV).
"""

from __future__ import annotations

import mediapipe as mp
import numpy as np
from common import Timer, blurred_background, finish, measure, parse_args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    segmentation = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)
    import cv2

    def process(image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        timer = Timer()
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        results = segmentation.process(rgb)
        timer.lap("segment")
        condition = np.stack((results.segmentation_mask,) * 3, axis=-1) > 0.1
        out = np.where(condition, image, blurred_background(image, args))
        timer.lap("composite")
        return out, timer.steps

    camera, measured = measure(args, process)
    segmentation.close()
    finish(
        args,
        f"mediapipe-{mp.__version__}",
        "sequential",
        "mediapipe (TFLite, XNNPACK CPU)",
        measured,
        camera,
        "mp.solutions.selfie_segmentation, model_selection=1, np.where(mask > 0.1), docs loop",
    )


if __name__ == "__main__":
    main()
