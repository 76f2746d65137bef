"""The `beauty` stage: skin smoothing, eye enlarging and face slimming from the face's landmarks.

Everything happens inside each face's own region of the frame, never full-frame: smoothing is an
edge-aware filter blended through the FaceMesh skin mask (eyes, brows and lips stay sharp), and the
warps are local displacement fields applied with one `cv2.remap`. Smoothing and slimming need the
468-point mesh (`face` stage with landmarks = true); eye enlarging works from the five points alone.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from livefuse.faces.skin import guided_smooth, skin_mask
from livefuse.faces.warp import local_translate, radial_scale
from livefuse.frame import Face, Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register

log = logging.getLogger("livefuse.stages.beauty")

EYE_RADIUS = 0.45  # of the distance between the eye centres: a circle a little wider than the eye
MAX_EYE_AMOUNT = 0.3  # magnification 1 / (1 - 0.3) = 1.43 at the pupil for strength 1
SLIM_RADIUS = 0.35  # of the face width
MAX_SLIM_MOVE = 0.06  # of the face width, for strength 1
# Jaw and cheek points of the mesh, pushed towards the face's centre line (subject's right, then left).
JAW_RIGHT = (132, 58, 172)
JAW_LEFT = (361, 288, 397)
NOSE_BRIDGE = 168
CHIN = 152
Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels


def eye_warp(face: Face, strength: float) -> list[tuple[np.ndarray, float, float]]:
    """(centre, radius, amount) of each eye's magnification."""
    right, left = face.landmarks5[0].astype(np.float64), face.landmarks5[1].astype(np.float64)
    radius = EYE_RADIUS * float(np.linalg.norm(left - right))
    return [(right, radius, MAX_EYE_AMOUNT * strength), (left, radius, MAX_EYE_AMOUNT * strength)]


