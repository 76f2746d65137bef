"""Sleep when nobody watches: no inference, and the camera released, while no output is consumed.

Twice a second a thread asks every output whether anything consumes it (`Sink.watched`: a recording or a
push always; the preview while a browser views it; the virtual camera while an application has it open,
where the OS can tell). After `after_s` seconds with none, the outputs are sent one still "paused" picture
(the virtual camera keeps showing it) and capture closes the source: no frame is read, so no stage runs.
The first output that is watched again wakes it: capture reopens the source, drops the camera's first
frames, and the chain picks up. `livefuse run --always-on` leaves this off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from livefuse.capture import Capture
from livefuse.sinks.base import Sink
from livefuse.stats import PipelineStats

log = logging.getLogger("livefuse.pipeline")

CHECK_S = 0.5
SLEEP_AFTER_S = 10.0  # the default grace period
PAUSE_WAIT_S = 2.0  # for the read in progress to end before the paused picture goes out


def paused_picture(image: np.ndarray) -> np.ndarray:
    """The last picture, dimmed, with "paused" written across it: what a watcher sees while livefuse sleeps."""
    out = cv2.convertScaleAbs(image, alpha=0.35)
    height, width = out.shape[:2]
    scale = max(0.5, width / 640)
    text = "paused - nobody is watching"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(2 * scale)))
    cv2.putText(
        out,
        text,
        ((width - tw) // 2, (height + th) // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (235, 235, 235),
        max(1, round(2 * scale)),
        cv2.LINE_AA,
    )
    return out


class SleepWatch:
    """Puts `capture` to sleep after `after_s` seconds with no output watched, and wakes it on a watcher."""

    def __init__(
        self,
        sinks: Callable[[], list[Sink]],
        capture: Capture,
        after_s: float,
        stats: PipelineStats,
        show_paused: Callable[[], None],
    ) -> None:
        self.sinks = sinks
        self.capture = capture
        self.after_s = after_s
        self.stats = stats
        self.show_paused = show_paused
        self.woken_ns = 0  # when the last wake was asked (the first frame after it is measured from here)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livefuse-sleep", daemon=True)
        stats.sleep = "awake"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _watched(self) -> bool:
        for sink in self.sinks():
            try:
                if sink.watched():
                    return True
            except Exception as exc:  # noqa: BLE001 - an output that cannot tell counts as watched
                log.debug("output %s cannot tell whether it is watched: %s", sink.name, exc)
                return True
        return False

    def _run(self) -> None:
        unwatched_since: float | None = None
        while not self._stop.wait(CHECK_S):
            now = time.monotonic()
            if self._watched():
                unwatched_since = None
                if self.stats.sleep == "sleeping":
                    self.woken_ns = time.monotonic_ns()
                    self.capture.wake()
                    self.stats.sleep = "awake"
                continue
            unwatched_since = unwatched_since if unwatched_since is not None else now
            if self.stats.sleep == "awake" and now - unwatched_since >= self.after_s:
                log.info("no output watched for %.0f s: sleeping (inference stopped, source released)", self.after_s)
                self.capture.sleep()
                if self.capture.asleep.wait(PAUSE_WAIT_S):  # no frame comes after it, then: paused shows
                    self.show_paused()
                self.stats.sleep = "sleeping"
                self.stats.count(sleeps=1)
