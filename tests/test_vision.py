"""The vision adapters on a real photo: faces found, landmarks where a person sees them, person segmented.

Ground truth for skimage.data.astronaut() (512x512), read off 8x crops of the photo, in ArcFace order:
pupils, the nose tip highlight, the mouth corners. Pixel tolerances are per detector: BlazeFace's eyes
are coarse and its mouth corners are derived from the mouth centre.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from livefuse.frame import Face
from livefuse.vision import (
    BlazeFaceDetector,
    FaceDetector,
    FaceLandmarker,
    OrtRunner,
    RetinaFaceDetector,
    SelfieSegmenter,
    YuNetDetector,
    mediapipe_model,
    upsample,
)
from livefuse.vision.pixels import HostPixels
from livefuse.vision.segmentation import LANDSCAPE_SIZE

ROOT = Path(__file__).resolve().parent.parent
SHARED = next((p for p in (ROOT.parent / "shared" / "models", Path("/work/shared/models")) if p.is_dir()), None)

TRUTH = np.array([[203.0, 101.5], [246.0, 103.0], [223.0, 127.0], [203.0, 141.0], [242.5, 141.5]], np.float32)
FACE_BOX = (185, 65, 270, 170)  # x1, y1, x2, y2 around forehead to chin, cheek to cheek
PART = ["right eye", "left eye", "nose tip", "right mouth corner", "left mouth corner"]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # BGR like a Frame


def _shared(name: str) -> Path:
    if SHARED is None or not (SHARED / name).is_file():
        pytest.skip(f"shared test model {name} not present")
    return SHARED / name


def _detector(kind: str) -> FaceDetector:
    if kind == "blazeface":
        return BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_short")))
    if kind == "yunet":
        return YuNetDetector(OrtRunner(_shared("face_detection_yunet.onnx")))
    return RetinaFaceDetector(OrtRunner(_shared("retinaface_mobilenet0.25_640.onnx")))


# max pixel error per point: eyes, nose, mouth corners
TOLERANCE = {"blazeface": [7, 7, 7, 10, 10], "yunet": [5] * 5, "retinaface": [5] * 5, "facemesh": [5] * 5}


def _check_points(points: np.ndarray, kind: str, truth: np.ndarray = TRUTH) -> None:
    err = np.linalg.norm(points - truth, axis=1)
    for part, e, tol in zip(PART, err, TOLERANCE[kind], strict=True):
        assert e <= tol, f"{kind}: {part} is {e:.1f} px off (tolerance {tol}); points {points.round(1).tolist()}"


def _check_face(faces: list[Face], kind: str, truth: np.ndarray = TRUTH, box: tuple = FACE_BOX) -> Face:
    assert len(faces) == 1, f"{kind}: {len(faces)} faces"
    f = faces[0]
    assert f.box.dtype == np.float32 and f.box.shape == (4,)
    assert f.landmarks5.dtype == np.float32 and f.landmarks5.shape == (5, 2)
    assert f.score > 0.8
    x1, y1, x2, y2 = f.box
    bx1, by1, bx2, by2 = box
    assert x1 <= bx1 + 10 and y1 <= by1 + 25 and x2 >= bx2 - 10 and y2 >= by2 - 10, f.box
    assert (x2 - x1) < 2.5 * (bx2 - bx1), f.box
    _check_points(f.landmarks5, kind, truth)
    return f


@pytest.mark.parametrize("kind", ["blazeface", "yunet", "retinaface"])
def test_detector_finds_astronaut(kind: str, astronaut: np.ndarray) -> None:
    _check_face(_detector(kind).detect(astronaut), kind)


def _widescreen(astronaut: np.ndarray, scale: float, ox: int, oy: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo's upper part scaled and pasted off centre into a grey 640x360 frame; and its 2x3 map."""
    part = cv2.resize(astronaut[0:300, 100:400], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((360, 640, 3), 90, np.uint8)
    h, w = min(part.shape[0], 360 - oy), min(part.shape[1], 640 - ox)
    frame[oy : oy + h, ox : ox + w] = part[:h, :w]
    m = np.array([[scale, 0, ox - 100 * scale], [0, scale, oy]], np.float32)
    return frame, m


@pytest.mark.parametrize("kind", ["blazeface", "yunet", "retinaface"])
def test_detector_maps_back_through_letterbox(kind: str, astronaut: np.ndarray) -> None:
    """A 16:9 frame with the face off centre: points come back in frame pixels, not model pixels.

    BlazeFace short range wants faces of at least ~1/6 of the frame's longer side, hence the 1.5x scale.
    """
    frame, m = _widescreen(astronaut, 1.5, 260, 0)
    truth = (TRUTH @ m[:, :2].T + m[:, 2]).astype(np.float32)
    box = np.array(FACE_BOX, np.float32).reshape(2, 2) @ m[:, :2].T + m[:, 2]
    faces = _detector(kind).detect(frame)
    assert len(faces) == 1, f"{kind}: {len(faces)} faces"
    x1, _, x2, y2 = faces[0].box
    assert x1 <= box[0, 0] + 15 and x2 >= box[1, 0] - 15 and y2 >= box[1, 1] - 15, faces[0].box
    err = np.linalg.norm(faces[0].landmarks5 - truth, axis=1) / 1.5  # in original-photo pixels
    assert np.all(err <= np.array(TOLERANCE[kind])), f"{kind}: errors {err.round(1).tolist()}"


def test_full_range_finds_a_distant_face(astronaut: np.ndarray) -> None:
    """Face ~85 px wide in a 1280x720 frame: too small for the short-range model, fine for full range."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 600:1112] = astronaut
    truth = TRUTH + np.array([600, 100], np.float32)
    assert BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_short"))).detect(frame) == []
    faces = BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_full")), variant="full").detect(frame)
    assert len(faces) == 1 and faces[0].score > 0.8
    err = np.linalg.norm(faces[0].landmarks5 - truth, axis=1)
    assert np.all(err <= [8, 8, 8, 10, 10]), err.round(1).tolist()
    assert (
        BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_full")), variant="full").detect(
            np.ascontiguousarray(data.coffee()[:, :, ::-1])
        )
        == []
    )


@pytest.mark.parametrize("kind", ["blazeface", "yunet", "retinaface"])
def test_detector_finds_nothing_without_a_face(kind: str) -> None:
    assert _detector(kind).detect(np.ascontiguousarray(data.coffee()[:, :, ::-1])) == []


def test_facemesh_refines_landmarks(astronaut: np.ndarray) -> None:
    face = BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_short"))).detect(astronaut)[0]
    refined = FaceLandmarker(OrtRunner(mediapipe_model("face_landmark"))).refine(astronaut, face)
    assert refined is not None and refined.mesh is not None
    assert refined.mesh.shape == (468, 3) and refined.mesh.dtype == np.float32
    _check_points(refined.landmarks5, "facemesh")
    x1, y1, x2, y2 = FACE_BOX
    inside = (refined.mesh[:, 0] > x1 - 10) & (refined.mesh[:, 0] < x2 + 10)
    inside &= (refined.mesh[:, 1] > y1 - 10) & (refined.mesh[:, 1] < y2 + 10)
    assert inside.mean() > 0.98


def test_facemesh_follows_a_rotated_face(astronaut: np.ndarray) -> None:
    """The crop is rotated by the eye line, so a tilted head still gets its mesh on the face."""
    m = cv2.getRotationMatrix2D((256.0, 256.0), 25.0, 1.0)
    rotated = cv2.warpAffine(astronaut, m, (512, 512))
    truth = TRUTH @ m[:, :2].T + m[:, 2]
    face = BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_short"))).detect(rotated)[0]
    refined = FaceLandmarker(OrtRunner(mediapipe_model("face_landmark"))).refine(rotated, face)
    assert refined is not None
    _check_points(refined.landmarks5, "facemesh", truth.astype(np.float32))


def test_facemesh_rejects_a_non_face(astronaut: np.ndarray) -> None:
    fake = Face(
        box=np.array([380, 20, 470, 110], np.float32),
        score=1.0,
        landmarks5=np.array([[400, 60], [450, 60], [425, 80], [405, 95], [445, 95]], np.float32),
    )
    lm = FaceLandmarker(OrtRunner(mediapipe_model("face_landmark")))
    assert lm.refine(np.ascontiguousarray(data.coffee()[:, :, ::-1]), fake) is None


@pytest.mark.parametrize("letterbox", [False, True])
def test_segmentation_covers_the_person(letterbox: bool, astronaut: np.ndarray) -> None:
    seg = SelfieSegmenter(OrtRunner(mediapipe_model("selfie_segmentation")), letterbox=letterbox)
    m = seg.mask(astronaut)
    assert m.dtype == np.float32 and m.shape == (256, 256)
    assert 0.0 <= m.min() and m.max() <= 1.0
    person = upsample(m, 512, 512) > 0.5
    x1, y1, x2, y2 = FACE_BOX
    assert person[y1:y2, x1:x2].mean() > 0.95  # face
    assert person[300:480, 60:260].mean() > 0.95  # orange suit
    assert person[0:60, 380:500].mean() < 0.05  # wall, top right
    assert person[0:120, 0:40].mean() < 0.1  # flag, top left
    assert person[150:250, 440:510].mean() < 0.1  # wall right of the shuttle model


@pytest.mark.parametrize("letterbox", [False, True])
def test_landscape_segmentation_on_a_widescreen_frame(letterbox: bool, astronaut: np.ndarray) -> None:
    frame, _ = _widescreen(astronaut, 1.2, 200, 0)
    seg = SelfieSegmenter(OrtRunner(mediapipe_model("selfie_segmentation_landscape")), LANDSCAPE_SIZE, letterbox)
    m = seg.mask(frame)
    assert m.shape == (144, 256)  # 16:9 frame on the 16:9 model: letterboxing pads nothing
    person = upsample(m, 640, 360) > 0.5
    assert person.shape == (360, 640)
    # face at photo (185..270, 65..170) -> frame x 1.2 * (x - 100) + 200, y 1.2 * y
    assert person[90:195, 310:395].mean() > 0.95
    assert person[:, :180].mean() < 0.05  # grey margin left
    assert person[:, 580:].mean() < 0.05  # grey margin right


def test_manifest_entries_match_files() -> None:
    entries = {m["name"]: m for m in tomllib.loads((ROOT / "models" / "manifest.toml").read_text())["model"]}
    names = (
        "face_detection_short",
        "face_detection_full",
        "face_landmark",
        "selfie_segmentation",
        "selfie_segmentation_landscape",
    )
    for name in names:
        e = entries[name]
        path = ROOT / "models" / e["file"]
        assert path == mediapipe_model(name)
        blob = path.read_bytes()
        assert e["sha256"] == hashlib.sha256(blob).hexdigest(), name
        assert e["size"] == len(blob), name
        assert e["license"] == "Apache-2.0"
        s = OrtRunner(path).session
        assert [(i["name"], i["shape"]) for i in e["inputs"]] == [(i.name, i.shape) for i in s.get_inputs()]
        assert [(o["name"], o["shape"]) for o in e["outputs"]] == [(o.name, o.shape) for o in s.get_outputs()]


def test_letterboxed_mask_drops_the_padding(astronaut: np.ndarray) -> None:
    """The square model on a 16:9 frame: the returned mask is the frame's 16:9 part of the model output."""
    frame, _ = _widescreen(astronaut, 1.2, 200, 0)
    m = SelfieSegmenter(OrtRunner(mediapipe_model("selfie_segmentation")), letterbox=True).mask(frame)
    assert m.shape == (144, 256)
    person = upsample(m, 640, 360) > 0.5
    assert person[90:195, 310:395].mean() > 0.95
    assert person[:, :180].mean() < 0.05


def test_nms_limit_cuts_after_suppression() -> None:
    """Regression: the limit was OpenCV's top_k, which cut the candidates before suppression, so the best
    face's duplicates filled max_faces and three faces came out as one."""
    from livefuse.vision.geometry import nms

    boxes, scores = [], []
    for x, best in ((10.0, 0.9), (200.0, 0.8), (400.0, 0.7)):  # three faces, four overlapping candidates each
        for k in range(4):
            boxes.append([x + k, 10.0 + k, x + 100.0 + k, 110.0 + k])
            scores.append(best - 0.01 * k)
    order = np.random.default_rng(0).permutation(len(boxes))  # candidates in no particular order
    b, s = np.array(boxes, np.float32)[order], np.array(scores, np.float32)[order]
    faces = [float(s[i]) for i in nms(b, s, 0.3, limit=3)]
    assert faces == pytest.approx([0.9, 0.8, 0.7])
    assert [float(s[i]) for i in nms(b, s, 0.3)] == faces
    assert [float(s[i]) for i in nms(b, s, 0.3, limit=2)] == pytest.approx([0.9, 0.8])


def test_the_wide_full_range_model_is_the_square_one_on_a_wide_input(astronaut: np.ndarray) -> None:
    """face_detection_full_wide (192x128) is face_detection_full's weights on a shorter input: in the
    whole-frame pass over a 16:9 frame it finds the same faces at the same places for a third less work.
    The shipped file is what tools/wide_detector.py derives from the shipped full-range model."""
    import sys

    import onnx

    sys.path.insert(0, str(ROOT / "tools"))
    from wide_detector import widen

    from livefuse.vision.tiled_detector import TiledDetector

    entries = {m["name"]: m for m in tomllib.loads((ROOT / "models" / "manifest.toml").read_text())["model"]}
    derived = widen(onnx.load(str(mediapipe_model("face_detection_full")))).SerializeToString()
    assert hashlib.sha256(derived).hexdigest() == entries["face_detection_full_wide"]["sha256"]

    square = BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_full")), variant="full")
    wide = BlazeFaceDetector(OrtRunner(mediapipe_model("face_detection_full_wide")), variant="full_wide")
    passes = TiledDetector(square, whole=square, wide=wide)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    for x, y, side in ((60, 150, 300), (500, 100, 420), (980, 380, 280)):  # three faces, side by side
        frame[y : y + side, x : x + side] = cv2.resize(
            astronaut[:260, 60:320], (side, side), interpolation=cv2.INTER_AREA
        )
    assert passes._whole_detector(1280, 720) is wide and passes._whole_detector(720, 1280) is square
    both = [passes._whole(HostPixels(frame), d) for d in (square, wide)]
    assert len(both[0]) == len(both[1]) == 3, both
    for a in both[0]:
        b = min(both[1], key=lambda f: float(np.abs(f.box - a.box).sum()))
        width = float(a.box[2] - a.box[0])
        assert np.abs(a.box - b.box).max() <= 0.06 * width, (a.box, b.box)
        # the five points of the smallest face (12 px tall in the model's input) move by up to 1.6 input px
        assert np.linalg.norm(a.landmarks5 - b.landmarks5, axis=1).max() <= 0.15 * width
