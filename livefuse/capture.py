"""The capture thread: reads the source, stamps each frame with its capture time, and never waits on the chain.

A lost live source (`SourceLost`) is reopened with backoff while the outputs keep showing the last
frame; each reopen moves `Frame.source_epoch` on, so stages hear that the scene may have changed. The
source is closed on this thread too, never from another one while a read may block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from livefuse.audio.inputs import AudioInput
from livefuse.frame import Frame
from livefuse.sources.base import Source, SourceLost
from livefuse.stats import PipelineStats

log = logging.getLogger("livefuse.pipeline")

RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # then every 2 s: a restarted sender is picked up soon


class Capture:
    """Reads `source` on its own thread and hands every frame to `deliver` (called on that thread).

    It calls `finished` when the source ends, fails (the error is kept in `fatal`) or `max_frames` were
    read. With `audio`, picture and sound are stamped on one clock.
    """

    def __init__(self, source: Source, deliver: Callable[[Frame], object], finished: Callable[[], None], *,
                 stats: PipelineStats, audio: AudioInput | None = None, max_frames: int | None = None) -> None:
        self.source = source
        self.deliver = deliver
        self.finished = finished
        self.stats = stats
        self.audio = audio
        self.max_frames = max_frames
        self.fatal: BaseException | None = None
        self.done = threading.Event()  # set once the last frame was delivered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livefuse-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the read in progress (safe from any thread)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        """Read until stopped, then close the source here."""
        try:
            self._read_frames()
        finally:
            self.done.set()
            try:
                self.source.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide why capture ended
                log.debug("closing source failed: %s", exc)

    def _read_frames(self) -> None:
        seq = 0
        start_ns = time.monotonic_ns()
        failures = 0
        epoch = 0  # times the source was reopened: stages forget the old scene when it moves on
        while not self._stop.is_set():
            try:
                image = self.source.read()
            except SourceLost as exc:
                failures = self._reconnect(failures, exc)
                if failures == 0 and not self._stop.is_set():
                    epoch += 1  # reopened: the next frame may show another scene
                continue
            except BaseException as exc:  # noqa: BLE001 - reported by the pipeline after a clean shutdown
                self.fatal = exc
                self.finished()
                return
            failures = 0
            if image is None:
                log.info("source %s ended", self.source.description)
                if self.audio is not None:
                    self.audio.flush()
                self.finished()
                return
            now = time.monotonic_ns()
            if self.audio is not None:  # picture and sound stamped on one clock
                stamp = self.audio.video_capture_ns(now)
                if stamp is None:  # a stream's backlog from before capture started
                    continue
                now = stamp
            self.deliver(Frame(seq=seq, pts=(now - start_ns) * Frame.time_base // 1_000_000_000, capture_ns=now,
                               image=image, source_epoch=epoch))
            if self.audio is not None:
                self.audio.on_video(now)
            seq += 1
            if self.max_frames is not None and seq >= self.max_frames:
                self.finished()
                return

    def _reconnect(self, failures: int, exc: Exception) -> int:
        """Reopen a lost live source with backoff; 0 once it is open again, else the failures so far."""
        delay = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
        if failures == 0:
            log.warning("source %s lost (%s); reconnecting", self.source.description, exc)
        if self._stop.wait(delay):
            return failures
        try:
            self.source.reopen()
            self.stats.reconnects += 1
            log.info("source %s reopened", self.source.description)
            return 0
        except Exception as again:  # noqa: BLE001 - keep trying while running
            log.debug("reopen failed: %s", again)
            return failures + 1
