"""Built-in vision models' adapters: raw model outputs -> faces, landmarks and person masks.

Each adapter takes a `Runner` (the engine's ModelSession, or `OrtRunner` in tests and tools) and does
its own pre- and post-processing with OpenCV and NumPy, so the engine only moves tensors. Beside them:
the one model loader (`models`), the face detector's passes (`tiled_detector`), and what follows faces
over time (`tracking`, `smoothing`, `spring`).
"""

from livefuse.vision.detectors import BlazeFaceDetector, FaceDetector, RetinaFaceDetector, YuNetDetector
from livefuse.vision.geometry import MODELS_DIR, mediapipe_model
from livefuse.vision.landmarks import FaceLandmarker, arcface_points
from livefuse.vision.runner import OrtRunner, Runner
from livefuse.vision.segmentation import GENERAL_SIZE, LANDSCAPE_SIZE, SelfieSegmenter, upsample

__all__ = [
    "GENERAL_SIZE",
    "LANDSCAPE_SIZE",
    "MODELS_DIR",
    "BlazeFaceDetector",
    "FaceDetector",
    "FaceLandmarker",
    "OrtRunner",
    "RetinaFaceDetector",
    "Runner",
    "SelfieSegmenter",
    "YuNetDetector",
    "arcface_points",
    "mediapipe_model",
    "upsample",
]
