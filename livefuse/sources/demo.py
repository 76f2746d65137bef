"""The built-in live source: a real face moving, turning and zooming over a background.

It gives every preset something real to work on without a camera: the person is
scikit-image's bundled astronaut photo (public domain, NASA), composited with a
feathered head-and-shoulders mask over a textured room-like background.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from livefuse.sources.base import Pacer, Source


def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut photo (512x512) in BGR."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _background(width: int, height: int) -> np.ndarray:
    """A detailed backdrop, so that blurring or replacing it is visible and measurable."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.float32)
    base[..., 0] = 90 + 60 * xx / width
    base[..., 1] = 110 + 40 * yy / height
    base[..., 2] = 150 - 50 * xx / width
    img = base.astype(np.uint8)
    rng = np.random.default_rng(7)
    for _ in range(40):  # shelves, frames and books: sharp edges for blur to act on
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 40, width // 8)), int(rng.integers(height // 40, height // 6))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1 if rng.random() < 0.6 else 3)
    for i in range(0, width, max(8, width // 64)):  # fine vertical stripes: high frequencies
        cv2.line(img, (i, 0), (i, height // 8), (230, 230, 230), 1)
    return img


def _person_mask(photo: np.ndarray) -> np.ndarray:
    """Feathered head-and-shoulders mask for the astronaut photo (the person fills most of it)."""
    h, w = photo.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(w * 0.47), int(h * 0.30)), (int(w * 0.19), int(h * 0.25)), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, (int(w * 0.45), int(h * 0.95)), (int(w * 0.42), int(h * 0.45)), 0, 0, 360, 255, -1)
    return cv2.GaussianBlur(mask, (0, 0), 4)


class DemoSource(Source):
    """Synthesises frames at any size and rate, paced in real time."""

    def __init__(
        self, size: tuple[int, int] = (1280, 720), fps: float = 30.0, *, paced: bool = True, motion: float = 1.0
    ) -> None:
        self.size = size
        self.fps = fps
        self.description = f"demo {size[0]}x{size[1]}@{fps:g}"
        self.motion = motion
        self._pacer = Pacer(fps) if paced else None
        self._t = 0
        width, height = size
        photo = astronaut_bgr()
        self._rgba = np.dstack([photo, _person_mask(photo)])
        self._background = _background(width, height)
        self._scale = 0.9 * height / photo.shape[0]

    def transform(self, t: float) -> np.ndarray:
        """The 2x3 affine placing the photo at time t seconds: drift, turn (yaw as squash), zoom, roll."""
        width, height = self.size
        m = self.motion
        zoom = self._scale * (1.0 + 0.12 * m * math.sin(t * 0.7))
        yaw = 1.0 - 0.10 * m * abs(math.sin(t * 0.9))
        roll = math.radians(8.0 * m * math.sin(t * 1.1))
        cx = width * (0.5 + 0.12 * m * math.sin(t * 0.5))
        cy = height * (0.55 + 0.04 * m * math.sin(t * 0.8))
        cos, sin = math.cos(roll), math.sin(roll)
        a = np.array([[zoom * yaw * cos, -zoom * sin], [zoom * yaw * sin, zoom * cos]], np.float64)
        centre = np.array([256.0, 300.0])
        offset = np.array([cx, cy]) - a @ centre
        return np.hstack([a, offset[:, None]]).astype(np.float32)

    def render(self, t: float) -> np.ndarray:
        """The frame at time t seconds."""
        width, height = self.size
        warped = cv2.warpAffine(
            self._rgba,
            self.transform(t),
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0, 0),
        )
        # OpenCV calls and a numpy ufunc only (they release the GIL): the demo must not steal time from the
        # pipeline it feeds.
        alpha = np.multiply(cv2.extractChannel(warped, 3), 1.0 / 255.0, dtype=np.float32)
        person = cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR)
        # OpenCV takes a scalar operand here; its type stubs do not say so
        return cv2.blendLinear(person, self._background, alpha, cv2.subtract(1.0, alpha))  # type: ignore[call-overload]

    def alpha(self, t: float) -> np.ndarray:
        """The person's true weight (float32 0..1) in the frame at time t: what `render` composes with."""
        width, height = self.size
        warped = cv2.warpAffine(
            np.ascontiguousarray(self._rgba[..., 3]),
            self.transform(t),
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return np.multiply(warped, 1.0 / 255.0, dtype=np.float32)

    def read(self) -> np.ndarray:
        frame = self.render(self._t / self.fps)
        self._t += 1
        if self._pacer is not None:
            self._pacer.wait()
        return frame

    def close(self) -> None:
        pass
