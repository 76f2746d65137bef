"""The `face` stage's work on a frame's pixels, wherever they are: detect, follow with FaceMesh, track, smooth.

`process` reads host frames; the device path (device.py) calls `find_faces` with the device frame's reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livefuse.frame import Face, Frame
from livefuse.stage import Stage, StageContext
from livefuse.vision.detectors import BlazeFaceDetector, RetinaFaceDetector, YuNetDetector
from livefuse.vision.geometry import box_overlaps
from livefuse.vision.landmarks import FaceLandmarker, Roi, arcface_points
from livefuse.vision.models import DETECTOR_MODELS, LANDMARK_MODEL, SCAN_MODEL, WIDE_MODEL
from livefuse.vision.pixels import FramePixels, HostPixels
from livefuse.vision.privacy_scan import LEVELS, PrivacyScan
from livefuse.vision.tiled_detector import TiledDetector
from livefuse.vision.tracking import FaceTracker

DETECT_SECONDS = 0.25  # detect_every = 0: detect this often
RESTART_GAP_S = 1.0  # capture times going back, or a gap this long: a new scene (source reopened)


def _follow_box(track_box: np.ndarray, before: Roi, after: Roi) -> np.ndarray:
    """The track's box moved and scaled as its FaceMesh crop moved and grew from `before` to `after`: the
    box keeps the detector's framing around a face the mesh follows."""
    k = after.side / max(before.side, 1e-6)
    x1, y1, x2, y2 = track_box.tolist()
    cx, cy = ((x1 + x2) / 2 - before.x) * k + after.x, ((y1 + y2) / 2 - before.y) * k + after.y
    hx, hy = (x2 - x1) / 2 * k, (y2 - y1) / 2 * k
    return np.array([cx - hx, cy - hy, cx + hx, cy + hy], np.float32)


