"""The capture thread: reads the source, stamps each frame with its capture time, and never waits on the chain.

A lost live source (`SourceLost`) is reopened with backoff while the outputs keep showing the last
frame; each reopen moves `Frame.source_epoch` on, so stages hear that the scene may have changed. The
source is closed on this thread too, never from another one while a read may block. Asked to `sleep`
(nobody watches: livefuse/sleep.py), it closes the source, so a camera's light goes out, and reopens it
on `wake`, dropping the camera's first frames (exposure still settling).
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
WARM_UP_FRAMES = 2  # dropped after waking: a camera's first frames are dark or badly exposed


class Capture:
    """Reads `source` on its own thread and hands every frame to `deliver` (called on that thread).

    It calls `finished` when the source ends, fails (the error is kept in `fatal`) or `max_frames` were
    read. With `audio`, picture and sound are stamped on one clock.
    """

    def __init__(
        self,
        source: Source,
        deliver: Callable[[Frame], object],
        finished: Callable[[], None],
        *,
        stats: PipelineStats,
        audio: AudioInput | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.source = source
        self.deliver = deliver
        self.finished = finished
        self.stats = stats
        self.audio = audio
        self.max_frames = max_frames
        self.fatal: BaseException | None = None
        self.done = threading.Event()  # set once the last frame was delivered
        self._stop = threading.Event()
        self._sleep = threading.Event()  # asked to sleep
        self._awake = threading.Event()  # asked to wake (cleared while asleep)
        self.asleep = threading.Event()  # set while the source is closed for sleep
        self._thread = threading.Thread(target=self._run, name="livefuse-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the read in progress (safe from any thread)."""
        self._stop.set()

    def sleep(self) -> None:
        """Close the source after the read in progress, until `wake` (safe from any thread)."""
        self._awake.clear()
        self._sleep.set()

    def wake(self) -> None:
        """Reopen the source and go on capturing (safe from any thread)."""
        self._sleep.clear()
        self._awake.set()

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
        failures = 0
        epoch = 0  # times the source was reopened: stages forget the old scene when it moves on
        warm_up = 0  # frames still to drop after waking
        while not self._stop.is_set():
            if self._sleep.is_set():
                if self._doze():
                    epoch += 1
                    warm_up = WARM_UP_FRAMES
                continue
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
            if warm_up and image is not None:
                warm_up -= 1
                continue
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
            self.deliver(Frame(seq=seq, capture_ns=now, image=image, source_epoch=epoch))
            if self.audio is not None:
                self.audio.on_video(now)
            seq += 1
            if self.max_frames is not None and seq >= self.max_frames:
                self.finished()
                return

    def _doze(self) -> bool:
        """Close the source until woken; True once it is open again (False when stopped meanwhile)."""
        log.info("nobody is watching: source %s closed until a viewer comes", self.source.description)
        try:
            self.source.close()
        except Exception as exc:  # noqa: BLE001 - asleep either way; reopening tries afresh
            log.debug("closing source failed: %s", exc)
        self.asleep.set()
        while not self._awake.wait(0.1):
            if self._stop.is_set():
                return False
        failures = 0
        while not self._stop.is_set():
            try:
                self.source.reopen()
                break
            except Exception as exc:  # noqa: BLE001 - a camera busy elsewhere: keep trying, with backoff
                failures = self._reconnect(failures, exc)
                if failures == 0:
                    break
        self.asleep.clear()
        log.info("a viewer came: source %s reopened", self.source.description)
        return not self._stop.is_set()

    def _reconnect(self, failures: int, exc: Exception) -> int:
        """Reopen a lost live source with backoff; 0 once it is open again, else the failures so far."""
        delay = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
        if failures == 0:
            log.warning("source %s lost (%s); reconnecting", self.source.description, exc)
        if self._stop.wait(delay):
            return failures
        try:
            self.source.reopen()
            self.stats.count(reconnects=1)
            log.info("source %s reopened", self.source.description)
            return 0
        except Exception as again:  # noqa: BLE001 - keep trying while running
            log.debug("reopen failed: %s", again)
            return failures + 1
