"""One output of a pipeline: its latest-frame slot, its writer thread, and what happens when it fails.

Each output writes on its own thread, so a slow one only drops its own frames. An output a viewer
watches (`Sink.repeat_when_idle`) is sent the last frame again when no new one came for two frame
intervals. A write error is counted and the frame skipped; after many in a row, or at once for an
error retrying cannot fix (`OutputFailed`), the output is given up and closed while the others go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from livefuse.frame import Frame
from livefuse.sinks.base import OutputFailed, Sink
from livefuse.slot import LatestSlot, SlotClosed
from livefuse.stats import OutputStats

log = logging.getLogger("livefuse.pipeline")

DROP_OUTPUT_AFTER_ERRORS = 30


class Output:
    """Drives one sink: `put` offers frames (on the loop), `drive` writes them until the slot closes."""

    def __init__(self, sink: Sink, index: int, fps: float, on_written: Callable[[Frame, int], None] | None = None,
                 ) -> None:
        self.sink = sink
        self.fps = fps
        self.stats = OutputStats()
        self.slot: LatestSlot[Frame] = LatestSlot(sink.name)
        self.on_written = on_written  # the primary output's: (frame, now_ns) for the pipeline's latency
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"livefuse-out{index}")
        self._last: Frame | None = None
        self._consecutive_errors = 0
        self._closed = False

    def put(self, frame: Frame) -> None:
        self.slot.put(frame)
        self.stats.dropped = self.slot.dropped

    async def drive(self) -> None:
        """Write frames as they come (repeating the last one to a watched output when none do)."""
        loop = asyncio.get_running_loop()
        idle_timeout = 2.0 / self.fps if self.sink.repeat_when_idle else None
        while True:
            try:
                frame = await self.slot.get(timeout=idle_timeout)
            except SlotClosed:
                return
            fresh = frame is not None
            if frame is None:
                if self._last is None:
                    continue
                frame = dataclasses.replace(self._last, capture_ns=time.monotonic_ns())
            try:
                if self.sink.inline:
                    self.sink.write(frame)  # costs nothing (null): no thread hop
                else:
                    await loop.run_in_executor(self._executor, self.sink.write, frame)
            except Exception as exc:  # noqa: BLE001 - one output failing must not stop the others
                if self._failed(exc):
                    self.slot.close()  # given up: no more frames for it, and it is finalised now, not at the end
                    await self.close()
                    return
                continue
            self._consecutive_errors = 0
            self._last = frame
            if fresh:
                now = time.monotonic_ns()
                self.stats.frames += 1
                self.stats.latency.add(now - frame.capture_ns)
                if self.on_written is not None:
                    self.on_written(frame, now)

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

    async def close(self) -> None:
        """Flush and close the sink on its own thread, once."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.sink.close)
        except Exception as exc:  # noqa: BLE001 - close the other outputs whatever happens
            log.error("closing output %s failed: %s", self.sink.name, exc)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
