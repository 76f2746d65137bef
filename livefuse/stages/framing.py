"""The `frame` stage (auto-framing): crops and zooms so the faces keep a chosen size and headroom.

It reads `frame.faces` from a `face` stage before it. The crop keeps the output's aspect and size: the
picture is cut from the source and scaled back up with one `cv2.warpAffine` at sub-pixel positions, so
motion is smooth rather than stepping by whole pixels. The crop follows the faces with a critically damped
spring (no overshoot) and a dead zone: moves smaller than `dead_zone` start nothing, so a still face and
its detector's noise give a still picture; once a move starts it is followed until the framing settles.
The crop never leaves the source's frame (no borders) unless `beyond_edges` is set. Faces are mapped into
the output's coordinates, so later stages (background, beauty, anonymise) see them where they are shown.
On a chain whose frames stay on the device the same crop is one warp graph there (`FrameOnDevice`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import cv2
import numpy as np

from livefuse.device.graphs import warp_frame, warp_theta
from livefuse.device.runner import DeviceGraph
from livefuse.engine.core import Engine
from livefuse.frame import Face, Frame
from livefuse.stage import DevicePath, Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register
from livefuse.vision.spring import CriticalSpring

log = logging.getLogger("livefuse.stages.framing")

STEADY_S = 0.3  # time constant of the low-pass on the wanted crop: one odd detection is not a move
SETTLED = 0.25  # of the dead zone: a followed move ends when the crop is this close to its goal
MAX_DT = 0.5  # seconds: a longer gap between frames (a stall, a reopen) moves the crop as if it were this
Crop = np.ndarray  # float64 [3]: centre x, centre y, height, in source pixels


def faces_box(faces: list[Face], which: str) -> np.ndarray | None:
    """x1, y1, x2, y2 around every face ("all") or the largest one ("largest"); None without faces."""
    if not faces:
        return None
    boxes = np.array([f.box for f in faces], np.float64)
    if which == "largest":
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[int(np.argmax(areas))]
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


def wanted_crop(box: np.ndarray, size: tuple[int, int], params: dict[str, Any]) -> Crop:
    """The crop that shows `box` at the chosen height fraction and headroom, centred across.

    Zoom stays between 1 (the whole frame) and `max_zoom`; without `beyond_edges` the crop is then slid
    back inside the frame, so the framing is the nearest one the source can give.
    """
    height = size[1]
    face_h = max(float(box[3] - box[1]), 1.0)
    crop_h = min(max(face_h / params["size"], height / params["max_zoom"]), float(height))
    cx = float(box[0] + box[2]) / 2
    cy = float(box[1]) - params["headroom"] * crop_h + crop_h / 2
    if not params["beyond_edges"]:
        cx, cy = clamp_inside(cx, cy, crop_h, size)
    return np.array([cx, cy, crop_h])


def clamp_inside(cx: float, cy: float, crop_h: float, size: tuple[int, int]) -> tuple[float, float]:
    """The centre moved the least so that a crop of height `crop_h` (output aspect) lies inside the frame."""
    width, height = size
    half_w, half_h = crop_h * width / height / 2, crop_h / 2
    return min(max(cx, half_w), width - half_w), min(max(cy, half_h), height - half_h)


def crop_matrix(crop: Crop, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine from source pixels to output pixels for this crop."""
    width, height = size
    scale = height / crop[2]
    return np.array([[scale, 0.0, width / 2 - scale * crop[0]], [0.0, scale, height / 2 - scale * crop[1]]])


def moved_face(face: Face, matrix: np.ndarray) -> Face:
    """A copy of the face with its points in the output picture (the face stage keeps the original)."""
    scale, dx, dy = float(matrix[0, 0]), float(matrix[0, 2]), float(matrix[1, 2])
    shift = np.array([dx, dy], np.float32)

    def boxed(box: np.ndarray) -> np.ndarray:
        return (box.reshape(2, 2) * scale + shift).reshape(4).astype(np.float32)

    mesh = None
    if face.mesh is not None:
        mesh = face.mesh * scale  # z is in x's pixel units: it scales too
        mesh[:, :2] += shift
        mesh = mesh.astype(np.float32)
    return dataclasses.replace(
        face,
        box=boxed(face.box),
        landmarks5=(face.landmarks5 * scale + shift).astype(np.float32),
        mesh=mesh,
        found_box=None if face.found_box is None else boxed(face.found_box),
    )


