"""FaceMesh: 468 landmarks for a detected face, and the ArcFace five points read off the mesh."""

from __future__ import annotations

import numpy as np

from livefuse.frame import Face
from livefuse.vision.geometry import rgb_tensor, sigmoid
from livefuse.vision.pixels import FramePixels, pixels_of
from livefuse.vision.runner import Runner

# Eye contours of the 468-point mesh; their means are the eye centres.
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]  # subject's right
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
NOSE_TIP = 1
MOUTH_RIGHT = 61  # subject's right corner
MOUTH_LEFT = 291
RIGHT_EYE_CORNER = 33  # the outer corners MediaPipe levels its tracking crop on
LEFT_EYE_CORNER = 263


def arcface_points(mesh: np.ndarray) -> np.ndarray:
    """The five ArcFace-order points [5, 2] from a [468, 2+] mesh."""
    return np.stack(
        [
            mesh[RIGHT_EYE, :2].mean(0),
            mesh[LEFT_EYE, :2].mean(0),
            mesh[NOSE_TIP, :2],
            mesh[MOUTH_RIGHT, :2],
            mesh[MOUTH_LEFT, :2],
        ]
    ).astype(np.float32)


class FaceLandmarker:
    """MediaPipe FaceMesh (192x192, inputs in [0, 1]) on a crop aligned to a detected face.

    The crop follows MediaPipe's face_detection_front_detection_to_roi: centred on the box, square,
    1.5x its longer side, rotated so the eyes are level. `refine` returns a copy of the face with `mesh`
    (x, y in frame pixels, z at the same scale) and `landmarks5` from the mesh; the box is kept.
    """

    size = 192

    def __init__(self, runner: Runner, scale: float = 1.5, min_presence: float = 0.5,
                 mesh_scale: float = 1.5) -> None:
        self.runner = runner
        self.scale = scale
        self.mesh_scale = mesh_scale
        self.min_presence = min_presence
        self.input_name = runner.input_names[0]

    def crop_transform(self, face: Face) -> np.ndarray:
        """2x3 affine map from crop pixels to frame pixels for this face."""
        right_eye, left_eye = face.landmarks5[0], face.landmarks5[1]
        dx, dy = left_eye - right_eye
        angle = float(np.arctan2(dy, dx))
        x1, y1, x2, y2 = face.box
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32)
        return self._transform(centre, max(x2 - x1, y2 - y1) * self.scale, angle)

    def mesh_transform(self, mesh: np.ndarray) -> np.ndarray:
        """The crop for the next frame from this frame's mesh, as MediaPipe's face_landmarks_to_roi.

        The mesh's bounding rectangle in the face's own (eye-levelled) axes, squared on its longer side
        and scaled by `mesh_scale`: no detector is needed while the face stays in view.
        """
        right_eye, left_eye = mesh[RIGHT_EYE_CORNER, :2], mesh[LEFT_EYE_CORNER, :2]
        dx, dy = left_eye - right_eye
        angle = float(np.arctan2(dy, dx))
        c, s = np.cos(angle), np.sin(angle)
        pts = mesh[:, :2]
        local = pts @ np.array([[c, -s], [s, c]], np.float32)  # frame -> face axes
        lo, hi = local.min(0), local.max(0)
        mid = (lo + hi) / 2
        centre = np.array([c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]], np.float32)
        return self._transform(centre, float((hi - lo).max()) * self.mesh_scale, angle)

    def _transform(self, centre: np.ndarray, side: float, angle: float) -> np.ndarray:
        k = side / self.size
        c, s = np.cos(angle) * k, np.sin(angle) * k
        rot = np.array([[c, -s], [s, c]], np.float32)
        offset = centre - rot @ np.array([self.size / 2, self.size / 2], np.float32)
        return np.concatenate([rot, offset[:, None]], axis=1)

    def run(self, image_bgr: np.ndarray | FramePixels, face: Face) -> tuple[np.ndarray, float]:
        """Mesh [468, 3] in frame pixels and the face-presence probability."""
        return self.run_crop(image_bgr, self.crop_transform(face))

    def track(self, image_bgr: np.ndarray | FramePixels, mesh: np.ndarray) -> tuple[np.ndarray, float]:
        """This frame's mesh and face-presence probability, looked for where the last frame's `mesh` was."""
        return self.run_crop(image_bgr, self.mesh_transform(mesh))

    def run_crop(self, image_bgr: np.ndarray | FramePixels, m: np.ndarray) -> tuple[np.ndarray, float]:
        """FaceMesh on the crop that the 2x3 map `m` (crop -> frame pixels) takes out of the frame."""
        crop = pixels_of(image_bgr).warped(m, (self.size, self.size))
        x = rgb_tensor(crop, 1 / 255.0)
        out = self.runner.run({self.input_name: x})
        raw = out.get("landmarks", out[self.runner.output_names[0]]).reshape(468, 3)
        flag = out.get("face_flag", out[self.runner.output_names[1]]).reshape(-1)[0]
        mesh = np.empty((468, 3), np.float32)
        mesh[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        mesh[:, 2] = raw[:, 2] * float(np.hypot(m[0, 0], m[1, 0]))
        return mesh, float(sigmoid(np.asarray(flag, np.float32)))

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
