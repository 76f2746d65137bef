"""A still image repeated at the requested rate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livefuse.errors import SourceError
from livefuse.sources.base import Pacer, Source


class ImageSource(Source):
    """Serves one decoded, resized still as a live stream."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        if not path.is_file():
            raise SourceError(f"image source not found: {path} (check the path after 'image:')")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {path}: use a PNG, JPEG, BMP or WebP file")
        self.size = size
        self.fps = fps
        self.description = f"image {path}"
        self._image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self._pacer = Pacer(fps)

    def read(self) -> np.ndarray:
        self._pacer.wait()
        return self._image.copy()

    def close(self) -> None:
        pass
