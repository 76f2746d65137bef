"""The model names the detectors, trackers and landmarkers load (the loader is `engine/loader.py`)."""

from __future__ import annotations

# The face models by name: the face stage loads them, and faces/ finds the largest face of a still with them.
DETECTOR_MODELS = {
    "blazeface": "face_detection_short",
    "blazeface_full": "face_detection_full",
    "yunet": "yunet",
    "retinaface": "retinaface_mobilenet0.25",
}
WIDE_MODEL = "face_detection_full_wide"  # full range with a 192x128 input: the whole-frame pass on wide frames
LANDMARK_MODEL = "face_landmark"
SCAN_MODEL = "yunet"  # the privacy scan's detector: another family than BlazeFace (bundled, MIT)
