"""PyAV audio frames to and from `AudioChunk` samples (float32, planar)."""

from __future__ import annotations

import av
import numpy as np


class ToPlanarFloat:
    """Converts decoded frames of any sample format to float32 planar, at their own rate and layout."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[int, str] | None = None

    def __call__(self, frame: av.AudioFrame) -> np.ndarray:
        key = (frame.sample_rate, frame.layout.name)
        if frame.format.name == "fltp":
            return np.asarray(frame.to_ndarray(), dtype=np.float32)
        if self._resampler is None or key != self._key:
            self._resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
            self._key = key
        parts = [np.asarray(out.to_ndarray(), dtype=np.float32) for out in self._resampler.resample(frame)]
        channels = frame.layout.nb_channels
        return np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)


def to_frame(samples: np.ndarray, rate: int) -> av.AudioFrame:
    """Planar float32 samples as a PyAV frame (no timestamp: outputs set their own)."""
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples[:2], dtype=np.float32), format="fltp", layout=layout
    )
    frame.sample_rate = rate
    return frame
