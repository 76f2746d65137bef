"""The converted MediaPipe ONNX models against the reference TFLite interpreter, on real photos.

Uses the .tflite files committed in models/mediapipe/tflite/ (no network) and ai-edge-litert, which
runs MediaPipe's Convolution2DTransposeBias custom op, so the selfie models are checked end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import imread
from skimage import data

from livefuse.vision.detectors import BlazeFaceDetector
from livefuse.vision.hands import HandFinder
from livefuse.vision.landmarks import FaceLandmarker
from livefuse.vision.runner import OrtRunner

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is the TFLite reference")

MODELS = Path(__file__).resolve().parent.parent / "models"
MP = MODELS / "mediapipe"
# onnx name -> (tflite file, input range)
PAIRS = {
    "face_detection_short": ("face_detection_short_range.tflite", (-1.0, 1.0)),
    "face_detection_full": ("face_detection_full_range_sparse.tflite", (-1.0, 1.0)),  # densified in the ONNX
    "face_landmark": ("face_landmark.tflite", (0.0, 1.0)),
    "selfie_segmentation": ("selfie_segmentation.tflite", (0.0, 1.0)),
    "selfie_segmentation_landscape": ("selfie_segmentation_landscape.tflite", (0.0, 1.0)),
    "palm_detection": ("palm_detection_lite.tflite", (0.0, 1.0)),
    "hand_landmark": ("hand_landmark_lite.tflite", (0.0, 1.0)),
}
PHOTOS = {"astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee}
MAX_ABS_DIFF = 1e-3


def _reference(tflite: str) -> Any:
    it = litert.Interpreter(model_path=str(MP / "tflite" / tflite), num_threads=1)
    it.allocate_tensors()
    return it


def _run_both(name: str, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    it = _reference(PAIRS[name][0])
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    got = list(OrtRunner(MP / f"{name}.onnx").run({"input": _onnx_input(name, x)}).values())
    return ref, got


def _onnx_input(name: str, x: np.ndarray) -> np.ndarray:
    """The ONNX model's input for the reference's RGB floats `x`: FaceMesh's takes the uint8 BGR pixels that
    `x` (pixels / 255) was made from (tools/pixel_input.py)."""
    if OrtRunner(MP / f"{name}.onnx").session.get_inputs()[0].type != "tensor(uint8)":
        return x
    pixels = np.rint(x * 255.0)
    assert np.abs(pixels - x * 255.0).max() < 1e-3, "a pixel-input model is compared on whole pixel values"
    return np.ascontiguousarray(pixels.astype(np.uint8)[..., ::-1])


def _input(rgb: np.ndarray, width: int, height: int, lo: float, hi: float) -> np.ndarray:
    x = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return (x * (hi - lo) + lo)[None]


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_onnx_matches_tflite(name: str, photo: str) -> None:
    runner = OrtRunner(MP / f"{name}.onnx")
    shape = runner.session.get_inputs()[0].shape
    x = _input(PHOTOS[photo](), shape[2], shape[1], *PAIRS[name][1])
    ref, got = _run_both(name, x)
    assert runner.input_names == ["input"]
    assert len(ref) == len(got)
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        diff = float(np.abs(r - g).max())
        assert diff <= MAX_ABS_DIFF, f"{name} on {photo}: max abs diff {diff:.2e}"
    if name.startswith("selfie"):
        a, b = ref[0] > 0.5, got[0] > 0.5
        iou = (a & b).sum() / max((a | b).sum(), 1)
        assert iou >= 0.95 or (a | b).sum() == 0, f"{name} on {photo}: mask IoU {iou:.4f}"


def test_face_landmark_matches_on_aligned_crop() -> None:
    """FaceMesh on the crop it really gets (a face, not a whole photo), presence flag included."""
    bgr = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    face = BlazeFaceDetector(OrtRunner(MP / "face_detection_short.onnx")).detect(bgr)[0]
    lm = FaceLandmarker(OrtRunner(MP / "face_landmark.onnx"))
    crop = cv2.warpAffine(bgr, lm.crop_transform(face), (192, 192), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
    ref, got = _run_both("face_landmark", x)
    for r, g in zip(ref, got, strict=True):
        assert float(np.abs(r - g).max()) <= MAX_ABS_DIFF
    assert ref[1].item() > 5  # face present (logit)


def test_hand_models_on_real_hands() -> None:
    """The palm detector finds the real hands of MediaPipe's sample photos, and the hand landmarker matches
    TFLite on the crop it really gets there (the palm's turned crop), presence and handedness included."""
    data = Path(__file__).resolve().parent / "data"
    finder = HandFinder(OrtRunner(MP / "palm_detection.onnx"), OrtRunner(MP / "hand_landmark.onnx"))
    for name in ("mediapipe_two_hands.jpg", "mediapipe_thumbs_up_hand.png"):
        bgr = imread(data / name)
        crops = finder.palms(bgr)
        assert crops, name
        for m in crops:
            crop = cv2.warpAffine(bgr, m, (224, 224), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
            ref, got = _run_both("hand_landmark", x)
            for r, g in zip(ref, got, strict=True):
                assert float(np.abs(r - g).max()) <= MAX_ABS_DIFF, name
        hands = finder.find(bgr)
        assert hands and all(h.score > 0.9 for h in hands), name
        h, w = bgr.shape[:2]
        for hand in hands:  # the 21 points lie on the photo, spread over a hand-sized area
            assert (hand.points >= -5).all() and (hand.points <= (w + 5, h + 5)).all()
            assert np.ptp(hand.points, axis=0).max() > 0.2 * min(w, h)
