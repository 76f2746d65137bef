"""What the face models read of a frame: shrunk copies and affine crops, never the whole frame itself.

The detectors look at the frame shrunk (the whole-frame pass, the tiles) or at crops (FaceMesh's 192 px
crop, the mosaic of small faces). `HostPixels` makes those from a frame in host memory, exactly as the
CPU path always has; `livefuse.device.pixels.DevicePixels` makes them from a frame on the device, so
only they are downloaded.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from livefuse.vision.geometry import resize, shrink_steps


class FramePixels(Protocol):
    """The reads a face detector or landmarker makes of a frame."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3), as numpy gives it."""

    def resized(self, width: int, height: int) -> np.ndarray:
        """The frame as `vision.geometry.resize(frame, width, height)` makes it (read only: it may be kept
        for the frame's other reads)."""

    def warped(self, matrix: np.ndarray, size: tuple[int, int], inverse: bool = True) -> np.ndarray:
        """`cv2.warpAffine(frame, matrix, size, INTER_LINEAR, BORDER_CONSTANT)`: `matrix` maps output pixels
        to frame pixels (`inverse`, cv2's WARP_INVERSE_MAP), or frame pixels to output pixels."""

    def host(self) -> np.ndarray:
        """The whole frame in host memory (on the device: a download, counted against the stage)."""


class HostPixels:
    """A frame in host memory: the CPU path."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self._halvings: dict[tuple[int, int], np.ndarray] = {}  # the frame halved, by size: one pass serves all

    @property
    def shape(self) -> tuple[int, int, int]:
        h, w, c = self.image.shape
        return int(h), int(w), int(c)

    def resized(self, width: int, height: int) -> np.ndarray:
        h, w = self.image.shape[:2]
        if width >= w or height >= h:
            return resize(self.image, width, height)
        image = self.image
        for size in shrink_steps((w, h), (width, height)):  # the steps `resize` takes, halvings kept
            if size == (image.shape[1] // 2, image.shape[0] // 2):
                if size not in self._halvings:
                    self._halvings[size] = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                image = self._halvings[size]
            else:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image

    def warped(self, matrix: np.ndarray, size: tuple[int, int], inverse: bool = True) -> np.ndarray:
        flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
        return cv2.warpAffine(self.image, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)

    def host(self) -> np.ndarray:
        return self.image


def pixels_of(image: np.ndarray | FramePixels) -> FramePixels:
    """A host array as `HostPixels`; pixels already wrapped as they are."""
    return HostPixels(image) if isinstance(image, np.ndarray) else image
