"""The background stage's replacement picture: a still image, or a video looped in time with the stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livefuse.errors import PresetError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill width x height keeping the aspect ratio, cropping the overflow evenly (no distortion)."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    x, y = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(resized[y : y + height, x : x + width])


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class Backdrop:
    """The replacement picture: a still image, or a video looped in time with the stream."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self.path = path
        self.size = size
        self.fps = fps
        self._still: np.ndarray | None = None
        self._video: cv2.VideoCapture | None = None
        self._shown_t = 0.0
        self._current: np.ndarray | None = None
        where = f"background stage: image = {str(path)!r}"
        if not path.is_file():
            raise PresetError(
                f"{where}: no such file; give an image (.jpg/.png) or video (.mp4/.webm), "
                f"relative to the preset file or absolute"
            )
        if path.suffix.lower() in VIDEO_SUFFIXES:
            self._video = cv2.VideoCapture(str(path))
            ok, first = self._video.read() if self._video.isOpened() else (False, None)
            if not ok or first is None:
                raise PresetError(f"{where}: cannot decode this video; convert it to H.264 .mp4")
            self.video_fps = float(self._video.get(cv2.CAP_PROP_FPS) or 0) or fps
            self._current = cover(_as_bgr(first), *size)
        else:
            still = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if still is None:
                raise PresetError(f"{where}: cannot read this image; use a .jpg or .png file")
            self._still = cover(still, *size)

    def frame(self, t: float, size: tuple[int, int]) -> np.ndarray:
        """The backdrop for stream time t seconds, at frame size."""
        if self._still is not None:
            if self._still.shape[1::-1] != size:
                self._still = cover(self._still, *size)
            return self._still
        assert self._video is not None and self._current is not None
        step = 1.0 / self.video_fps
        latest = None
        for _ in range(8):  # a late frame skips ahead a little; a long stall re-syncs below
            if self._shown_t + step > t:
                break
            ok, image = self._video.read()
            if not ok:  # end of the clip: loop
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._video.read()
                if not ok:
                    break
            self._shown_t += step
            latest = image
        if self._shown_t + step <= t:
            self._shown_t = t
        if latest is not None or self._current.shape[1::-1] != size:
            self._current = cover(_as_bgr(latest if latest is not None else self._current), *size)
        return self._current

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
