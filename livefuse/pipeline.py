"""Source → chain → outputs: asyncio only starts, swaps and stops it; every frame moves between threads.

- The capture thread (livefuse/capture.py) reads the source and puts each frame, stamped with its
  capture time, into a latest-frame slot; it never waits on inference.
- The dispatcher thread takes the newest frame whenever fewer than `max_in_flight`
  frames are being processed and the chain's first stage is free (so no frame
  ages waiting behind another), and runs the chain on a worker thread pool.
- The worker that finishes a frame releases processed frames in capture order to one latest-frame
  slot per output; each output writes on its own thread (livefuse/outputs.py), so a slow one only drops its
  own frames. Latency is measured when the primary (first) output has written.
  No frame goes through the asyncio loop, so the loop stays free for the web server and WebRTC.
- A stage that hangs (a call that has not returned after `stall_after` seconds) must not freeze the
  stream: until it returns, the newest captured frames go to the outputs past the chain, covered whole
  when the chain guards privacy (a face stage that hangs before anonymise shows nothing), as they are
  otherwise. Frames the hung chain finishes later than those are dropped, so outputs stay in order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from livefuse.audio.chunk import AudioChunk
from livefuse.audio.feed import AudioFeed
from livefuse.audio.inputs import AudioInput
from livefuse.capture import Capture
from livefuse.chain import Chain, cover_whole
from livefuse.frame import Frame
from livefuse.outputs import Output
from livefuse.sinks.base import Sink
from livefuse.sleep import PAUSE_WAIT_S, SleepWatch, paused_picture
from livefuse.slot import SlotClosed, ThreadSlot
from livefuse.sources.base import Source
from livefuse.stats import PipelineStats
from livefuse.threads import start_thread

if TYPE_CHECKING:
    from livefuse.engine import Engine

log = logging.getLogger("livefuse.pipeline")

STALL_AFTER_S = 1.0  # a stage call this long has hung: the stream goes on past it
STALL_CHECK_S = 0.1


class Pipeline:
    """Runs one source through a swappable chain into several outputs until stopped."""

    def __init__(
        self,
        source: Source,
        chain: Chain,
        sinks: list[Sink],
        *,
        fps: float,
        max_frames: int | None = None,
        duration: float | None = None,
        max_in_flight: int = 2,
        stats: PipelineStats | None = None,
        engine: Engine | None = None,
        audio: AudioInput | None = None,
        stall_after: float = STALL_AFTER_S,
        sleep_after: float | None = None,
    ) -> None:
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
        self._outputs: list[Output] = []  # replaced, never changed in place: emitting threads iterate it
        self._input: ThreadSlot[Frame] = ThreadSlot("input")
        self._workers = ThreadPoolExecutor(max_in_flight, thread_name_prefix="livefuse-infer")
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capacity = threading.Semaphore(max_in_flight)
        self._first_stage_free = threading.Event()  # set by the chain's worker when its first stage frees up
        self._in_flight: set[Future[None]] = set()  # guarded by _emitting
        self._emitting = threading.Lock()  # one thread at a time orders, counts and emits frames
        self._emit_next = 0
        self._ready: dict[int, Frame | None] = {}
        # Called for every emitted frame, on the thread that emits it (a worker or the stall thread, one at a
        # time): a listener must be quick and may touch no asyncio object (hand over with call_soon_threadsafe).
        self.frame_listeners: list[Callable[[Frame], None]] = []
        self.stall_after = stall_after
        self._last_emitted_ns = -1  # capture time of the newest frame sent to the outputs
        self._stale = 0  # frames the chain finished after newer ones had gone out past a stall (dropped)
        self._past_stall = ThreadPoolExecutor(1, thread_name_prefix="livefuse-stall")
        self.sleep_after = sleep_after  # seconds unwatched before sleeping (livefuse/sleep.py); None: never
        self.sleep_watch: SleepWatch | None = None
        self._last_frame: Frame | None = None  # the newest emitted frame (the paused picture is made from it)
        self.audio = audio
        self._audio_feeds: list[AudioFeed] = [sink.audio_feed for sink in sinks if sink.audio_feed is not None]
        if audio is not None:
            self.stats.audio = audio.description

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the pipeline to finish: safe from the loop thread, other threads and signal handlers."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def swap_chain(self, chain: Chain) -> None:
        """Switch to another chain between frames: frames already in flight finish on the old one."""
        old, self.chain = self.chain, chain
        chain.stats = self.stats
        self._hook_chain(chain)
        self._first_stage_free.set()  # a dispatcher waiting on the old chain looks at the new one
        await self._finish_in_flight()
        await asyncio.get_running_loop().run_in_executor(None, old.close)

    def add_output(self, sink: Sink) -> None:
        """Start one more output while running (on the loop): a session recorded or pushed on demand. It gets
        frames from the next one on, and is flushed and closed with the others at the end."""
        if self._stopped is None or self._stopped.is_set():
            raise RuntimeError("the pipeline is not running")
        self._start_output(Output(sink, len(self._outputs), self.fps))

    async def remove_output(self, sink: Sink) -> None:
        """Stop one output added while running: it is flushed and closed (a recording finalised) now."""
        out = next((o for o in self._outputs if o.sink is sink), None)
        if out is None:
            return
        self._outputs = [o for o in self._outputs if o is not out]
        out.slot.close()  # an emitting thread still holding the old list finds it closed: ignored
        await out.wait_closed()
        self.stats.outputs.pop(sink.name, None)

    def _start_output(self, out: Output) -> None:
        self.stats.outputs[out.sink.name] = out.stats
        out.start()
        self._outputs = [*self._outputs, out]

    # -- main ----------------------------------------------------------------------------------

    async def run(self) -> PipelineStats:
        """Run until the source ends, the frame or time limit is reached, or `stop()`; then drain."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._hook_chain(self.chain)
        self.stats.started_ns = time.monotonic_ns()
        for index, sink in enumerate(self._sinks):
            self._start_output(Output(sink, index, self.fps, on_written=self._primary_written if index == 0 else None))
        if self.audio is not None:
            self.audio.start(self._deliver_audio)
        capture = Capture(
            self.source, self._on_captured, self.stop, stats=self.stats, audio=self.audio, max_frames=self.max_frames
        )
        capture.start()
        if self.sleep_after is not None:
            self.sleep_watch = SleepWatch(
                lambda: [out.sink for out in self._outputs], capture, self.sleep_after, self.stats, self._show_paused
            )
            self.sleep_watch.start()
        dispatcher = start_thread(self._dispatch, "livefuse-dispatch")
        watchdog = asyncio.create_task(self._watch_stalls())
        timer = self._loop.call_later(self.duration, self._stopped.set) if self.duration else None
        try:
            await self._stopped.wait()
        finally:
            if timer:
                timer.cancel()
            watchdog.cancel()
            if self.sleep_watch is not None:
                await self._loop.run_in_executor(None, self.sleep_watch.stop)
            await self._drain(dispatcher, capture)
            capture.join(timeout=1.0)
            if self.audio is not None:
                await self._loop.run_in_executor(None, self.audio.close)
        if capture.fatal is not None:
            raise capture.fatal
        return self.stats

    async def _drain(self, dispatcher: Future[None], capture: Capture) -> None:
        """Stop capture, finish frames in flight, flush and close every output."""
        assert self._loop is not None
        capture.stop()
        self._input.close()
        if self.audio is not None:  # sound up to the last captured frame reaches the outputs before they close
            await self._loop.run_in_executor(None, capture.done.wait, 2.0)
        await asyncio.wrap_future(dispatcher)
        await self._finish_in_flight()
        for out in self._outputs:
            out.slot.close()
        await asyncio.gather(*(out.wait_closed() for out in self._outputs))
        self._workers.shutdown(wait=False)
        self._past_stall.shutdown(wait=False)
        self._update_engine_stats()

    async def _finish_in_flight(self) -> None:
        """Until every frame being processed now has been emitted (or dropped)."""
        with self._emitting:
            pending = [asyncio.wrap_future(future) for future in self._in_flight]
        if pending:
            await asyncio.wait(pending)

    def _update_engine_stats(self) -> None:
        if self.engine is None:
            return
        self.stats.provider = self.engine.provider
        self.stats.copies = dict(self.engine.copies())
        self.stats.transfers = self.chain.transfers()

    # -- capture and sound ---------------------------------------------------------------------

    def _deliver_audio(self, chunk: AudioChunk) -> None:
        """Hand a chunk to every output that carries sound (capture or device thread; never waits)."""
        self.stats.count(audio_chunks=1, audio_seconds=chunk.samples.shape[1] / chunk.rate)
        for feed in self._audio_feeds:
            if not feed.put(chunk):
                self.stats.count(audio_overflows=1)
                if self.stats.audio_overflows == 1:
                    log.error(
                        "an output stopped taking sound for %d s; its audio is incomplete",
                        feed.max_backlog_ns // 1_000_000_000,
                    )

    def _on_captured(self, frame: Frame) -> None:
        """On the capture thread: offer the frame to the dispatcher (a frame captured while stopping is never
        admitted, so neither counted nor dropped)."""
        if self._input.put(frame):
            self.stats.count(frames_in=1)
            self._count_dropped()

    def _count_dropped(self, stale: int = 0) -> None:
        with self.stats.lock:
            self._stale += stale
            self.stats.dropped = self._input.dropped + self._stale

    # -- processing ----------------------------------------------------------------------------

    def _hook_chain(self, chain: Chain) -> None:
        chain.on_first_stage_free = self._first_stage_free.set

    def _wait_first_stage_free(self) -> None:
        """Wait until the current chain's first stage can start on a frame right away.

        Taking a frame earlier would only leave it waiting for its turn and reaching the
        outputs older; taking it now gets the newest one.
        """
        while True:
            self._first_stage_free.clear()
            if self.chain.first_stage_free():
                return
            self._first_stage_free.wait()

    def _dispatch(self) -> None:
        """The dispatcher thread: hand the newest frame to a worker whenever one may start on it."""
        order = 0
        while True:
            self._capacity.acquire()
            self._wait_first_stage_free()
            try:
                frame = self._input.get()
            except SlotClosed:
                self._capacity.release()
                return
            assert frame is not None
            chain = self.chain
            ticket = chain.admit()
            with self._emitting:
                future = self._workers.submit(self._process, chain, ticket, order, frame)
                self._in_flight.add(future)
            future.add_done_callback(self._done)
            order += 1

    def _done(self, future: Future[None]) -> None:
        with self._emitting:
            self._in_flight.discard(future)

    def _process(self, chain: Chain, ticket: int, order: int, frame: Frame) -> None:
        """On a worker: run the chain, then release whatever is next in capture order to the outputs."""
        done: Frame | None = frame
        try:
            chain.run(frame, ticket)
        except Exception:  # never expected (stages fall back); without this the frames after it would wait forever
            log.exception("the chain failed on frame %d; it is skipped", frame.seq)
            done = None
        finally:
            self._capacity.release()
        if done is not None:
            done.image.flags.writeable = False  # outputs share it; none may change it
        with self._emitting:
            self._ready[order] = done
            while self._emit_next in self._ready:
                ready = self._ready.pop(self._emit_next)
                self._emit_next += 1
                if ready is None:
                    continue
                if ready.capture_ns <= self._last_emitted_ns:
                    self._count_dropped(stale=1)  # newer frames went out past a stall meanwhile: outputs stay in order
                    continue
                self._emit(ready)

    # -- a stage that hangs --------------------------------------------------------------------

    async def _watch_stalls(self) -> None:
        """Every STALL_CHECK_S: while a stage call has hung, send the newest captured frame on past the chain."""
        assert self._loop is not None
        stalled_at: str | None = None
        while True:
            await asyncio.sleep(STALL_CHECK_S)
            chain = self.chain
            stall = chain.stalled(self.stall_after)
            if stall is None:
                if stalled_at is not None:
                    log.warning("stage %s returned; filtering again", stalled_at)
                    stalled_at = self.stats.stalled = None
                continue
            label, seconds = stall
            self.stats.stalled = f"{label} for {seconds:.1f} s"
            if stalled_at != label:
                stalled_at = label
                log.error(
                    "stage %s has not returned for %.1f s: frames go on %s until it does",
                    label,
                    seconds,
                    "covered whole" if chain.guards_privacy else "unfiltered",
                )
            frame = self._input.take_nowait()
            if frame is not None:
                await self._loop.run_in_executor(self._past_stall, self._send_past_stall, frame, chain.guards_privacy)

    def _send_past_stall(self, frame: Frame, cover: bool) -> None:
        """On the stall thread: one frame straight to the outputs (covered whole when privacy is guarded)."""
        if cover:
            cover_whole(frame)
            self.stats.count(frames_covered=1)
        self.stats.count(frames_past_stall=1)
        frame.image.flags.writeable = False
        with self._emitting:
            if frame.capture_ns > self._last_emitted_ns:
                self._emit(frame)

    def _show_paused(self) -> None:
        """On the sleep thread, once capture sleeps: the last picture, marked paused, to every output (one
        that repeats its last frame, the virtual camera, keeps showing it), after the frames in flight."""
        if self._input.take_nowait() is not None:  # captured before the sleep, not yet taken: not shown
            self._count_dropped(stale=1)
        deadline = time.monotonic() + PAUSE_WAIT_S
        while time.monotonic() < deadline:
            with self._emitting:
                if not self._in_flight:
                    break
            time.sleep(0.01)
        with self._emitting:
            last = self._last_frame
            if last is None:
                return
            image = paused_picture(last.image)
            image.flags.writeable = False
            self._emit(Frame(seq=last.seq, capture_ns=time.monotonic_ns(), image=image, source_epoch=last.source_epoch))

    def _emit(self, frame: Frame) -> None:
        """Send a processed frame to every output and listener (holding `_emitting`)."""
        self._last_frame = frame
        self._last_emitted_ns = frame.capture_ns
        self.stats.count(frames_processed=1)
        for out in self._outputs:
            out.put(frame)
        for listener in self.frame_listeners:
            listener(frame)

    def _primary_written(self, frame: Frame, now_ns: int) -> None:
        """The primary output wrote a fresh frame: the pipeline's latency is measured here."""
        self.stats.record_output(now_ns - frame.capture_ns, now_ns)
