"""Recording quality: how much of a face's detail (Laplacian variance in its box) a recording keeps.

A 1280x720 moving clip of skimage's astronaut goes through the real encoder at `?crf=18` and at the
default, and is decoded back; the face box comes from the independent YuNet detector on the source.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from livefuse.frame import Frame
from livefuse.sinks import open_sink

SIZE = (1280, 720)
FRAMES = 20
YUNET = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "face_detection_yunet.onnx"


def clip() -> list[np.ndarray]:
    """The astronaut on a 720p canvas, moving 3 px a frame: the encoder has to code real motion."""
    face = np.ascontiguousarray(astronaut()[:, :, ::-1])  # 512x512 at its own sharpness
    frames = []
    for n in range(FRAMES):
        canvas = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        x = 300 + 3 * n
        canvas[100:612, x : x + 512] = face
        frames.append(canvas)
    return frames


def face_box(image: np.ndarray) -> tuple[int, int, int, int]:
    detector = cv2.FaceDetectorYN.create(str(YUNET), "", (image.shape[1], image.shape[0]))
    _, faces = detector.detect(image)
    assert faces is not None and len(faces) == 1
    x, y, w, h = (int(v) for v in faces[0][:4])
    return x, y, w, h


def detail(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    grey = cv2.cvtColor(image[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def record(path: Path, spec: str, frames: list[np.ndarray]) -> list[np.ndarray]:
    sink = open_sink(spec, SIZE, 30.0)
    for n, image in enumerate(frames):
        sink.write(Frame(seq=n, capture_ns=n * 33_333_333, image=image))
    sink.close()
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


@pytest.mark.skipif(not YUNET.is_file(), reason="the shared YuNet model is not here")
@pytest.mark.parametrize(("query", "bound"), [("?crf=18", 0.05), ("", 0.10), ("?crf=30&preset=veryfast", None)])
def test_recording_keeps_the_face_detail(tmp_path: Path, query: str, bound: float | None) -> None:
    """crf=18 and the default keep the detail; a coarse crf=30 shows the measure can tell (it must lose some)."""
    frames = clip()
    path = tmp_path / "rec.mp4"
    decoded = record(path, f"file:{path}{query}", frames)
    assert len(decoded) == FRAMES
    x, y, w, h = face_box(frames[0])
    ratios = []
    for n, (source, out) in enumerate(zip(frames, decoded, strict=True)):
        box = (x + 3 * n, y, w, h)  # the face moves 3 px a frame
        ratios.append(detail(out, box) / detail(source, box))
    ratio = float(np.median(ratios))
    print(
        f"file:rec.mp4{query or ' (default)'}: face detail kept {ratio:.3f} (median over {FRAMES} frames, "
        f"worst {min(ratios):.3f})"
    )
    if bound is None:
        assert abs(ratio - 1) > 0.05, "a coarse recording should have lost or smeared detail"
        return
    assert abs(ratio - 1) <= bound  # neither lost nor made up: the encoder keeps the face as it was