class FrameStage(Stage):
    """Follow the faces with a smoothly moving crop, scaled back to the frame's size."""

    name = "frame"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self.fps = context.fps or 30.0
        self.spring = CriticalSpring(params["response"])
        self._goal: Crop | None = None
        self._wanted: Crop | None = None  # the wanted crop, low-passed
        self._following = False
        self._last_ns: int | None = None
        self._last_face_ns: int | None = None
        self._warned = False
        self.crop: Crop | None = None  # the crop of the last frame (centre x, centre y, height)
        if context.transfers is not None:  # the chain's frames stay on the device: crop there too
            self.device = FrameOnDevice(self, context.engine)

    def _dt(self, frame: Frame) -> float:
        last, self._last_ns = self._last_ns, frame.capture_ns
        if last is None or frame.capture_ns <= last:
            return 1.0 / self.fps
        return min((frame.capture_ns - last) / 1e9, MAX_DT)

    def _update_goal(self, wanted: Crop, current: Crop) -> None:
        """Dead zone with hysteresis: a small difference starts nothing; a large one is followed to the end."""
        zone = self.params["dead_zone"]
        if self._goal is None:
            self._goal = wanted
            return

        def off(a: Crop, b: Crop) -> float:
            return max(abs(a[0] - b[0]) / b[2], abs(a[1] - b[1]) / b[2], abs(math.log(a[2] / b[2])))

        if not self._following and off(wanted, self._goal) > zone:
            self._following = True
        if self._following:
            self._goal = wanted
            speed = 0.0 if self.spring.velocity is None else float(np.abs(self.spring.velocity).max())
            if off(current, wanted) < SETTLED * zone and speed < SETTLED * zone * current[2]:
                self._following = False

    def process(self, frame: Frame) -> None:
        matrix = self.advance(frame, frame.size)
        if matrix is None:
            return
        border = cv2.BORDER_CONSTANT if self.params["beyond_edges"] else cv2.BORDER_REPLICATE
        frame.image = cv2.warpAffine(
            frame.image, matrix, frame.size, flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0)
        )

    def advance(self, frame: Frame, size: tuple[int, int]) -> np.ndarray | None:
        """Move the crop on by this frame's faces and time, and hand the faces on in the framed picture's
        coordinates; the crop's 2x3 affine (source to output pixels), or None for the whole frame."""
        width, height = size
        dt = self._dt(frame)
        if not frame.faces_searched and not self._warned:
            self._warned = True
            log.warning(
                "frame: no face stage before it, so there are no faces to frame; put a `face` stage first in the preset"
            )
        box = faces_box(frame.faces, self.params["faces"])
        whole = np.array([width / 2, height / 2, float(height)])
        if box is not None:
            self._last_face_ns = frame.capture_ns
            wanted = wanted_crop(box, size, self.params)
        elif (
            self._goal is not None
            and self._last_face_ns is not None
            and (frame.capture_ns - self._last_face_ns) / 1e9 < self.params["hold"]
        ):
            wanted = self._goal  # a face missed for a moment: stay where we are
        else:
            wanted = whole
        if self._wanted is None or box is None:
            self._wanted = wanted
        else:
            self._wanted = self._wanted + (wanted - self._wanted) * (1.0 - math.exp(-dt / STEADY_S))
        current = self.spring.value if self.spring.value is not None else self._wanted
        self._update_goal(self._wanted, current)
        assert self._goal is not None
        crop = self.spring.step(self._goal, dt).copy()
        crop[2] = min(max(crop[2], height / self.params["max_zoom"]), float(height))
        if not self.params["beyond_edges"]:
            crop[0], crop[1] = clamp_inside(float(crop[0]), float(crop[1]), float(crop[2]), size)
        self.crop = crop
        matrix = crop_matrix(crop, size)
        if abs(matrix[0, 0] - 1.0) < 1e-6 and abs(matrix[0, 2]) < 1e-3 and abs(matrix[1, 2]) < 1e-3:
            return None  # the whole frame: left exactly as it came
        frame.faces = [moved_face(face, matrix) for face in frame.faces]
        frame.person_mask = None  # a mask from before the crop no longer lines up with the picture
        return matrix

    def on_source_reopened(self) -> None:
        self.spring.reset()
        self._goal = self._wanted = None
        self._following = False
        self._last_ns = self._last_face_ns = None

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        self.spring.response = self.params["response"]
        self._following = True  # a new size or headroom is reached at once, not held back by the dead zone

    def close(self) -> None:
        pass


class FrameOnDevice(DevicePath):
    """The crop on the device frame: one warp graph (`device/graphs.warp_frame`), nothing downloaded."""

    def __init__(self, stage: FrameStage, engine: Engine) -> None:
        self.stage = stage
        self.engine = engine
        self._graphs: dict[tuple[int, int], DeviceGraph] = {}

    def run(self, frame: Frame) -> None:
        height, width = (int(d) for d in frame.device_image.shape()[:2])
        matrix = self.stage.advance(frame, (width, height))
        if matrix is None:
            return
        if (width, height) not in self._graphs:
            self._graphs[width, height] = DeviceGraph(self.engine, warp_frame((width, height)))
        theta = warp_theta(cv2.invertAffineTransform(matrix), (width, height), (width, height))
        frame.device_image = self._graphs[width, height].run({"frame": frame.device_image, "theta": theta})["crop"]


SPEC = register(
    StageSpec(
        type="frame",
        summary="Auto-framing: crop and zoom to keep the faces at a chosen size and headroom, moving smoothly "
        "(needs a `face` stage before it; the output size is unchanged)",
        params=(
            Param("faces", str, "all", "frame every face, or only the largest", choices=("all", "largest")),
            Param("size", float, 0.3, "the faces' height as a fraction of the picture's height", min=0.05, max=1.0),
            Param(
                "headroom",
                float,
                0.18,
                "space above the top face, as a fraction of the picture's height",
                min=0.0,
                max=0.8,
            ),
            Param("max_zoom", float, 2.5, "zoom in at most this far (1 = never zoom)", min=1.0, max=8.0),
            Param(
                "response",
                float,
                0.8,
                "seconds the crop takes to catch up with a move (critically damped)",
                min=0.05,
                max=10.0,
            ),
            Param(
                "dead_zone",
                float,
                0.05,
                "moves smaller than this fraction of the picture do not pan or zoom",
                min=0.0,
                max=0.3,
            ),
            Param(
                "hold",
                float,
                2.0,
                "seconds to keep the framing after the faces are lost, before zooming out",
                min=0.0,
                max=60.0,
            ),
            Param(
                "beyond_edges",
                bool,
                False,
                "let the crop go past the source's edges (black borders) to keep the framing",
            ),
        ),
        factory=FrameStage,
    )
)
