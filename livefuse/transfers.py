"""Counts what crosses the host/device boundary, so a copy a stage forces is seen and named.

Full-frame copies are the ones that cost (a 1080p BGR frame is 6 MB over PCIe each way): the boundary's
one upload and one download per frame, and the copies a stage without a device path forces (named by that
stage: two for a round trip). Face regions a stage brings to the host and back are partial copies, counted apart with
their bytes; boxes, landmarks and matrices are not counted at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


def _minus(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    diff = {k: v - before.get(k, 0) for k, v in now.items()}
    return {k: v for k, v in diff.items() if v}


@dataclass
class TransferCounter:
    """Cumulative transfers at one chain's boundary (thread-safe: two frames are in flight)."""

    frames: int = 0
    uploads: int = 0
    downloads: int = 0
    forced: dict[str, int] = field(default_factory=dict)  # stage label -> full-frame copies it forced
    region_copies: dict[str, int] = field(default_factory=dict)  # stage label -> partial copies (either way)
    region_bytes: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def upload(self) -> None:
        with self._lock:
            self.uploads += 1
            self.frames += 1

    def download(self) -> None:
        with self._lock:
            self.downloads += 1

    def force(self, stage: str, copies: int = 2) -> None:
        """A stage needed the whole frame on the host: 1 copy to read it, 2 for a round trip (read, write back)."""
        with self._lock:
            self.forced[stage] = self.forced.get(stage, 0) + copies

    def region(self, stage: str, nbytes: int) -> None:
        """A stage copied part of the frame (a face region) between host and device."""
        with self._lock:
            self.region_copies[stage] = self.region_copies.get(stage, 0) + 1
            self.region_bytes[stage] = self.region_bytes.get(stage, 0) + int(nbytes)

    def raw(self) -> dict[str, Any]:
        """The cumulative counts (pass one to `report` as `since` to leave out what came before it)."""
        with self._lock:
            return {
                "frames": self.frames,
                "uploads": self.uploads,
                "downloads": self.downloads,
                "forced": dict(self.forced),
                "region_copies": dict(self.region_copies),
                "region_bytes": dict(self.region_bytes),
            }

    def report(self, since: dict[str, Any] | None = None) -> dict[str, Any]:
        """Totals and per-frame figures, JSON-ready (`livefuse bench`, /api/status, the tests)."""
        now, before = self.raw(), since or {}
        frames = now["frames"] - before.get("frames", 0)
        ups, downs = now["uploads"] - before.get("uploads", 0), now["downloads"] - before.get("downloads", 0)
        forced = _minus(now["forced"], before.get("forced", {}))
        regions = _minus(now["region_copies"], before.get("region_copies", {}))
        region_bytes = _minus(now["region_bytes"], before.get("region_bytes", {}))
        n = max(frames, 1)
        return {
            "frames": frames,
            "uploads": ups,
            "downloads": downs,
            "forced_copies": forced,
            "per_frame": {
                "uploads": round(ups / n, 3),
                "downloads": round(downs / n, 3),
                "full_frame_copies": round((ups + downs + sum(forced.values())) / n, 3),
                "forced_copies": {k: round(v / n, 3) for k, v in forced.items()},
                "region_copies": {k: round(v / n, 3) for k, v in regions.items()},
                "region_kb": {k: round(v / n / 1024, 1) for k, v in region_bytes.items()},
            },
        }
