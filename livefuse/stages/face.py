"""The `face` stage: finds, tracks and steadies faces, filling `frame.faces` for the stages after it.

Detection runs on a downscaled frame (each detector's own input size). BlazeFace's square 128x128
input would shrink a 16:9 frame's faces to a few pixels, so it looks at overlapping square tiles
instead. With `detect_every` > 1 the detector runs on every Nth frame and the frames between are
tracked: by FaceMesh when `landmarks` is on (a mesh is found from the previous position, as
MediaPipe does), else by moving each box along its smoothed velocity.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from livefuse.frame import Face, Frame
from livefuse.stages.base import Param, StageContext, StageSpec
from livefuse.stages.models import load_model
from livefuse.stages.registry import register
from livefuse.stages.tracking import FaceTracker
from livefuse.vision.detectors import BlazeFaceDetector, FaceDetector, RetinaFaceDetector, YuNetDetector
from livefuse.vision.geometry import nms
from livefuse.vision.landmarks import FaceLandmarker

DETECTOR_MODELS = {
    "blazeface": "face_detection_short",
    "blazeface_full": "face_detection_full",
    "yunet": "yunet",
    "retinaface": "retinaface_mobilenet0.25",
}
LANDMARK_MODEL = "face_landmark"
FACES_RAN = "faces_detected"  # frame.meta key: set when a face stage looked at the frame


class TiledDetector:
    """Runs a square-input detector on overlapping square tiles spanning a wide (or tall) frame.

    Neighbouring tiles overlap by at least half a tile, so every face smaller than that lies wholly
    inside one tile; detections cut by an inner tile border are dropped, the rest merged by NMS.
    """

    def __init__(self, detector: FaceDetector, iou: float = 0.3) -> None:
        self.detector = detector
        self.iou = iou

    @staticmethod
    def tiles(width: int, height: int) -> list[tuple[int, int, int]]:
        """(x, y, side) of each square tile."""
        side = min(width, height)
        span = max(width, height)
        if span <= side * 1.05:
            return [(0, 0, side)]
        count = int(np.ceil(2 * span / side)) - 1  # step <= side / 2
        starts = np.linspace(0, span - side, count).round().astype(int)
        return [(int(s), 0, side) if width >= height else (0, int(s), side) for s in starts]

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        # Shrink the frame once so each tile is already the model's input size (one resize, not one a tile).
        size = getattr(self.detector, "size", 0)
        h, w = image_bgr.shape[:2]
        scale = size / min(w, h) if size and size < min(w, h) else 1.0
        if scale < 1.0:
            image_bgr = cv2.resize(image_bgr, (max(size, round(w * scale)), max(size, round(h * scale))),
                                   interpolation=cv2.INTER_AREA)
            h, w = image_bgr.shape[:2]
        found: list[Face] = []
        tiles = self.tiles(w, h)
        for x, y, side in tiles:
            margin = side * 0.01
            for face in self.detector.detect(image_bgr[y:y + side, x:x + side]):
                b = face.box
                cut = len(tiles) > 1 and (
                    (x > 0 and b[0] < margin) or (x + side < w and b[2] > side - margin)
                    or (y > 0 and b[1] < margin) or (y + side < h and b[3] > side - margin))
                if cut:
                    continue
                shift = np.array([x, y], np.float32)
                found.append(Face(box=(b + np.tile(shift, 2)) / scale, score=face.score,
                                  landmarks5=(face.landmarks5 + shift) / scale))
        if len(tiles) == 1 or not found:
            return found
        keep = nms(np.stack([f.box for f in found]), np.array([f.score for f in found]), self.iou)
        return [found[i] for i in keep]


def _box_of_mesh_shift(face: Face, refined: Face) -> Face:
    """The refined face with its box moved by how far the mesh moved (FaceMesh tracking keeps box size)."""
    assert face.mesh is not None and refined.mesh is not None
    delta = refined.mesh[:, :2].mean(0) - face.mesh[:, :2].mean(0)
    refined.box = (face.box + np.tile(delta, 2)).astype(np.float32)
    return refined


class FaceStage:
    """Detect (every Nth frame), refine with FaceMesh, track and smooth; writes `frame.faces`."""

    name = "face"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.fps = context.fps or 30.0
        self.params = dict(params)
        kind = params["detector"]
        runner = load_model(context.engine, DETECTOR_MODELS[kind], params["model"], context.preset_dir,
                            where="face stage: model")
        score, limit = params["min_score"], params["max_faces"]
        # The detectors are given no face limit: the best max_faces detections are kept after suppression.
        self.detector: FaceDetector
        if kind in ("blazeface", "blazeface_full"):
            variant = "full" if kind == "blazeface_full" else "short"
            self.detector = TiledDetector(BlazeFaceDetector(runner, score_threshold=score, variant=variant))
        elif kind == "yunet":
            self.detector = YuNetDetector(runner, score_threshold=score, input_size=params["detect_size"])
        else:
            self.detector = RetinaFaceDetector(runner, score_threshold=score)
        self.max_faces = limit
        self.landmarker: FaceLandmarker | None = None
        if params["landmarks"]:
            self.landmarker = FaceLandmarker(load_model(context.engine, LANDMARK_MODEL))
        self.tracker = FaceTracker(max_tracks=limit)
        self._configure()
        self._count = 0

    def _configure(self) -> None:
        p = self.params
        self.tracker.smooth = p["smoothing"]
        self.tracker.min_cutoff = p["min_cutoff"]
        self.tracker.beta = p["beta"]
        self.tracker.hold_frames = p["hold_frames"]
        for track in self.tracker.tracks:
            for f in (track.box_filter, track.points_filter, track.mesh_filter):
                f.min_cutoff, f.beta = p["min_cutoff"], p["beta"]

    def _refine(self, image: np.ndarray, faces: list[Face], tracking: bool) -> list[Face]:
        """FaceMesh on each face; in tracking mode a face FaceMesh no longer sees is dropped (a miss)."""
        if self.landmarker is None:
            return faces
        out = []
        for face in faces:
            refined = self.landmarker.refine(image, face)
            if refined is None:
                if not tracking:
                    out.append(face)  # the detector saw it: keep it, without a mesh
                continue
            out.append(_box_of_mesh_shift(face, refined) if tracking and face.mesh is not None else refined)
        return out

    def process(self, frame: Frame) -> None:
        t = frame.seq / self.fps
        detect = self._count % self.params["detect_every"] == 0 or not self.tracker.tracks
        self._count += 1
        if detect:
            found = sorted(self.detector.detect(frame.image), key=lambda f: -f.score)[: self.max_faces]
            faces = self._refine(frame.image, found, tracking=False)
            frame.faces = self.tracker.update(faces, t)
        elif self.landmarker is not None:
            live = [f for f in self.tracker.predict(t) if not f.held]
            frame.faces = self.tracker.update(self._refine(frame.image, live, tracking=True), t)
        else:
            frame.faces = self.tracker.predict(t)
        frame.meta[FACES_RAN] = True

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        self._configure()

    def close(self) -> None:
        self.tracker.reset()


SPEC = register(StageSpec(
    type="face",
    summary="Find faces (box, score, five points, optional 468-point mesh), track them with stable ids and "
            "smooth them with a One Euro filter; the face effects after it use them",
    params=(
        Param("detector", str, "blazeface", "blazeface (bundled, faces within ~2 m), blazeface_full (bundled, "
              "up to ~5 m: small faces), yunet or retinaface (pulled models)",
              choices=tuple(DETECTOR_MODELS), live=False),
        Param("model", str, "", "path of the detector's .onnx file instead of the named model (relative to the "
              "preset)", live=False, kind="file"),
        Param("min_score", float, 0.65, "detections scoring below this are ignored (lower finds more faces and "
              "more false alarms)", min=0.05, max=1.0, live=False),
        Param("max_faces", int, 4, "at most this many faces", min=1, max=32, live=False),
        Param("landmarks", bool, False, "also run FaceMesh (468 points) on every face", live=False),
        Param("detect_every", int, 1, "run the detector on every Nth frame and track in between", min=1, max=30),
        Param("detect_size", int, 320, "yunet: longer side of the downscaled frame it looks at", min=96,
              max=1920, live=False),
        Param("smoothing", bool, True, "One Euro smoothing of boxes and landmarks"),
        Param("min_cutoff", float, 1.0, "One Euro cutoff (Hz) when still: lower is steadier", min=0.01, max=30.0),
        Param("beta", float, 5.0, "One Euro speed coefficient: higher follows fast motion with less lag",
              min=0.0, max=1000.0),
        Param("hold_frames", int, 2, "keep a face this many frames after the detector loses it (marked held)",
              min=0, max=120),
    ),
    factory=FaceStage,
    models=(*DETECTOR_MODELS.values(), LANDMARK_MODEL),
))
