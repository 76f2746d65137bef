"""FaceMesh: 468 landmarks for a detected face, and the ArcFace five points read off the mesh.

The code around the network runs once per face per frame, after the frame's 33 ms pause, when every
distinct numpy call pays for caches the host emptied (measured: 0.12 ms for a 468-point affine that
takes 6 us on the next call). So scalars are done with `math`, and each step is as few numpy calls as
it can be: one matrix product for the five points, one for the mesh's mapping to frame pixels, and
the crop's pixels go to the model as they are (tools/pixel_input.py folded the rest into it).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from livefuse.frame import Face
from livefuse.vision.geometry import sigmoid_scalar
from livefuse.vision.pixels import FramePixels, pixels_of
from livefuse.vision.runner import Runner

# Contours of the 468-point mesh (MediaPipe's face_mesh_connections, each in order around the part); the
# eyes' means are the eye centres. The face modules (skin, kept regions) take them from here.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)  # subject's right
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
NOSE_TIP = 1
MOUTH_RIGHT = 61  # subject's right corner
MOUTH_LEFT = 291
RIGHT_EYE_CORNER = 33  # the outer corners MediaPipe levels its tracking crop on
LEFT_EYE_CORNER = 263


def _arcface_weights() -> np.ndarray:
    """[5, 468]: each row averages the mesh points of one ArcFace point (eye contours, nose tip, mouth corners)."""
    w = np.zeros((5, 468), np.float32)
    w[0, list(RIGHT_EYE)] = 1 / len(RIGHT_EYE)
    w[1, list(LEFT_EYE)] = 1 / len(LEFT_EYE)
    w[2, NOSE_TIP], w[3, MOUTH_RIGHT], w[4, MOUTH_LEFT] = 1, 1, 1
    return w


ARCFACE_WEIGHTS = _arcface_weights()


def arcface_points(mesh: np.ndarray) -> np.ndarray:
    """The five ArcFace-order points [5, 2] from a [468, 2+] mesh: the eye centres, the nose tip and the
    mouth corners."""
    return ARCFACE_WEIGHTS @ mesh[:, :2].astype(np.float32, copy=False)


class Roi(NamedTuple):
    """A square crop of the frame: its centre and side in frame pixels, and its turn in radians."""

    x: float
    y: float
    side: float
    angle: float


class FaceLandmarker:
    """MediaPipe FaceMesh (192x192, fed the crop's uint8 BGR pixels) on a crop aligned to a detected face.

    The crop follows MediaPipe's face_detection_front_detection_to_roi: centred on the box, square,
    1.5x its longer side, rotated so the eyes are level. `refine` returns a copy of the face with `mesh`
    (x, y in frame pixels, z at the same scale) and `landmarks5` from the mesh; the box is kept.
    """

    size = 192

    def __init__(self, runner: Runner, scale: float = 1.5, min_presence: float = 0.5, mesh_scale: float = 1.5) -> None:
        self.runner = runner
        self.scale = scale
        self.mesh_scale = mesh_scale
        self.min_presence = min_presence
        self.input_name = runner.input_names[0]

    def crop_transform(self, face: Face) -> np.ndarray:
        """2x3 affine map from crop pixels to frame pixels for this face."""
        return self.roi_matrix(self.detection_roi(face))

    def detection_roi(self, face: Face) -> Roi:
        """The crop for a detected face: its box's centre, `scale` times its longer side, eyes level."""
        (rx, ry), (lx, ly) = face.landmarks5[:2].tolist()
        x1, y1, x2, y2 = face.box.tolist()
        return Roi((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * self.scale, math.atan2(ly - ry, lx - rx))

    def mesh_roi(self, mesh: np.ndarray) -> Roi:
        """The crop for the next frame from this frame's mesh, as MediaPipe's face_landmarks_to_roi.

        The mesh's bounding rectangle in the face's own (eye-levelled) axes, squared on its longer side
        and scaled by `mesh_scale`: no detector is needed while the face stays in view.
        """
        (rx, ry), (lx, ly) = mesh[[RIGHT_EYE_CORNER, LEFT_EYE_CORNER], :2].tolist()
        angle = math.atan2(ly - ry, lx - rx)
        c, s = math.cos(angle), math.sin(angle)
        local = mesh[:, :2] @ np.array([[c, -s], [s, c]], np.float32)  # frame -> face axes
        (lo_x, lo_y), (hi_x, hi_y) = local.min(0).tolist(), local.max(0).tolist()
        mx, my = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
        return Roi(c * mx - s * my, s * mx + c * my, max(hi_x - lo_x, hi_y - lo_y) * self.mesh_scale, angle)

    def roi_matrix(self, roi: Roi) -> np.ndarray:
        """The 2x3 map from the crop's pixels to the frame's for `roi`."""
        k = roi.side / self.size
        c, s = math.cos(roi.angle) * k, math.sin(roi.angle) * k
        h = self.size / 2
        return np.array([[c, -s, roi.x - (c - s) * h], [s, c, roi.y - (s + c) * h]], np.float32)

    def run(self, image_bgr: np.ndarray | FramePixels, face: Face) -> tuple[np.ndarray, float]:
        """Mesh [468, 3] in frame pixels and the face-presence probability."""
        return self.run_crop(image_bgr, self.crop_transform(face))

    def track(self, image_bgr: np.ndarray | FramePixels, roi: Roi) -> tuple[np.ndarray, float]:
        """This frame's mesh and face-presence probability in the crop `roi` (`mesh_roi` of the last mesh)."""
        return self.run_crop(image_bgr, self.roi_matrix(roi))

    def run_crop(self, image_bgr: np.ndarray | FramePixels, m: np.ndarray) -> tuple[np.ndarray, float]:
        """FaceMesh on the crop that the 2x3 map `m` (crop -> frame pixels) takes out of the frame."""
        crop = pixels_of(image_bgr).warped(m, (self.size, self.size))
        out = self.runner.run({self.input_name: crop[None]})  # the model takes the pixels (tools/pixel_input.py)
        raw = out.get("landmarks", out[self.runner.output_names[0]]).reshape(468, 3)
        flag = out.get("face_flag", out[self.runner.output_names[1]]).reshape(-1)[0]
        (a, b, tx), (c, d, ty) = m.tolist()
        # x, y through the crop's affine map; z scaled as the crop is (its map's scale)
        mesh = raw @ np.array([[a, c, 0], [b, d, 0], [0, 0, math.hypot(a, c)]], np.float32)
        mesh += np.array([tx, ty, 0], np.float32)
        return mesh, sigmoid_scalar(float(flag))

    def refine(self, image_bgr: np.ndarray | FramePixels, face: Face) -> Face | None:
        """The face with its mesh and mesh-derived five points, or None when FaceMesh sees no face there."""
        mesh, presence = self.run(image_bgr, face)
        if presence < self.min_presence:
            return None
        return Face(
            box=face.box.copy(),
            score=face.score,
            landmarks5=arcface_points(mesh),
            track_id=face.track_id,
            mesh=mesh,
            held=face.held,
        )
