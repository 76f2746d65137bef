"""Source → chain → outputs, orchestrated by asyncio with the blocking work in threads.

- The capture thread reads the source and hands each frame, stamped with its
  capture time, to a latest-frame slot; it never waits on inference.
- The dispatcher takes the newest frame whenever fewer than `max_in_flight`
  frames are being processed and the chain's first stage is free (so no frame
  ages waiting behind another), and runs the chain on a worker thread pool.
- Processed frames are released in capture order to one latest-frame slot per
  output; each output writes on its own thread, so a slow one only drops its
  own frames. Latency is measured when the primary (first) output has written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livefuse.audio.chunk import AudioChunk
from livefuse.audio.feed import AudioFeed
from livefuse.audio.inputs import AudioInput
from livefuse.chain import Chain
from livefuse.frame import Frame
from livefuse.sinks.base import OutputFailed, Sink
from livefuse.slot import LatestSlot, SlotClosed
from livefuse.sources.base import Source, SourceLost
from livefuse.stats import OutputStats, PipelineStats

if TYPE_CHECKING:
    from livefuse.engine import Engine

log = logging.getLogger("livefuse.pipeline")

RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # then every 2 s: a restarted sender is picked up soon
DROP_OUTPUT_AFTER_ERRORS = 30


@dataclass
class _Output:
    sink: Sink
    stats: OutputStats
    slot: LatestSlot[Frame]
    executor: ThreadPoolExecutor
    primary: bool
    last: Frame | None = None
    consecutive_errors: int = 0
    closed: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Pipeline:
    """Runs one source through a swappable chain into several outputs until stopped."""

    def __init__(self, source: Source, chain: Chain, sinks: list[Sink], *, fps: float,
                 max_frames: int | None = None, duration: float | None = None, max_in_flight: int = 2,
                 stats: PipelineStats | None = None, engine: Engine | None = None,
                 audio: AudioInput | None = None) -> None:
        self.source = source
        self.chain = chain
        self.fps = fps
        self.max_frames = max_frames
        self.duration = duration
        self.max_in_flight = max_in_flight
        self.engine = engine
        self.stats = stats or chain.stats
        chain.stats = self.stats
        self._sinks = sinks
        self._outputs: list[_Output] = []
        self._input: LatestSlot[Frame] | None = None
        self._workers = ThreadPoolExecutor(max_in_flight, thread_name_prefix="livefuse-infer")
        self._stop_capture = threading.Event()
        self._capture_done = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: BaseException | None = None
        self._emit_next = 0
        self._ready: dict[int, Frame] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._first_stage_free: asyncio.Event | None = None
        self.frame_listeners: list[Callable[[Frame], None]] = []  # run in the loop when a frame is emitted
        self.audio = audio
        self._audio_feeds: list[AudioFeed] = [sink.audio_feed for sink in sinks if sink.audio_feed is not None]
        if audio is not None:
            self.stats.audio = audio.description

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the pipeline to finish: safe from the loop thread and from signal handlers."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def swap_chain(self, chain: Chain) -> None:
        """Switch to another chain between frames: frames already in flight finish on the old one."""
        old, self.chain = self.chain, chain
        chain.stats = self.stats
        self._hook_chain(chain)
        if self._first_stage_free is not None:
            self._first_stage_free.set()  # a dispatcher waiting on the old chain looks at the new one
        pending = list(self._in_flight)
        if pending:
            await asyncio.wait(pending)
        await asyncio.get_running_loop().run_in_executor(None, old.close)

    # -- main ----------------------------------------------------------------------------------

    async def run(self) -> PipelineStats:
        """Run until the source ends, the frame or time limit is reached, or `stop()`; then drain."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._input = LatestSlot("input")
        self._first_stage_free = asyncio.Event()
        self._hook_chain(self.chain)
        self.stats.started_ns = time.monotonic_ns()
        for index, sink in enumerate(self._sinks):
            out = _Output(sink, OutputStats(), LatestSlot(sink.name),
                          ThreadPoolExecutor(1, thread_name_prefix=f"livefuse-out{index}"), primary=index == 0)
            self.stats.outputs[sink.name] = out.stats
            out.task = asyncio.create_task(self._drive_output(out))
            self._outputs.append(out)
        if self.audio is not None:
            self.audio.start(self._deliver_audio)
        capture = threading.Thread(target=self._capture_loop, name="livefuse-capture", daemon=True)
        capture.start()
        dispatcher = asyncio.create_task(self._dispatch())
        timer = self._loop.call_later(self.duration, self._stopped.set) if self.duration else None
        try:
            await self._stopped.wait()
        finally:
            if timer:
                timer.cancel()
            await self._drain(dispatcher)
            capture.join(timeout=1.0)
            if self.audio is not None:
                await self._loop.run_in_executor(None, self.audio.close)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    async def _drain(self, dispatcher: asyncio.Task[None]) -> None:
        """Stop capture, finish frames in flight, flush and close every output."""
        assert self._input is not None and self._loop is not None
        self._stop_capture.set()
        self._input.close()
        if self.audio is not None:  # sound up to the last captured frame reaches the outputs before they close
            await self._loop.run_in_executor(None, self._capture_done.wait, 2.0)
        await dispatcher
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))
        for out in self._outputs:
            out.slot.close()
        await asyncio.gather(*(out.task for out in self._outputs if out.task))
        for out in self._outputs:
            await self._close_output(out)
            out.executor.shutdown(wait=False)
        self._workers.shutdown(wait=False)
        self._update_engine_stats()

    async def _close_output(self, out: _Output) -> None:
        assert self._loop is not None
        if out.closed:
            return
        out.closed = True
        try:
            await self._loop.run_in_executor(out.executor, out.sink.close)
        except Exception as exc:  # noqa: BLE001 - close the other outputs whatever happens
            log.error("closing output %s failed: %s", out.sink.name, exc)

    def _update_engine_stats(self) -> None:
        if self.engine is None:
            return
        self.stats.provider = self.engine.provider
        self.stats.copies = dict(self.engine.copies())
        self.stats.transfers = self.chain.transfers()

    # -- capture (its own thread) --------------------------------------------------------------

    def _capture_loop(self) -> None:
        """Read until stopped, then close the source here: never from another thread while a read may block."""
        try:
            self._capture_frames()
        finally:
            self._capture_done.set()
            try:
                self.source.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide why capture ended
                log.debug("closing source failed: %s", exc)

    def _capture_frames(self) -> None:
        assert self._loop is not None
        seq = 0
        start_ns = time.monotonic_ns()
        failures = 0
        epoch = 0  # times the source was reopened: stages forget the old scene when it moves on
        while not self._stop_capture.is_set():
            try:
                image = self.source.read()
            except SourceLost as exc:
                failures = self._reconnect(failures, exc)
                if failures == 0 and not self._stop_capture.is_set():
                    epoch += 1  # reopened: the next frame may show another scene
                continue
            except BaseException as exc:  # noqa: BLE001 - reported by run() after a clean shutdown
                self._fatal = exc
                self.stop()
                return
            failures = 0
            if image is None:
                log.info("source %s ended", self.source.description)
                if self.audio is not None:
                    self.audio.flush()
                self.stop()
                return
            now = time.monotonic_ns()
            if self.audio is not None:  # picture and sound stamped on one clock
                stamp = self.audio.video_capture_ns(now)
                if stamp is None:  # a stream's backlog from before capture started
                    continue
                now = stamp
            frame = Frame(seq=seq, pts=(now - start_ns) * Frame.time_base // 1_000_000_000, capture_ns=now,
                          image=image, source_epoch=epoch)
            self._loop.call_soon_threadsafe(self._on_captured, frame)
            if self.audio is not None:
                self.audio.on_video(now)
            seq += 1
            if self.max_frames is not None and seq >= self.max_frames:
                self.stop()
                return

    def _deliver_audio(self, chunk: AudioChunk) -> None:
        """Hand a chunk to every output that carries sound (capture or device thread; never waits)."""
        self.stats.audio_chunks += 1
        self.stats.audio_seconds += chunk.samples.shape[1] / chunk.rate
        for feed in self._audio_feeds:
            if not feed.put(chunk):
                self.stats.audio_overflows += 1
                if self.stats.audio_overflows == 1:
                    log.error("an output stopped taking sound for %d s; its audio is incomplete",
                              feed.max_backlog_ns // 1_000_000_000)

    def _reconnect(self, failures: int, exc: Exception) -> int:
        """Reopen a lost live source with backoff; outputs keep showing the last frame meanwhile."""
        delay = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
        if failures == 0:
            log.warning("source %s lost (%s); reconnecting", self.source.description, exc)
        if self._stop_capture.wait(delay):
            return failures
        try:
            self.source.reopen()
            self.stats.reconnects += 1
            log.info("source %s reopened", self.source.description)
            return 0
        except Exception as again:  # noqa: BLE001 - keep trying while running
            log.debug("reopen failed: %s", again)
            return failures + 1

    def _on_captured(self, frame: Frame) -> None:
        assert self._input is not None
        if self._input.closed:  # captured while stopping: never admitted, so neither counted nor dropped
            return
        self.stats.frames_in += 1
        self._input.put(frame)
        self.stats.dropped = self._input.dropped

    # -- processing ----------------------------------------------------------------------------

    def _hook_chain(self, chain: Chain) -> None:
        loop, event = self._loop, self._first_stage_free
        if loop is not None and event is not None:
            chain.on_first_stage_free = lambda: loop.call_soon_threadsafe(event.set)

    async def _wait_first_stage_free(self) -> None:
        """Wait until the current chain's first stage can start on a frame right away.

        Taking a frame earlier would only leave it waiting for its turn and reaching the
        outputs older; taking it now gets the newest one.
        """
        assert self._first_stage_free is not None
        while True:
            self._first_stage_free.clear()
            if self.chain.first_stage_free():
                return
            await self._first_stage_free.wait()

    async def _dispatch(self) -> None:
        assert self._input is not None
        capacity = asyncio.Semaphore(self.max_in_flight)
        order = 0
        while True:
            await capacity.acquire()
            await self._wait_first_stage_free()
            try:
                frame = await self._input.get()
            except SlotClosed:
                capacity.release()
                return
            assert frame is not None
            chain = self.chain
            task = asyncio.create_task(self._process(chain, chain.admit(), order, frame, capacity))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            order += 1

    async def _process(self, chain: Chain, ticket: int, order: int, frame: Frame,
                       capacity: asyncio.Semaphore) -> None:
        assert self._loop is not None
        try:
            await self._loop.run_in_executor(self._workers, chain.run, frame, ticket)
        finally:
            capacity.release()
        frame.image.flags.writeable = False  # outputs share it; none may change it
        self._ready[order] = frame
        while self._emit_next in self._ready:
            self._emit(self._ready.pop(self._emit_next))
            self._emit_next += 1

    def _emit(self, frame: Frame) -> None:
        self.stats.frames_processed += 1
        for out in self._outputs:
            out.slot.put(frame)
            out.stats.dropped = out.slot.dropped
        for listener in self.frame_listeners:
            listener(frame)

    # -- outputs -------------------------------------------------------------------------------

    async def _drive_output(self, out: _Output) -> None:
        assert self._loop is not None
        idle_timeout = 2.0 / self.fps if out.sink.repeat_when_idle else None
        while True:
            try:
                frame = await out.slot.get(timeout=idle_timeout)
            except SlotClosed:
                return
            fresh = frame is not None
            if frame is None:
                if out.last is None:
                    continue
                frame = dataclasses.replace(out.last, capture_ns=time.monotonic_ns())
            try:
                if out.sink.inline:
                    out.sink.write(frame)  # costs nothing (null): no thread hop
                else:
                    await self._loop.run_in_executor(out.executor, out.sink.write, frame)
            except Exception as exc:  # noqa: BLE001 - one output failing must not stop the others
                if self._output_failed(out, exc):
                    out.slot.close()  # given up: no more frames for it, and it is finalised now, not at the end
                    await self._close_output(out)
                    return
                continue
            out.consecutive_errors = 0
            out.last = frame
            if fresh:
                now = time.monotonic_ns()
                out.stats.frames += 1
                out.stats.latency.add(now - frame.capture_ns)
                if out.primary:
                    self.stats.record_output(now - frame.capture_ns, now)

    def _output_failed(self, out: _Output, exc: Exception) -> bool:
        """Count a write error; give the output up at once when retrying cannot help (OutputFailed), else after
        many in a row. True when given up: logged once, and shown in the stats as the output's `failed`."""
        out.stats.errors += 1
        out.consecutive_errors += 1
        if isinstance(exc, OutputFailed):
            out.stats.failed = str(exc)
            log.error("output %s stopped: %s; the other outputs go on", out.sink.name, exc)
            return True
        if out.stats.errors == 1:
            log.warning("output %s failed to write (%s); retrying", out.sink.name, exc)
        if out.consecutive_errors >= DROP_OUTPUT_AFTER_ERRORS:
            out.stats.failed = f"{exc} ({out.consecutive_errors} write errors in a row)"
            log.error("output %s failed %d times in a row; closing it", out.sink.name, out.consecutive_errors)
            return True
        return False
