"""The `face` stage: finds, tracks and steadies faces, filling `frame.faces` for the stages after it.

Finding faces afresh on every frame is the costly way. As MediaPipe's face-mesh graph does, the
detector runs only at the start, when a tracked face is lost, and every `detect_every` frames (about
0.25 s by default) to pick up new faces; in between, with `landmarks` on, each face's FaceMesh crop for
the next frame comes from its mesh on this one, and FaceMesh's face-presence score says when it is
lost: one FaceMesh run per face per frame is the whole cost. Without landmarks and without the scan
below, faces between detections move on by their smoothed velocity.

Privacy first: with `scan_every_frame` (the default) the detector also looks once at the whole,
downscaled frame on every frame (a single small model run), so a face entering between detections is
found, and covered by anonymise, on its first frame; the frame's side edges are mirrored so that a
face half out of the frame is found too. Detection proper adds BlazeFace's square tiles only for the
small faces a whole-frame pass cannot see; tracked small faces are looked for in one mosaic of crops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from livefuse.frame import Face, Frame
from livefuse.stages.base import DevicePath, Param, Stage, StageContext, StageSpec
from livefuse.stages.models import load_model
from livefuse.stages.registry import register
from livefuse.stages.tracking import FaceTracker
from livefuse.vision.detectors import BlazeFaceDetector, FaceDetector, RetinaFaceDetector, YuNetDetector
from livefuse.vision.geometry import iou_matrix
from livefuse.vision.landmarks import FaceLandmarker, arcface_points
from livefuse.vision.pixels import FramePixels, HostPixels, pixels_of

if TYPE_CHECKING:
    from livefuse.device.pixels import DeviceReads

DETECTOR_MODELS = {
    "blazeface": "face_detection_short",
    "blazeface_full": "face_detection_full",
    "yunet": "yunet",
    "retinaface": "retinaface_mobilenet0.25",
}
LANDMARK_MODEL = "face_landmark"
DETECT_SECONDS = 0.25  # detect_every = 0: detect this often
RESTART_GAP_S = 1.0  # capture times going back, or a gap this long: a new scene (source reopened)
# Faces smaller than this fraction of the frame's longer side are only a few pixels in a whole-frame pass,
# which finds them now and then and frames them coarsely: tracked ones are looked for in crops instead.
WHOLE_MIN_FACE = 0.07
EDGE_MIRROR = 0.1  # the whole-frame pass mirrors this fraction of the width beyond each side edge


class TiledDetector:
    """Overlapping square tiles for a square-input detector, and optionally one pass over the whole frame.

    A square-input detector (BlazeFace) shrinks a 16:9 frame's faces by its longer side. The tiles give
    small faces more pixels: neighbours overlap by at least half a tile, so every face smaller than that
    lies wholly inside one tile; detections cut by an inner tile border are dropped. With a `whole`
    detector (BlazeFace full range) the frame is also looked at in one piece, which finds large faces,
    and the stage may leave the tiles out (`tiled = False`) between full detections. A detector with a
    wide input (YuNet, RetinaFace) gets neither: it runs once on the frame.
    """

    def __init__(self, detector: FaceDetector, iou: float = 0.3, tile: bool = True,
                 whole: BlazeFaceDetector | None = None) -> None:
        self.detector = detector
        # The whole-frame pass (BlazeFace full range: it sees smaller faces); without one, tiles only.
        self.whole = whole
        self.iou = iou
        self.tile = tile
        # Set by the stage before each detect(): look in the tiles too, and near these tracked faces' boxes
        # where the whole-frame pass misses them (small faces).
        self.tiled = True
        self.near: list[np.ndarray] = []
        # Tiles are for a square-input detector (BlazeFace): their side is its input. 0: no tiles, no shrinking here.
        self.size = detector.size if tile and isinstance(detector, BlazeFaceDetector) else 0

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

    def detect(self, image: np.ndarray | FramePixels) -> list[Face]:
        """Faces in the frame (a host array, or `FramePixels` of a frame that stays on the device)."""
        image_bgr = pixels_of(image)
        if not self.size:  # a wide-input detector letterboxes the whole frame itself
            return list(self.detector.detect(image_bgr.host()))
        if self.whole is None:
            return self._merge(self._tiles(image_bgr), 0)
        h, w = image_bgr.shape[:2]
        found = self._whole(image_bgr, self.whole)
        # Tracked faces the whole pass saw too small to frame well, or missed, are looked for near their box.
        least = WHOLE_MIN_FACE * max(w, h)
        missed = [b for b in self.near if float(max(b[2:] - b[:2])) < least
                  or not _overlaps(b, [f.box for f in found])]
        if missed:
            found = self._near(image_bgr, missed, self.whole) + found
        first = len(found)
        if self.tiled and len(self.tiles(w, h)) > 1:
            found += self._tiles(image_bgr)
        return self._merge(found, first)

    def _whole(self, image_bgr: FramePixels, detector: BlazeFaceDetector) -> list[Face]:
        """The whole-frame pass, on the frame shrunk to the model's input with mirrored borders.

        A face half out of the frame is half a face, which detectors miss, and a face entering from the
        edge is just that on its first frames. Mirrored at the border it is a whole (symmetric) face:
        EDGE_MIRROR of the width is mirrored on the left and right (at a slightly smaller scale), the
        letterbox's free rows above and below are mirrored too. Mirror images of faces lying wholly
        inside the frame land outside it and are dropped.
        """
        h, w = image_bgr.shape[:2]
        side = detector.size
        pad = round(w * EDGE_MIRROR)
        scale = side / max(w + 2 * pad, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        left, top = (side - sw) // 2, (side - sh) // 2
        small = cv2.copyMakeBorder(image_bgr.resized(sw, sh), top, side - sh - top, left, side - sw - left,
                                   cv2.BORDER_REFLECT_101)
        offset = np.array([left, top], np.float32)
        found = []
        for face in detector.detect(small):
            box = (face.box - np.tile(offset, 2)) / scale
            centre = (box[:2] + box[2:]) / 2
            if 0 <= centre[0] < w and 0 <= centre[1] < h:
                found.append(Face(box=box, score=face.score, landmarks5=(face.landmarks5 - offset) / scale))
        return found

    def _near(self, image_bgr: FramePixels, boxes: list[np.ndarray], detector: BlazeFaceDetector) -> list[Face]:
        """Faces found in one mosaic of crops around `boxes`: a single model run for up to 9 faces.

        Each crop is a square 2.5 times its face, so the face lies whole inside its own cell, at a size
        the whole-frame pass could not give it.
        """
        size = detector.size
        boxes = boxes[:9]
        grid = int(np.ceil(np.sqrt(len(boxes))))
        cell = size // grid
        mosaic = np.zeros((size, size, 3), np.uint8)
        cells = []
        for k, box in enumerate(boxes):
            centre = (box[:2] + box[2:]) / 2
            side = max(float(max(box[2:] - box[:2])) * 2.5, 8.0)
            x0, y0 = centre - side / 2
            k_px = cell / side
            m = np.array([[k_px, 0, -x0 * k_px], [0, k_px, -y0 * k_px]], np.float32)  # frame -> cell pixels
            cx, cy = (k % grid) * cell, (k // grid) * cell
            mosaic[cy:cy + cell, cx:cx + cell] = image_bgr.warped(m, (cell, cell), inverse=False)
            cells.append((cx, cy, x0, y0, side / cell))
        out = []
        for face in detector.detect(mosaic):
            centre = (face.box[:2] + face.box[2:]) / 2
            for cx, cy, x0, y0, k in cells:
                origin = np.array([cx, cy], np.float32)
                inside = (face.box[:2] >= origin - 1).all() and (face.box[2:] <= origin + cell + 1).all()
                if inside and (origin <= centre).all() and (centre < origin + cell).all():
                    shift = np.array([x0, y0], np.float32)
                    out.append(Face(box=(face.box - np.tile(origin, 2)) * k + np.tile(shift, 2), score=face.score,
                                    landmarks5=(face.landmarks5 - origin) * k + shift))
                    break
        return out

    def _tiles(self, pixels: FramePixels) -> list[Face]:
        """Faces found in the square tiles of the frame, less those cut by a tile border."""
        # Shrink the frame once so each tile is already the model's input size (one resize, not one a tile).
        h, w = pixels.shape[:2]
        size = self.size
        scale = size / min(w, h) if size < min(w, h) else 1.0
        if scale < 1.0:
            image_bgr = pixels.resized(max(size, round(w * scale)), max(size, round(h * scale)))
            h, w = image_bgr.shape[:2]
        else:
            image_bgr = pixels.host()  # a frame no bigger than the tiles: used as it is
        found = []
        tiles = self.tiles(w, h)
        for x, y, side in tiles:
            margin = side * 0.01
            for face in self.detector.detect(image_bgr[y:y + side, x:x + side]):
                b = face.box
                cut = ((x > 0 and b[0] < margin) or (x + side < w and b[2] > side - margin)
                       or (y > 0 and b[1] < margin) or (y + side < h and b[3] > side - margin))
                if cut:
                    continue
                shift = np.array([x, y], np.float32)
                found.append(Face(box=(b + np.tile(shift, 2)) / scale, score=face.score,
                                  landmarks5=(face.landmarks5 + shift) / scale))
        return found

    def _merge(self, found: list[Face], first: int) -> list[Face]:
        # One face seen in two passes gives two boxes that need not overlap much: a box centred inside
        # another is the same face. The passes that run on every frame (near crops, then the whole frame)
        # go first, so a face keeps the same framing from frame to frame.
        kept: list[Face] = []
        for face in found[:first] + sorted(found[first:], key=lambda f: -f.score):
            if not _overlaps(face.box, [k.box for k in kept], self.iou):
                kept.append(face)
        return kept


def _follow_box(track_box: np.ndarray, track_mesh: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """The track's box moved and scaled as its mesh moved and grew (the box keeps the detector's framing)."""
    c0, c1 = track_mesh[:, :2].mean(0), mesh[:, :2].mean(0)
    s0 = float(np.sqrt(((track_mesh[:, :2] - c0) ** 2).sum(1).mean()))
    s1 = float(np.sqrt(((mesh[:, :2] - c1) ** 2).sum(1).mean()))
    k = s1 / max(s0, 1e-6)
    centre = ((track_box[:2] + track_box[2:]) / 2 - c0) * k + c1
    half = (track_box[2:] - track_box[:2]) / 2 * k
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def _overlaps(box: np.ndarray, boxes: list[np.ndarray], iou: float = 0.2) -> bool:
    """Whether `box` overlaps one of `boxes` or has its centre inside one (the same face, found twice)."""
    if not boxes:
        return False
    others = np.stack(boxes)
    centre = (box[:2] + box[2:]) / 2
    inside = (others[:, :2] <= centre).all(1) & (centre <= others[:, 2:]).all(1)
    return bool(inside.any() or (iou_matrix(box[None], others)[0] > iou).any())


class FaceStage(Stage):
    """Detect when needed, follow each face with FaceMesh in between, track and smooth; writes `frame.faces`."""

    name = "face"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.fps = context.fps or 30.0
        self.params = dict(params)
        kind = params["detector"]
        runner = load_model(context.engine, DETECTOR_MODELS[kind], params["model"], context.preset_dir,
                            where="face stage: model")
        score, limit = params["min_score"], params["max_faces"]
        # The detectors are given no face limit: the best max_faces detections are kept after suppression.
        self.detector: TiledDetector
        if kind == "blazeface_full":
            full_range = BlazeFaceDetector(runner, score_threshold=score, variant="full")
            self.detector = TiledDetector(full_range, whole=full_range)
        elif kind == "blazeface":
            # Short range for the tiles; one full-range pass over the whole frame finds the mid-sized faces
            # that a 128 px input shrinks too far.
            full = load_model(context.engine, DETECTOR_MODELS["blazeface_full"])
            self.detector = TiledDetector(BlazeFaceDetector(runner, score_threshold=score),
                                          whole=BlazeFaceDetector(full, score_threshold=score, variant="full"))
        elif kind == "yunet":
            self.detector = TiledDetector(YuNetDetector(runner, score_threshold=score,
                                                        input_size=params["detect_size"]), tile=False)
        else:
            self.detector = TiledDetector(RetinaFaceDetector(runner, score_threshold=score), tile=False)
        self.max_faces = limit
        self.landmarker: FaceLandmarker | None = None
        if params["landmarks"]:
            self.landmarker = FaceLandmarker(load_model(context.engine, LANDMARK_MODEL))
        self.tracker = FaceTracker(max_tracks=limit)
        if context.transfers is not None:
            from livefuse.device.pixels import DeviceReads

            self.device = FaceOnDevice(self, DeviceReads(context.engine, context.transfers, self.name))
        self._configure()
        self._since_detect = 0  # frames since the last full (tiled) detection
        self._last_t: float | None = None

    def _configure(self) -> None:
        p = self.params
        self.tracker.smooth = p["smoothing"]
        self.tracker.min_cutoff = p["min_cutoff"]
        self.tracker.beta = p["beta"]
        self.tracker.hold_frames = p["hold_frames"]
        for track in self.tracker.tracks:
            for f in (track.box_filter, track.points_filter, track.mesh_filter):
                f.min_cutoff, f.beta = p["min_cutoff"], p["beta"]

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
            self._since_detect = 0
        self._last_t = t
        return t

    def _follow(self, image: FramePixels) -> tuple[list[Face], bool]:
        """Each live track's face found again by FaceMesh where its last mesh was; True if one was lost."""
        assert self.landmarker is not None
        followed, lost = [], False
        for track in self.tracker.tracks:
            if track.misses or track.raw.mesh is None:
                lost = lost or not track.misses  # a face without a mesh cannot be followed: detect
                continue
            mesh, presence = self.landmarker.track(image, track.raw.mesh)
            if presence < self.landmarker.min_presence:
                lost = True
                continue
            box = _follow_box(track.raw.box, track.raw.mesh, mesh)
            followed.append(Face(box=box, score=track.raw.score, landmarks5=arcface_points(mesh),
                                 track_id=track.id, mesh=mesh))
        return followed, lost

    def _find(self, image: FramePixels, tiled: bool, known: list[Face]) -> list[Face]:
        """Faces the detector finds that are not among `known` (refined by FaceMesh when landmarks are on).

        Tracked faces the whole-frame pass misses (small ones) are looked for near where they were (one
        mosaic of crops, one model run); the tiles, when they run, are for new small faces.
        """
        followed = {f.track_id for f in known}
        self.detector.tiled = tiled
        self.detector.near = [tr.face.box for tr in self.tracker.tracks if tr.id not in followed]
        found = sorted(self.detector.detect(image), key=lambda f: -f.score)
        boxes = [f.box for f in known]
        new = []
        if self.landmarker is None:
            return found  # the tracker matches them to its tracks and starts at most max_faces
        for face in found:
            if len(known) + len(new) >= self.max_faces:
                break
            if _overlaps(face.box, boxes):
                continue  # followed already: FaceMesh's crop is better than a fresh detection
            refined = self.landmarker.refine(image, face)
            new.append(refined or face)  # FaceMesh saw nothing: the detector did, so keep it without a mesh
            boxes.append(face.box)
        return new

    def process(self, frame: Frame) -> None:
        self.find_faces(frame, HostPixels(frame.image))

    def find_faces(self, frame: Frame, image: FramePixels) -> None:
        """`process` on the frame's pixels, wherever they are (host memory or the device)."""
        t = self._time(frame)
        followed, lost = self._follow(image) if self.landmarker is not None and self.tracker.tracks else ([], False)
        # Detect on schedule, and whenever a face is lost (on this frame, or held since) until it is back.
        lost = lost or any(tr.misses for tr in self.tracker.tracks)
        periodic = self._since_detect + 1 >= self.detect_every or not self.tracker.tracks or lost
        scan = bool(self.params["scan_every_frame"])
        if periodic or scan:
            self._since_detect = 0 if periodic else self._since_detect + 1
            faces = followed + self._find(image, periodic, followed)
            frame.faces = self.tracker.update(faces, t)
        elif self.landmarker is not None:
            self._since_detect += 1
            frame.faces = self.tracker.update(followed, t)
        else:
            self._since_detect += 1
            frame.faces = self.tracker.predict(t)
        frame.faces_searched = True

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        self._configure()

    def on_source_reopened(self) -> None:
        """A new scene: the faces tracked in the old one are gone; the next frame detects afresh."""
        self.tracker.reset()
        self._last_t = None
        self._since_detect = 0

    def close(self) -> None:
        self.on_source_reopened()


class FaceOnDevice(DevicePath):
    """The face stage on a device frame: the detectors' shrunk inputs and FaceMesh's crops are made on the
    device (`livefuse.device.pixels`), and only they come to the host."""

    def __init__(self, stage: FaceStage, reads: DeviceReads) -> None:
        self.stage = stage
        self.reads = reads

    def run(self, frame: Frame) -> None:
        self.stage.find_faces(frame, self.reads.pixels(frame.device_image))


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
        Param("landmarks", bool, False, "also run FaceMesh (468 points) on every face; it then follows each "
              "face from frame to frame, so the detector runs only every detect_every frames", live=False),
        Param("detect_every", int, 0, "run the full detector every Nth frame and track in between (0: about "
              "0.25 s of frames at the source's rate)", min=0, max=300),
        Param("scan_every_frame", bool, True, "also look once at the whole downscaled frame every frame (one "
              "small model run), so a face entering between detections is found on its first frame; "
              "anonymise needs it, effects that can wait detect_every frames for a new face can turn it off"),
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
