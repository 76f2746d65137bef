"""Sessions: the streams the daemon filters for others (WHIP ingests, the page's "filter my camera").

A session is a camera peer (see signalling.py): its own pipeline and preset between the track it
sends and the filtered track it gets back, which WHEP viewers can watch too. `SessionRunner` starts
and stops that pipeline; `Sessions` is the view the API, /metrics and admission take of them: their
figures, and whether one more fits.

Admission refuses a new session (503 with Retry-After) rather than push every stream past its budget:
while a session's recent p95 is past `NEAR_BUDGET` of its glass-to-glass budget (the network and codecs
add to what the daemon measures), or when one more session, at what a settled running one costs, would
take the daemon past `MAX_CPU_SHARE` of its cores (the encoders run after the measured output). The
daemon's own stream, measured while no session ran, is not charged to the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from livefuse.presets import Preset
from livefuse.runtime import Runtime
from livefuse.stats import percentiles_ms
from livefuse.threads import usable_cores
from livefuse.web.periodic import Periodic
from livefuse.web.signalling import Peer, Peers
from livefuse.web.tracks import TrackSink, TrackSource
from livefuse.wiring import assemble

if TYPE_CHECKING:
    from livefuse.daemon import Served

log = logging.getLogger("livefuse.web")

STOP_TIMEOUT_S = 5.0
DEFAULT_BUDGET_MS = 150.0
MAX_BUDGET_MS = 10_000.0
NEAR_BUDGET = 0.8  # a session past this share of its budget (recent p95) leaves no room for another
RECENT_FRAMES = 60  # about two seconds at 30 fps: the latency admission looks at
MIN_FRAMES = 10  # fewer measured frames than this: a session that just started is not judged yet
RETRY_AFTER_S = 5
# Of the cores the daemon may run on: a 4th stream admitted at 95 % fell under 30 fps
# (the runs behind these constants: benchmarks/results/2026-12-02-constants.md).
MAX_CPU_SHARE = 0.9
CPU_SAMPLE_S = 2.0  # the window `share` covers: the load that decides whether the daemon is full now
STEP_S = 0.25  # how often the CPU time is marked: the shortest stretch a session's cost can be read from
MIN_SAMPLE_SHARE = 0.5  # session-runs within the CPU sample needed before a cost per session is trusted
# A session's first second (ICE and DTLS, codecs opening, first key frames) costs more than the rest: skipped.
SETTLE_S = 1.0
# A session with no frame for this long has paused: the little it costs then is not a session's cost.
PAUSED_S = 1.0
# Costs read from short stretches are noisy both ways: the dearest non-overlapping reading this recent counts.
COST_MEMORY_S = 10.0


class SessionRunner:
    """Starts a camera peer's pipeline between its two tracks, and stops it (signalling.py's SessionPipelines).

    A session runs the preset it asked for, or a copy of the daemon's (with the live values it has now), on the
    daemon's engine under its own id (its share bucket in a grey release), at the daemon's frame size and rate.
    """

    def __init__(self, served: Served) -> None:
        self.served = served
        self.source_face: np.ndarray | None = None  # the last one uploaded: a new session applies it at a switch
        self._running: dict[str, tuple[TrackSource, asyncio.Task[Any]]] = {}

    async def start(self, peer: Peer, asked: Preset | None) -> None:
        assert peer.incoming is not None and peer.outgoing is not None
        served = self.served
        preset = copy.deepcopy(asked or served.preset())
        engine = served.engine.for_session(peer.id)
        size, fps = served.size, served.fps
        assembly = await asyncio.get_running_loop().run_in_executor(None, assemble, preset, engine, size, fps)
        source = TrackSource(peer.incoming, size, fps)
        sink = TrackSink(peer.outgoing, audio=peer.outgoing_audio)
        peer.runtime = Runtime.wire(assembly, source, [sink], settings={"source": "webrtc"})
        peer.runtime.source_face = self.source_face
        source.start()
        task = asyncio.create_task(peer.runtime.pipeline.run())
        task.add_done_callback(lambda done: _pipeline_ended(peer, done))
        self._running[peer.id] = (source, task)

    async def stop(self, peer: Peer) -> None:
        running = self._running.pop(peer.id, None)
        if running is None or peer.runtime is None:
            return
        source, task = running
        peer.runtime.pipeline.stop()
        source.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
        await asyncio.get_running_loop().run_in_executor(None, peer.runtime.pipeline.chain.close)


def _pipeline_ended(peer: Peer, task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("camera peer %s: pipeline failed: %s", peer.id, task.exception())


class CpuLoad(Periodic):
    """The daemon's CPU use as a share of the cores it may use, marked every `STEP_S` seconds, so that the share
    over any recent stretch can be read: the last `CPU_SAMPLE_S` seconds (`share`), or only the part after the
    newest session settled (`share_since`). `baseline` is the share over a whole window in which no session ran
    (the daemon's own stream, not charged to sessions). The marks are `time.process_time` (all threads, to the
    nanosecond): /proc's clock ticks are too coarse for a quarter second.
    """

    interval = STEP_S

    def __init__(
        self, sessions_running: Callable[[], int] = lambda: 0, on_sample: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__()
        self._on_sample = on_sample
        self.cores = usable_cores()
        self._sessions_running = sessions_running
        self._marks: deque[tuple[float, float]] = deque()  # (monotonic time, process CPU seconds)
        self._busy_at: float | None = None  # the latest mark at which a session ran (or the start-up ended)
        self.share = 0.0
        self.baseline = 0.0
        self.sampled_at = time.monotonic()  # when `share` was measured: the end of its window
        self.window_s = CPU_SAMPLE_S  # how long a stretch `share` covers

    def start(self) -> None:
        now = time.monotonic()
        self._busy_at = now + CPU_SAMPLE_S  # the daemon's first seconds (its first frames) are not its baseline
        self.mark(now, time.process_time())
        super().start()

    def tick(self, late_ns: int) -> None:
        self.mark(time.monotonic(), time.process_time())

    def mark(self, at: float, cpu_s: float) -> None:
        """Record the process's CPU time `cpu_s` at monotonic time `at`, then update the shares."""
        self._marks.append((at, cpu_s))
        window_start = at - CPU_SAMPLE_S - STEP_S / 2  # the mark nearest CPU_SAMPLE_S ago, whatever the jitter
        while self._marks[0][0] < window_start:
            self._marks.popleft()
        if self._sessions_running():
            self._busy_at = max(at, self._busy_at or at)
        self.share, self.window_s = self.share_since(window_start)
        self.sampled_at = at
        whole = self.window_s >= CPU_SAMPLE_S - STEP_S
        if whole and (self._busy_at is None or self._marks[0][0] > self._busy_at):
            self.baseline = self.share  # a whole window that began after the last mark at which a session ran
        self._on_sample()

    def share_since(self, since: float) -> tuple[float, float]:
        """(share, seconds) over the marks from the first one at or after `since` to the latest; (0, 0) when
        that is a single mark."""
        start = next((m for m in self._marks if m[0] >= since), self._marks[-1])
        end = self._marks[-1]
        span = end[0] - start[0]
        if span <= 0:
            return 0.0, 0.0
        return (end[1] - start[1]) / span / self.cores, span


