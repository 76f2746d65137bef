"""Peer: MediaPipe's legacy Python FaceMesh solution, which detects a face once and then follows it.

`mp.solutions.face_mesh.FaceMesh` in video mode (static_image_mode=False): its graph runs the
short-range face detector only while it follows fewer faces than max_num_faces, and derives each
followed face's next crop from its landmarks, as livefuse's face stage now does.
refine_landmarks=False (468 points, the model livefuse runs). The docs' loop: RGB, read-only, `process`.
Runs in benchmarks/.venv-peers (mediapipe 0.10.14 pins its own OpenCV and numpy < 2).
"""

from __future__ import annotations

import mediapipe as mp
import numpy as np
from common import Timer, face_args, faces_summary, finish, measure


def main() -> None:
    args = face_args(__doc__.splitlines()[0])
    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False,
        max_num_faces=args.max_faces,
        refine_landmarks=False,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )
    import cv2

    counts: list[int] = []

    def process(image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        timer = Timer()
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        results = mesh.process(rgb)
        timer.lap("face")
        counts.append(len(results.multi_face_landmarks or []))
        return image, timer.steps

    camera, measured = measure(args, process)
    mesh.close()
    finish(
        args,
        f"mediapipe-{mp.__version__} FaceMesh",
        "sequential",
        "mediapipe (TFLite, XNNPACK CPU)",
        measured,
        camera,
        f"mp.solutions.face_mesh.FaceMesh(max_num_faces={args.max_faces}), video mode",
        preset="face",
        extra={"faces": faces_summary(counts[args.warmup :])},
    )


if __name__ == "__main__":
    main()
