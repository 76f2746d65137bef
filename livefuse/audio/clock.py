"""Media timestamps onto the capture clock, anchored on the video frames the pipeline stamps."""

from __future__ import annotations

from collections import deque

RESET_NS = 2_000_000_000  # an offset jump this large is a reconnect or a stall: anchor afresh
BACK_NS = 500_000_000  # media time going back this far is a seek or a loop: anchor afresh


class MediaClock:
    """capture_ns = media_ns + offset, learnt from (media time, arrival time) pairs of video frames.

    A frame can arrive late (held in a buffer, a network hiccup) but never before its media instant
    happened: so the offset is the smallest seen over the last `window` frames, and a stream's frames
    and sound are both placed where its own timestamps say, not where a burst of delivery put them.
    A clock that runs slow against ours is followed as the window moves on.
    """

    def __init__(self, window: int = 300) -> None:
        self._offsets: deque[int] = deque(maxlen=window)
        self._last_media_ns = 0

    def anchor(self, media_ns: int, arrived_ns: int) -> None:
        offset = arrived_ns - media_ns
        if self._offsets and (abs(offset - self.offset_ns) > RESET_NS or media_ns < self._last_media_ns - BACK_NS):
            self._offsets.clear()
        self._offsets.append(offset)
        self._last_media_ns = media_ns

    @property
    def anchored(self) -> bool:
        return bool(self._offsets)

    @property
    def offset_ns(self) -> int:
        return min(self._offsets)

    def capture_ns(self, media_ns: int) -> int:
        return media_ns + self.offset_ns