def slim_warp(face: Face, strength: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """(centre, radius, move) for each side's lower cheek, moving it towards the face's vertical centre line.

    One translation per side: overlapping ones would add up to more than the intended move, and the two
    circles are kept small enough not to meet at the chin.
    """
    assert face.mesh is not None
    mesh = face.mesh[:, :2].astype(np.float64)
    top, bottom = mesh[NOSE_BRIDGE], mesh[CHIN]
    axis = (bottom - top) / max(float(np.linalg.norm(bottom - top)), 1e-6)
    width = float(np.linalg.norm(mesh[454] - mesh[234]))
    out = []
    for side in (JAW_RIGHT, JAW_LEFT):
        p = mesh[list(side)].mean(0)
        foot = top + axis * float((p - top) @ axis)  # nearest point of the centre line
        inward = (foot - p) / max(float(np.linalg.norm(foot - p)), 1e-6)
        radius = min(SLIM_RADIUS * width, 0.95 * float(np.linalg.norm(foot - p)))
        out.append((p, radius, inward * MAX_SLIM_MOVE * width * strength))
    return out


def face_region(
    face: Face, circles: list[tuple[np.ndarray, float]], frame_shape: tuple[int, ...], margin: float = 0.1
) -> tuple[int, int, int, int]:
    """Frame box x1, y1, x2, y2 holding the face (mesh or box, plus a margin) and every warp circle."""
    pts = face.mesh[:, :2] if face.mesh is not None else face.box.reshape(2, 2)
    lo, hi = pts.min(0).astype(np.float64), pts.max(0).astype(np.float64)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    for centre, radius in circles:
        lo = np.minimum(lo, centre - radius - 1)
        hi = np.maximum(hi, centre + radius + 1)
    h, w = frame_shape[:2]
    x1, y1 = max(0, int(np.floor(lo[0]))), max(0, int(np.floor(lo[1])))
    x2, y2 = min(w, int(np.ceil(hi[0]))), min(h, int(np.ceil(hi[1])))
    return x1, y1, x2, y2


class BeautyStage(Stage):
    """Smooth skin, enlarge eyes and slim the face of every face in the frame."""

    name = "beauty"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self._warned = False
        if context is not None and context.transfers is not None:  # None: built bare, by a test
            from livefuse.device.regions import OnRegions

            self.device = OnRegions(self, context.engine, context.transfers)

    def process(self, frame: Frame) -> None:
        for face in frame.faces:
            self.apply(frame.image, face)

    def _plan(self, face: Face, shape: tuple[int, ...]) -> tuple[Region, list[Any], list[Any]] | None:
        """(frame region, eye warps, slim warps) for one face, or None when nothing is to be done to it."""
        smooth, eyes, slim = self.params["smooth"], self.params["eye_enlarge"], self.params["face_slim"]
        has_mesh = face.mesh is not None
        eye_w = eye_warp(face, eyes) if eyes > 0 else []
        slim_w = slim_warp(face, slim) if slim > 0 and has_mesh else []
        if not (eye_w or slim_w or (smooth > 0 and has_mesh)):
            return None
        circles = [(c, r) for c, r, _ in eye_w] + [(c, r) for c, r, _ in slim_w]
        x1, y1, x2, y2 = face_region(face, circles, shape)
        if x2 - x1 < 4 or y2 - y1 < 4:
            return None
        return (x1, y1, x2, y2), eye_w, slim_w

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[Region]:
        """Each face's region: all `process` reads and writes (the device path's regions)."""
        plans = (self._plan(face, shape) for face in frame.faces)
        return [plan[0] for plan in plans if plan is not None]

    def apply(self, image: np.ndarray, face: Face) -> None:
        """Beautify one face of `image` in place."""
        smooth = self.params["smooth"]
        if face.mesh is None and (smooth > 0 or self.params["face_slim"] > 0) and not self._warned:
            self._warned = True
            log.warning(
                "beauty: faces have no mesh, so only eye_enlarge works; set landmarks = true in the preset's face stage"
            )
        has_mesh = face.mesh is not None
        plan = self._plan(face, image.shape)
        if plan is None:
            return
        (x1, y1, x2, y2), eye_w, slim_w = plan
        roi = image[y1:y2, x1:x2]
        work: np.ndarray = roi.astype(np.float32)
        width = float(face.box[2] - face.box[0])
        if smooth > 0 and has_mesh:
            assert face.mesh is not None
            mask = skin_mask(face.mesh, (x1, y1), (y2 - y1, x2 - x1), width)
            radius = max(2, round(width * 0.03))
            eps = (4.0 + 16.0 * smooth) ** 2  # intensity steps below ~eps^0.5 are texture, above are edges
            smoothed = guided_smooth(work, radius, eps)
            work += (smoothed - work) * (mask * smooth)[..., None]
        if eye_w or slim_w:
            ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32)
            dx = np.zeros_like(xs)
            dy = np.zeros_like(ys)
            for centre, radius_e, amount in eye_w:
                ex, ey = radial_scale(xs, ys, centre, radius_e, amount)
                dx += ex
                dy += ey
            for centre, radius_s, move in slim_w:
                sx, sy = local_translate(xs, ys, centre, radius_s, move)
                dx += sx
                dy += sy
            work = cv2.remap(work, xs - x1 + dx, ys - y1 + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        roi[:] = np.clip(work + 0.5, 0, 255).astype(np.uint8)

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def close(self) -> None:
        pass


SPEC = register(
    StageSpec(
        type="beauty",
        summary="Skin smoothing inside the face mesh's skin region, eye enlarging and face slimming (built-in "
        "models only; needs a `face` stage with landmarks = true before it)",
        params=(
            Param("smooth", float, 0.5, "skin smoothing (eyes, brows and lips stay sharp)", min=0.0, max=1.0),
            Param("eye_enlarge", float, 0.2, "eye magnification", min=0.0, max=1.0),
            Param("face_slim", float, 0.2, "pull the jaw and cheeks in", min=0.0, max=1.0),
        ),
        factory=BeautyStage,
    )
)