class BudgetWatch(Periodic):
    """Says in the log when a session's recent p95 goes past its budget, and when it is back within it."""

    interval = CPU_SAMPLE_S

    def __init__(self, sessions: Sessions) -> None:
        super().__init__()
        self.sessions = sessions
        self.over: set[str] = set()  # ids of the sessions past their budget now

    def tick(self, late_ns: int) -> None:
        running = {peer.id: peer for peer in self.sessions}
        self.over &= set(running)
        for session_id, peer in running.items():
            recent, budget = self.sessions.recent_latency(peer), self.sessions.budget(peer)
            if recent is None:
                continue
            if recent["p95"] > budget and session_id not in self.over:
                self.over.add(session_id)
                log.warning(
                    "session %s runs at %.0f ms p95, over its %g ms latency budget; its frames are dropped "
                    "rather than queued, and new sessions are refused while it is near it",
                    session_id,
                    recent["p95"],
                    budget,
                )
            elif recent["p95"] <= budget and session_id in self.over:
                self.over.discard(session_id)
                log.info(
                    "session %s is back within its %g ms latency budget (%.0f ms p95)",
                    session_id,
                    budget,
                    recent["p95"],
                )


def check_budget(text: str | None) -> float | None:
    """A budget from a query string (milliseconds), or None when not given; ValueError says what is allowed."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_BUDGET_MS:
        raise ValueError(
            f"budget_ms must be a number of milliseconds above 0 and at most {MAX_BUDGET_MS:g}, not {text[:40]!r}"
        )
    return value


class Sessions:
    """The camera peers of one server, as sessions: listing, figures, budgets and admission."""

    def __init__(self, peers: Peers, budget_ms: float = DEFAULT_BUDGET_MS) -> None:
        self.peers = peers
        self.budget_ms = budget_ms  # for sessions that ask for none
        self.cpu = CpuLoad(lambda: len(list(self)), on_sample=self.measure_cost)
        self.watch = BudgetWatch(self)
        self.max_cpu_share = MAX_CPU_SHARE
        # (when, where its reading began, CPU share per session) at each CPU mark, over the part of the reading
        # (up to CPU_SAMPLE_S long) in which every running session was past its first SETTLE_S seconds, none
        # was paused, and no other ran
        self._costs: deque[tuple[float, float, float]] = deque(maxlen=128)
        self._running_ids: frozenset[str] = frozenset()
        self._changed_at = 0.0  # the first CPU mark taken with the sessions running now, all streaming
        self._reading_from = 0.0  # where the reading being taken began, at the latest (readings do not overlap)
        self._frames: dict[str, tuple[int, float]] = {}  # session id: (frames received, the mark they grew at)

    def __iter__(self) -> Iterator[Peer]:
        return iter(
            [p for p in self.peers.peers.values() if p.mode == "camera" and p.runtime is not None and not p.closing]
        )

    def runtimes(self) -> list[Runtime]:
        return [p.runtime for p in self.peers.peers.values() if p.runtime is not None]

    def get(self, session_id: str) -> Peer | None:
        peer = self.peers.session(session_id)
        return peer if peer is not None and peer.runtime is not None else None

    def budget(self, peer: Peer) -> float:
        return peer.budget_ms if peer.budget_ms is not None else self.budget_ms

    def admission_budget(self, peer: Peer) -> float:
        """The budget admission holds a session to: its own, but never tighter than the operator's
        (--session-budget-ms), so that a client asking for `budget_ms=0.001` cannot lock the others out."""
        return max(self.budget(peer), self.budget_ms)

    def recent_latency(self, peer: Peer) -> dict[str, float] | None:
        """Capture-to-output percentiles of the session's last frames (ms); None until enough are measured."""
        assert peer.runtime is not None
        samples = peer.runtime.pipeline.stats.latency.samples
        if len(samples) < MIN_FRAMES:
            return None
        return percentiles_ms(list(islice(reversed(samples), RECENT_FRAMES)))

    def measure_cost(self) -> None:
        """After each CPU mark: the cost of one session over the part of the last CPU_SAMPLE_S seconds in which
        every running session was settled (past its first SETTLE_S seconds) and streaming, and none other ran:
        neither setups nor paused sessions are taken for what a session costs."""
        at, running = self.cpu.sampled_at, list(self)
        ids = frozenset(p.id for p in running)
        paused_since = self._note_frames(running, at)
        if paused_since is not None:  # the costs measured since its last frame held a paused session
            while self._costs and self._costs[-1][0] > paused_since:
                self._costs.pop()
        if ids != self._running_ids or paused_since is not None:  # the marks before hold other work
            self._running_ids, self._changed_at = ids, at
        if not running:
            return
        settled_from = max(max(p.started for p in running) + SETTLE_S, self._changed_at)
        share, span = self.cpu.share_since(max(settled_from, self._reading_from))
        if span > 0:
            self._costs.append((at, round(at - span, 6), max(0.0, share - self.cpu.baseline) / len(running)))
        if span >= CPU_SAMPLE_S - STEP_S / 2:
            self._reading_from = at  # a whole window's reading: the next one begins here, not overlapping it

    def _note_frames(self, running: list[Peer], at: float) -> float | None:
        """Counts each session's frames at this mark; the mark of the last frame of the session paused
        longest (none for PAUSED_S seconds), or None when every one is streaming."""
        frames: dict[str, tuple[int, float]] = {}
        for peer in running:
            assert peer.runtime is not None
            count = peer.runtime.pipeline.stats.frames_in
            before = self._frames.get(peer.id)
            frames[peer.id] = before if before is not None and before[0] == count else (count, at)
        self._frames = frames
        paused = [grew for _, grew in frames.values() if at - grew > PAUSED_S]
        return min(paused) if paused else None

    @property
    def settled_cost(self) -> float | None:
        """What one streaming session costs: the dearest reading taken up to COST_MEMORY_S before the latest one
        (readings of up to CPU_SAMPLE_S, one after the other, each by its whole length); None before there was
        one."""
        if not self._costs:
            return None
        latest = self._costs[-1][0]
        readings: dict[float, float] = {}  # a reading still growing: its latest, longest figure counts
        for when, begin, cost in self._costs:
            if when >= latest - COST_MEMORY_S:
                readings[begin] = cost
        return max(readings.values())

    def share_with_one_more(self, running: list[Peer]) -> float | None:
        """The daemon's CPU share with one more session like those running: its share without sessions,
        plus the measured cost of one session times one more.

        The cost is `settled_cost`; before there is one, the current share split between the sessions, each
        counting for the part of the sample it ran (up to when it was taken); None while they ran too little.
        """
        cost = self.settled_cost
        if cost is not None:
            return self.cpu.baseline + cost * (len(running) + 1)
        end = self.cpu.sampled_at
        if self.cpu.window_s <= 0:
            return None
        ran = sum(min(1.0, max(0.0, end - p.started) / self.cpu.window_s) for p in running)
        if ran < MIN_SAMPLE_SHARE:
            return None
        each = max(0.0, self.cpu.share - self.cpu.baseline) / ran
        return self.cpu.baseline + each * (len(running) + 1)

    def refusal(self) -> str | None:
        """Why one more session would not fit now (measured), or None when it would."""
        running = list(self)
        if running and self.cpu.share > self.max_cpu_share:
            return (
                f"at capacity: the daemon uses {100 * self.cpu.share:.0f} % of its CPU with {len(running)} "
                f"sessions; try again in {RETRY_AFTER_S} s"
            )
        predicted = self.share_with_one_more(running) if running else None
        if predicted is not None and predicted > self.max_cpu_share:
            return (
                f"at capacity: one more session would take the daemon to about {100 * predicted:.0f} % of its "
                f"CPU ({100 * self.cpu.share:.0f} % now with {len(running)}); try again in {RETRY_AFTER_S} s"
            )
        for peer in running:
            recent = self.recent_latency(peer)
            budget = self.admission_budget(peer)
            if recent is not None and recent["p95"] > NEAR_BUDGET * budget:
                return (
                    f"at capacity: session {peer.id} runs at {recent['p95']:.0f} ms p95 of its {budget:g} ms "
                    f"latency budget; try again in {RETRY_AFTER_S} s"
                )
        return None

    def viewers(self, peer: Peer) -> int:
        return sum(1 for p in self.peers.peers.values() if p.mode == "preview" and p.watching == peer.id)

    def describe(self, peer: Peer) -> dict[str, Any]:
        """A session's figures, as /api/sessions lists them."""
        assert peer.runtime is not None
        stats = peer.runtime.pipeline.stats
        recent = self.recent_latency(peer)
        budget = self.budget(peer)
        return {
            "id": peer.id,
            "preset": peer.runtime.preset.name,
            "state": peer.pc.connectionState,
            "resource": f"/whip/{peer.id}",
            "viewers": self.viewers(peer),
            "fps": round(stats.fps, 2),
            "frames_in": stats.frames_in,
            "frames_out": stats.frames_out,
            "dropped": stats.dropped,
            "latency_ms": stats.latency.summary(),
            "recent_latency_ms": recent,
            "budget_ms": budget,
            "over_budget": recent is not None and recent["p95"] > budget,
            "disabled_stages": [h["label"] for h in peer.runtime.pipeline.chain.health_report() if h["disabled"]],
        }
