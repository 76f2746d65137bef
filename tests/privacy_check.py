"""The independent privacy checks the tests share: real photos, pans over them, and judges livefuse does not use.

The judges are the real detectors in ../shared/models (see its README). The anonymise chain runs BlazeFace and
YuNet (its privacy scan), so RetinaFace judges its output: on the whole frame (`independent_faces`), or on it and
on full-resolution tiles (`RetinaJudge`). OpenCV's own YuNet (`cv2.FaceDetectorYN`) judges chains without
YuNet. The photos are ../shared/privacy's (see its README), with their faces (tests/data/privacy_faces.json).
`HAS_JUDGES` and `HAS_PHOTOS` let a test module skip without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from livefuse.chain import Chain
from livefuse.frame import Frame
from livefuse.vision.detectors import RetinaFaceDetector
from livefuse.vision.geometry import iou_matrix
from livefuse.vision.runner import OrtRunner

SHARED = Path(__file__).resolve().parents[2] / "shared"
YUNET = SHARED / "models" / "face_detection_yunet.onnx"
RETINAFACE = SHARED / "models" / "retinaface_mobilenet0.25_640.onnx"
PHOTOS = SHARED / "privacy"
HAS_YUNET = YUNET.is_file()
HAS_RETINAFACE = RETINAFACE.is_file()
HAS_PHOTOS = PHOTOS.is_dir() and any(PHOTOS.glob("*.jpg"))
HAS_JUDGES = HAS_YUNET and HAS_RETINAFACE
_detectors: dict[tuple[int, int, float], cv2.FaceDetectorYN] = {}
_judges: dict[float, RetinaJudge] = {}  # by threshold


def yunet_boxes(image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """YuNet's faces in a BGR frame at `threshold`, as [N, 5] x1, y1, x2, y2, score (one detector per size)."""
    h, w = image.shape[:2]
    key = (w, h, threshold)
    if key not in _detectors:
        _detectors[key] = cv2.FaceDetectorYN.create(str(YUNET), "", (w, h), threshold)
    _, found = _detectors[key].detect(image)
    if found is None:
        return np.zeros((0, 5), np.float32)
    return np.concatenate([found[:, :2], found[:, :2] + found[:, 2:4], found[:, 14:15]], axis=1)


def independent_faces(image: np.ndarray, threshold: float = 0.7) -> int:
    """Faces RetinaFace (the family the anonymise chain does not use) finds in a BGR frame at `threshold`: it
    scores the demo's visible face 1.00, and the demo's suit or a covered head 0.50-0.60 now and then. A box
    taller than the frame is no face."""
    if threshold not in _judges:
        _judges[threshold] = RetinaJudge(threshold, tiles=False)
    found = _judges[threshold](image)
    # On a frame blurred whole it now and then boxes a "face" taller than the frame (0.76 on a covered 640x360)
    return int((found[:, 3] - found[:, 1] < image.shape[0]).sum())


class RetinaJudge:
    """RetinaFace over the whole frame and, with `tiles`, over overlapping full-resolution 640x640 tiles, so
    faces down to about 16 px count: [N, 5] x1, y1, x2, y2, score after suppression."""

    def __init__(self, threshold: float = 0.5, tiles: bool = True) -> None:
        self.detector = RetinaFaceDetector(OrtRunner(RETINAFACE), score_threshold=threshold)
        self.tiles = tiles

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        side = self.detector.size
        found = list(self.detector.detect(image))
        if self.tiles and max(w, h) > side:
            for y in _starts(h, side):
                for x in _starts(w, side):
                    for face in self.detector.detect(image[y : y + side, x : x + side]):
                        face.box += np.array([x, y, x, y], np.float32)
                        found.append(face)
        if not found:
            return np.zeros((0, 5), np.float32)
        rows = np.array([[*f.box, f.score] for f in sorted(found, key=lambda f: -f.score)], np.float32)
        keep: list[int] = []
        for i in range(len(rows)):
            if not keep or iou_matrix(rows[i : i + 1, :4], rows[keep, :4]).max() < 0.4:
                keep.append(i)
        return rows[keep]


def _starts(length: int, side: int) -> list[int]:
    """Tile origins along one side: tiles of `side` overlapping by at least a third."""
    if length <= side:
        return [0]
    count = int(np.ceil((length - side) / (side * 2 / 3))) + 1
    return [round(s) for s in np.linspace(0, length - side, count)]


