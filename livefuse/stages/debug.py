"""The `debug` stage: draws what the pipeline knows onto the frame, to see why an effect misbehaves.

Boxes (dashed-looking thin ones for held faces), five points, the FaceMesh, track ids and scores, and
a corner panel with the output rate, this frame's latency so far (capture to this stage) and the time
each earlier stage took. Put it last in a preset.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import cv2
import numpy as np

from livefuse.frame import Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register

_COLOURS = [(80, 220, 80), (60, 160, 255), (255, 120, 60), (220, 80, 220), (60, 220, 220), (200, 200, 60)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _colour(track_id: int) -> tuple[int, int, int]:
    return _COLOURS[track_id % len(_COLOURS)] if track_id >= 0 else (200, 200, 200)


class DebugStage(Stage):
    """Overlays faces, ids, fps and latency."""

    name = "debug"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self._times: deque[int] = deque(maxlen=30)
        if context is not None and context.transfers is not None:  # None: built bare, by a test
            from livefuse.device.regions import OnRegions

            self.device = OnRegions(self, context.engine, context.transfers)

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def close(self) -> None:
        self._times.clear()

    def fps(self) -> float:
        """Frames per second over the last (up to) 30 frames through this stage."""
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) * 1e9 / span if span > 0 else 0.0

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """What `process` draws over (the device path's regions): each face's drawings, the stats band."""
        height, width = shape
        scale = max(1.0, height / 720)
        thick = max(1, round(2 * scale))
        pad = thick + 3
        p = self.params
        out: list[tuple[float, float, float, float]] = []
        for face in frame.faces:
            pts = [face.box.reshape(2, 2)]
            if p["mesh"] and face.mesh is not None:
                pts.append(face.mesh[:, :2])
            if p["landmarks"]:
                r = max(2, thick + 1) + 2
                pts += [face.landmarks5 - r, face.landmarks5 + r]
            x1, y1 = (round(v) for v in face.box[:2])
            label = f"#{face.track_id} {face.score:.2f}" + (" held" if face.held else "")
            (tw, th), base = cv2.getTextSize(label, _FONT, 0.5 * scale, thick)
            oy = max(12, y1 - 6)
            pts.append(np.array([[x1, oy - th], [x1 + tw, oy + base]], np.float32))
            both = np.concatenate([np.asarray(q, np.float32).reshape(-1, 2) for q in pts])
            lo, hi = both.min(0) - pad, both.max(0) + pad
            out.append((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
        if p["stats"]:
            lines = 1 + len(frame.stage_ns)
            out.append((0.0, 0.0, float(width), float(int((lines * 22 + 10) * scale) + 4)))
        return out

    def process(self, frame: Frame) -> None:
        now = time.monotonic_ns()
        self._times.append(now)
        img = frame.image
        scale = max(1.0, img.shape[0] / 720)
        thick = max(1, round(2 * scale))
        p = self.params
        for face in frame.faces:
            colour = _colour(face.track_id)
            x1, y1, x2, y2 = (round(v) for v in face.box)
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, 1 if face.held else thick, cv2.LINE_AA)
            if p["mesh"] and face.mesh is not None:
                for x, y in face.mesh[:, :2].astype(np.int32):
                    cv2.circle(img, (int(x), int(y)), 1, (255, 255, 255), -1)
            if p["landmarks"]:
                for x, y in face.landmarks5:
                    cv2.circle(img, (round(x), round(y)), max(2, thick + 1), colour, -1, cv2.LINE_AA)
            label = f"#{face.track_id} {face.score:.2f}" + (" held" if face.held else "")
            cv2.putText(img, label, (x1, max(12, y1 - 6)), _FONT, 0.5 * scale, colour, thick, cv2.LINE_AA)
        if p["stats"]:
            latency_ms = (now - frame.capture_ns) / 1e6 if frame.capture_ns else 0.0
            lines = [f"{self.fps():5.1f} fps   latency {latency_ms:5.1f} ms   faces {len(frame.faces)}"]
            lines += [f"{label}: {ns / 1e6:.1f} ms" for label, ns in frame.stage_ns.items()]
            height = int((len(lines) * 22 + 10) * scale)
            panel = img[:height, : int(420 * scale)]
            panel[:] = (panel * 0.4).astype(np.uint8)
            for i, line in enumerate(lines):
                cv2.putText(
                    img,
                    line,
                    (int(8 * scale), int((22 + 22 * i) * scale)),
                    _FONT,
                    0.55 * scale,
                    (255, 255, 255),
                    max(1, thick // 2),
                    cv2.LINE_AA,
                )


SPEC = register(
    StageSpec(
        type="debug",
        summary="Overlay face boxes, landmarks, track ids, fps and latency (put it last)",
        params=(
            Param("landmarks", bool, True, "draw the five face points"),
            Param("mesh", bool, True, "draw the FaceMesh points when a face stage computed them"),
            Param("stats", bool, True, "draw fps, latency and per-stage times"),
        ),
        factory=DebugStage,
    )
)
