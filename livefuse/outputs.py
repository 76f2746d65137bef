"""One output of a pipeline: its latest-frame slot, its writer thread, and what happens when it fails.

Each output writes on its own thread, so a slow one only drops its own frames, and no frame passes
through the asyncio loop. An output a viewer watches (`Sink.repeat_when_idle`) is sent the last frame
again when no new one came for two frame intervals. A write error is counted and the frame skipped;
after many in a row, or at once for an error retrying cannot fix (`OutputFailed`), the output is given
up and closed while the others go on. When its slot closes, the writer flushes and closes the sink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from livefuse.frame import Frame
from livefuse.sinks.base import OutputFailed, Sink
from livefuse.slot import SlotClosed, ThreadSlot
from livefuse.stats import OutputStats
from livefuse.threads import start_thread

log = logging.getLogger("livefuse.pipeline")

DROP_OUTPUT_AFTER_ERRORS = 30


class Output:
    """Drives one sink: `put` offers frames (from any thread), `start` writes them on the output's own thread
    until the slot closes; then the sink is closed there and `wait_closed` returns."""

    def __init__(
        self,
        sink: Sink,
        index: int,
        fps: float,
        on_written: Callable[[Frame, int], None] | None = None,
    ) -> None:
        self.sink = sink
        self.index = index
        self.fps = fps
        self.stats = OutputStats()
        sink.bind_stats(self.stats)
        self.slot: ThreadSlot[Frame] = ThreadSlot(sink.name)
        self.on_written = on_written  # the primary output's: (frame, now_ns) for the pipeline's latency
        self._last: Frame | None = None
        self._consecutive_errors = 0
        self._finished: Future[None] | None = None  # the writer thread's end (None: inline, no writer)
        self._closed = False

    def put(self, frame: Frame) -> None:
        """Offer a frame (called by one emitting thread at a time); a frame not yet written is dropped.
        An inline sink's write costs nothing, so the emitting thread writes it itself: no thread hop."""
        if self.sink.inline:
            if not self.slot.closed and not self._write(frame, fresh=True):
                self.slot.close()
                self._close_sink()
            return
        self.slot.put(frame)
        self.stats.dropped = self.slot.dropped

    def start(self) -> None:
        if not self.sink.inline:
            self._finished = start_thread(self._run, f"livefuse-out{self.index}")

    async def wait_closed(self) -> None:
        """Once the slot is closed: until what it held is written and the sink is closed."""
        if self._finished is None:  # inline: nothing left to write, only the close
            await asyncio.get_running_loop().run_in_executor(None, self._close_sink)
            return
        await asyncio.wrap_future(self._finished)

    def _run(self) -> None:
        try:
            self._write_until_closed()
        finally:
            self._close_sink()

    def _write_until_closed(self) -> None:
        """Write frames as they come (repeating the last one to a watched output when none do)."""
        idle_timeout = 2.0 / self.fps if self.sink.repeat_when_idle else None
        while True:
            try:
                frame = self.slot.get(timeout=idle_timeout)
            except SlotClosed:
                return
            fresh = frame is not None
            if frame is None:
                if self._last is None:
                    continue
                frame = dataclasses.replace(self._last, capture_ns=time.monotonic_ns())
            if not self._write(frame, fresh):
                self.slot.close()  # given up: no more frames for it, and it is finalised now, not at the end
                return

    def _write(self, frame: Frame, fresh: bool) -> bool:
        """Write one frame and count it (a repeated one is not counted); False once the output is given up."""
        try:
            self.sink.write(frame)
        except Exception as exc:  # noqa: BLE001 - one output failing must not stop the others
            return not self._failed(exc)
        self._consecutive_errors = 0
        self._last = frame
        if fresh:
            now = time.monotonic_ns()
            self.stats.frames += 1
            self.stats.latency.add(now - frame.capture_ns)
            if self.on_written is not None:
                self.on_written(frame, now)
        return True

    def _failed(self, exc: Exception) -> bool:
        """Count a write error; give the output up at once when retrying cannot help (OutputFailed), else after
        many in a row. True when given up: logged once, and shown in the stats as the output's `failed`."""
        self.stats.errors += 1
        self._consecutive_errors += 1
        name = self.sink.name
        if isinstance(exc, OutputFailed):
            self.stats.failed = str(exc)
            log.error("output %s stopped: %s; the other outputs go on", name, exc)
            return True
        if self.stats.errors == 1:
            log.warning("output %s failed to write (%s); retrying", name, exc)
        if self._consecutive_errors >= DROP_OUTPUT_AFTER_ERRORS:
            self.stats.failed = f"{exc} ({self._consecutive_errors} write errors in a row)"
            log.error("output %s failed %d times in a row; closing it", name, self._consecutive_errors)
            return True
        return False

    def _close_sink(self) -> None:
        """Flush and close the sink (on the writer's thread), once."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001 - close the other outputs whatever happens
            log.error("closing output %s failed: %s", self.sink.name, exc)