def shown(truth: np.ndarray, after: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """The judge's faces in `after` (rows x1, y1, x2, y2, score) at `threshold` that lie on a true face (`truth`,
    boxes in the frame): the faces the output still shows."""
    strong = after[after[:, 4] >= threshold]
    if not len(truth) or not len(strong):
        return strong[:0]
    centre = (strong[:, :2] + strong[:, 2:4]) / 2
    inside = ((truth[None, :, :2] <= centre[:, None]) & (centre[:, None] <= truth[None, :, 2:4])).all(2)
    # centred on a face and not many times its size (RetinaFace now and then boxes half the frame around faces)
    area = np.prod(strong[:, 2:4] - strong[:, :2], axis=1)[:, None]
    inside &= area <= 4 * np.prod(truth[None, :, 2:4] - truth[None, :, :2], axis=2)
    return strong[inside.any(1) | (iou_matrix(strong[:, :4], truth[:, :4]).max(1) >= 0.3)]


TRUTH = Path(__file__).resolve().parent / "data" / "privacy_faces.json"


@dataclass
class Photo:
    """A photo of ../shared/privacy with its faces (boxes in photo pixels: tests/data/privacy_faces.json)."""

    name: str
    image: np.ndarray
    faces: np.ndarray  # [N, 4]

    def still(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The photo as `--source image:` serves it (resized to the frame, INTER_AREA), and its faces there."""
        h, w = self.image.shape[:2]
        m = np.array([[size[0] / w, 0, 0], [0, size[1] / h, 0]], np.float32)
        return cv2.resize(self.image, size, interpolation=cv2.INTER_AREA), faces_in(self.faces, m, size)

    def pan(
        self, size: tuple[int, int], seconds: float = 6.0, fps: float = 30.0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """A camera panning and zooming over the photo, with the faces in each frame: a window of the frame's
        shape crosses it left to right while swinging up and down past the top and bottom edges, zooming from
        the whole photo to 2.4x and back."""
        h, w = self.image.shape[:2]
        aspect = size[0] / size[1]
        fit_w = min(w, h * aspect)
        count = round(seconds * fps)
        for i in range(count):
            t = i / max(1, count - 1)
            win_w = fit_w / (1.0 + 1.4 * np.sin(np.pi * t))
            win_h = win_w / aspect
            x0 = (w - win_w) * t
            y0 = (h - win_h) / 2 * (1 + np.sin(2 * np.pi * t))
            k = size[0] / win_w
            m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], np.float32)
            image = cv2.warpAffine(self.image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            yield image, faces_in(self.faces, m, size)


def faces_in(faces: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Face boxes moved by the 2x3 scale-and-shift `m`, cut to the frame; those wholly outside dropped."""
    boxes = faces * np.tile(np.diag(m[:, :2]), 2) + np.tile(m[:, 2], 2)
    boxes = np.clip(boxes, 0, np.tile(np.array(size, np.float32), 2))
    return boxes[(boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)]


def photos() -> list[Photo]:
    """The real photos in ../shared/privacy, with their faces."""
    truth = json.loads(TRUTH.read_text())["photos"]
    return [
        Photo(p.stem, read(p), np.array([f[:4] for f in truth[p.stem]["faces"]], np.float32))
        for p in sorted(PHOTOS.glob("*.jpg"))
    ]


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def astronaut() -> Photo:
    """skimage's astronaut as a photo; her face where both judges find it (RetinaFace 1.00, YuNet 0.93)."""
    from livefuse.sources.demo import astronaut_bgr

    return Photo("astronaut", astronaut_bgr(), np.array([[178, 59, 273, 177]], np.float32))


@dataclass
class Tally:
    """What a judge saw over a clip: faces in, frames with a face shown, and the most shown in one frame."""

    faces_in: int = 0  # the most true faces in one frame
    frames: int = 0
    frames_shown: int = 0
    most_shown: int = 0

    def add(self, truth: np.ndarray, visible: np.ndarray) -> None:
        self.faces_in = max(self.faces_in, len(truth))
        self.frames += 1
        self.frames_shown += bool(len(visible))
        self.most_shown = max(self.most_shown, len(visible))


def run_chain(chain: Chain, images: list[np.ndarray], fps: float = 0.0) -> list[Frame]:
    """Each image through the chain in order (copies: the inputs stay as they were); with `fps`, frames carry
    capture times at that rate."""
    frames = []
    for i, image in enumerate(images):
        frame = Frame(seq=i, capture_ns=int(i / fps * 1e9) if fps else 0, image=image.copy())
        chain.run(frame, chain.admit())
        frames.append(frame)
    return frames