class FaceStage(Stage):
    """Detect when needed, follow each face with FaceMesh in between, track and smooth; writes `frame.faces`."""

    name = "face"
    whole_every_scanned = 2  # before a privacy stage: frames between BlazeFace's whole-frame passes

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.fps = context.fps or 30.0
        self.context = context
        self.params = dict(params)
        kind = params["detector"]
        runner = context.model(params["model"], default=DETECTOR_MODELS[kind], where="face stage: model")
        score, limit = params["min_score"], params["max_faces"]
        # The detectors are given no face limit: the best max_faces detections are kept after suppression.
        self.detector: TiledDetector
        if kind in ("blazeface", "blazeface_full"):
            # Full range for the whole frame: it finds the mid-sized faces that short range's 128 px input
            # shrinks too far. Short range for the crops near tracked faces, where a face fills its cell,
            # and, for "blazeface", for the tiles.
            full = runner if kind == "blazeface_full" else context.model(DETECTOR_MODELS["blazeface_full"])
            short = runner if kind == "blazeface" else context.model(DETECTOR_MODELS["blazeface"])
            full_range = BlazeFaceDetector(full, score_threshold=score, variant="full")
            short_range = BlazeFaceDetector(short, score_threshold=score)
            wide = BlazeFaceDetector(context.model(WIDE_MODEL), score_threshold=score, variant="full_wide")
            tiles = short_range if kind == "blazeface" else full_range
            self.detector = TiledDetector(tiles, whole=full_range, close_range=short_range, wide=wide)
        elif kind == "yunet":
            self.detector = TiledDetector(
                YuNetDetector(runner, score_threshold=score, input_size=params["detect_size"]), tile=False
            )
        else:
            self.detector = TiledDetector(RetinaFaceDetector(runner, score_threshold=score), tile=False)
        self.max_faces = limit
        self.landmarker: FaceLandmarker | None = None
        if params["landmarks"]:
            self.landmarker = FaceLandmarker(context.model(LANDMARK_MODEL))
        self.tracker = FaceTracker(max_tracks=limit)
        self._configure()
        self._fresh = True  # no detection yet in this scene: the next frame gets a full one
        self._phase = 0  # frames since the scene's first detection (its place in the period: modulo detect_every)
        self._last_t: float | None = None
        self._guarding = False  # a privacy stage (anonymise) follows: scan every frame whatever the parameter
        self.scan: PrivacyScan | None = None  # built when a privacy stage follows
        self._raw: list[np.ndarray] = []  # this frame's detections, every pass's (for frame.privacy_boxes)
        self._next_rois: dict[int, tuple[np.ndarray, Roi]] = {}  # track id -> (its mesh, FaceMesh's next crop)

    def feeds_privacy(self) -> None:
        """Anonymise follows: every frame gets the whole-frame pass and the privacy scan, whatever
        `scan_every_frame` says, and every detection is passed on for covering."""
        self._guarding = True
        context = self.context
        runner = context.model(SCAN_MODEL, where="face stage: privacy scan")
        self.scan = PrivacyScan(YuNetDetector(runner), level=self.params["privacy_scan"])

    def describe(self) -> dict[str, Any]:
        """Before a privacy stage: the scan's level and the smallest face it looks for (px, at any frame size)."""
        if self.scan is None:
            return {}
        return {"privacy_scan": self.params["privacy_scan"], "smallest_face_px": self.scan.smallest_face}

    def _configure(self) -> None:
        p = self.params
        self.tracker.smooth = p["smoothing"]
        self.tracker.min_cutoff = p["min_cutoff"]
        self.tracker.beta = p["beta"]
        self.tracker.hold_frames = p["hold_frames"]
        for track in self.tracker.tracks:
            track.filter.min_cutoff, track.filter.beta = p["min_cutoff"], p["beta"]

    @property
    def detect_every(self) -> int:
        """Frames between full detections: the parameter, or about DETECT_SECONDS of frames when it is 0."""
        every = int(self.params["detect_every"])
        return every if every > 0 else max(1, round(self.fps * DETECT_SECONDS))

    def _time(self, frame: Frame) -> float:
        """The frame's capture time in seconds (its seq / fps where a source gave none)."""
        t = frame.capture_ns / 1e9 if frame.capture_ns > 0 else frame.seq / self.fps
        if self._last_t is not None and not 0 <= t - self._last_t <= RESTART_GAP_S:
            self.tracker.reset()  # time went back or jumped: the source was reopened, a new scene
            self._fresh = True
        self._last_t = t
        return t

    def _follow(self, image: FramePixels) -> tuple[list[Face], list[np.ndarray]]:
        """Each live track's face found again by FaceMesh where its last mesh was, and the last boxes of
        those it lost.

        A followed face's next crop is worked out here, from its new mesh, and kept for the next frame
        (`_next_rois`, by track, with the mesh it came from): the box follows the crop, so the crop is
        made once a frame, not once for the box and again for the next frame's FaceMesh run.
        """
        assert self.landmarker is not None
        followed: list[Face] = []
        lost: list[np.ndarray] = []
        next_rois = {}
        for track in self.tracker.tracks:
            if track.misses or track.raw.mesh is None:
                if not track.misses:  # a face without a mesh cannot be followed: detect
                    lost.append(track.face.box)
                continue
            kept = self._next_rois.get(track.id)
            if kept is not None and kept[0] is track.raw.mesh:
                roi = kept[1]
            else:  # a mesh that came from elsewhere (a detection): its crop is worked out now
                roi = self.landmarker.mesh_roi(track.raw.mesh)
            mesh, presence = self.landmarker.track(image, roi)
            if presence < self.landmarker.min_presence:
                lost.append(track.face.box)
                continue
            after = self.landmarker.mesh_roi(mesh)
            next_rois[track.id] = (mesh, after)
            followed.append(
                Face(
                    box=_follow_box(track.raw.box, roi, after),
                    score=track.raw.score,
                    landmarks5=arcface_points(mesh),
                    track_id=track.id,
                    mesh=mesh,
                )
            )
        self._next_rois = next_rois
        return followed, lost

    def _find(self, image: FramePixels, known: list[Face]) -> list[Face]:
        """Faces the detector finds that are not among `known` (refined by FaceMesh when landmarks are on).

        Tracked faces the whole-frame pass misses (small ones) are looked for near where they were (one
        mosaic of crops, one model run); the tiles, when they run, are for new small faces.
        """
        followed = {f.track_id for f in known}
        self.detector.near = [tr.face.box for tr in self.tracker.tracks if tr.id not in followed]
        found = sorted(self.detector.detect(image), key=lambda f: -f.score)
        self._raw += [f.box for f in found]
        boxes = [f.box for f in known]
        new: list[Face] = []
        if self.landmarker is None:
            return found  # the tracker matches them to its tracks and starts at most max_faces
        for face in found:
            if len(known) + len(new) >= self.max_faces:
                break
            if box_overlaps(face.box, boxes):
                continue  # followed already: FaceMesh's crop is better than a fresh detection
            refined = self.landmarker.refine(image, face)
            if refined is None and not self._guarding:
                # FaceMesh sees no face there: a false detection (the demo's suit badge), dropped as
                # MediaPipe's face mesh drops it. Kept, it could not be followed and made every frame detect.
                continue
            new.append(refined or face)  # before a privacy stage: the detector saw a face, so it is covered
            boxes.append(face.box)
        return new

    def process(self, frame: Frame) -> None:
        self.find_faces(frame, HostPixels(frame.image))

    def find_faces(self, frame: Frame, image: FramePixels) -> None:
        """`process` on the frame's pixels, wherever they are (host memory or the device)."""
        t = self._time(frame)
        self._raw = []
        followed, lost = self._follow(image) if self.landmarker is not None and self.tracker.tracks else ([], [])
        # Faces lost on this frame, or held since: looked for where they were, until they are back.
        lost += [tr.face.box for tr in self.tracker.tracks if tr.misses]
        whole, tiles = self._passes_due(lost, *image.shape[1::-1])
        if self.scan is not None:
            # The scan finds the small faces the tiles are for, on every frame: the tiles would only add cost.
            # BlazeFace's whole-frame pass keeps the tracks on every other frame (at once for a new scene or
            # a lost face): anonymise holds each cover through a frame without it, and the scan runs anyway.
            whole = tiles is None or bool(lost) or self._phase % self.whole_every_scanned == 0
            tiles = []
            self._raw += [f.box for f in self.scan.find(image)]
        if whole or tiles is None or tiles:
            self.detector.whole_now, self.detector.tiles_now = whole, tiles
            faces = followed + self._find(image, followed)
            frame.faces = self.tracker.update(faces, t)
        elif self.landmarker is not None:
            frame.faces = self.tracker.update(followed, t)
        else:
            frame.faces = self.tracker.predict(t)
        frame.faces_searched = True
        if self.scan is not None:
            frame.privacy_boxes = self._raw + [f.found_box for f in frame.faces if f.found_box is not None]

    def _passes_due(self, lost: list[np.ndarray], width: int, height: int) -> tuple[bool, list[int] | None]:
        """This frame's detector passes: (the whole-frame pass, which tiles; None: all of them).

        A full detection is the whole-frame pass and every tile; run on one frame, it made that frame
        several times slower than the rest (the p95 and p99). So within each period of `detect_every`
        frames the whole-frame pass runs first and the tiles follow one by one on the frames after it,
        where every tracked face is accounted for without them (FaceMesh follows it, or the scan runs);
        with no face in view the tiles take turns on every frame. A new scene gets the full detection at
        once. A lost face (`lost`: its last boxes) is looked for where it was: the whole-frame pass, the
        crop near its box, and the tile around it, beside the tiles already due; all tiles at once there
        made every flicker of a weak detection (the demo's suit badge, before anonymise) a 26 ms frame.
        The scan runs the whole-frame pass on every frame (before a privacy stage, always). As in
        MediaPipe's face mesh, a stage that follows max_faces faces with FaceMesh and scans for none has no
        use for new ones, and stops detecting until one is lost.
        """
        if self._fresh:
            self._fresh, self._phase = False, 0
            return True, None
        whole, tiles = self._passes_scheduled(width, height)
        if not lost:
            return whole, tiles
        return True, None if tiles is None else sorted(set(tiles) | self.detector.tiles_around(lost, width, height))

    def _passes_scheduled(self, width: int, height: int) -> tuple[bool, list[int] | None]:
        """The passes this frame's place in the detection period calls for (see `_passes_due`)."""
        self._phase += 1
        count, every = self.detector.tile_count(width, height), self.detect_every
        phase = self._phase % every
        scan = bool(self.params["scan_every_frame"]) or self._guarding
        if not self.tracker.tracks:
            return True, [self._phase % count] if count > 1 else []
        if self.landmarker is not None and not scan and len(self.tracker.tracks) >= self.max_faces:
            return False, []
        if count <= 1 or not (scan or self.landmarker is not None):
            return scan or phase == 0, None if phase == 0 else []
        # tile k on phase round((k + 1) * every / (count + 1)): after the whole-frame pass, evenly spread
        tiles = [k for k in range(count) if round((k + 1) * every / (count + 1)) % every == phase]
        return scan or phase == 0, tiles

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        self._configure()
        if self.scan is not None:
            self.scan.level = LEVELS[self.params["privacy_scan"]]

    def on_source_reopened(self) -> None:
        """A new scene: the faces tracked in the old one are gone; the next frame detects afresh."""
        self.tracker.reset()
        self._last_t = None
        self._fresh = True

    def close(self) -> None:
        self.on_source_reopened()
