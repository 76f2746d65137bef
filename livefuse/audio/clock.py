"""Media timestamps onto the capture clock, anchored on the video frames the pipeline stamps."""

from __future__ import annotations

from collections import deque

RESET_NS = 500_000_000  # a jump this large is a seek, a loop or a reconnect: anchor afresh


class MediaClock:
    """capture_ns = media_ns + offset, where offset is learnt from (media, capture) pairs of video frames.

    The offset is the median over the last `window` frames: one frame delivered late (a network
    hiccup) does not move the sound, a lasting shift (a paced file that fell a whole frame behind)
    is followed after half a window.
    """

    def __init__(self, window: int = 9) -> None:
        self._offsets: deque[int] = deque(maxlen=window)

    def anchor(self, media_ns: int, capture_ns: int) -> None:
        offset = capture_ns - media_ns
        if self._offsets and abs(offset - self.offset_ns) > RESET_NS:
            self._offsets.clear()
        self._offsets.append(offset)

    @property
    def anchored(self) -> bool:
        return bool(self._offsets)

    @property
    def offset_ns(self) -> int:
        ordered = sorted(self._offsets)
        return ordered[len(ordered) // 2]

    def capture_ns(self, media_ns: int) -> int:
        return media_ns + self.offset_ns
