"""Sessions: the streams the daemon filters for others (WHIP ingests, the page's "filter my camera").

A session is a camera peer (see signalling.py): its own pipeline and preset between the track it
sends and the filtered track it gets back, which WHEP viewers can watch too. This module is the
view the API, /metrics and admission take of them: their figures, and whether one more fits.

Admission: each session has a glass-to-glass budget (default 150 ms). What the daemon measures is
capture to output inside it; the network and the peers' codecs add to that, so a session whose recent
p95 has passed `NEAR_BUDGET` of its budget has no room left, and a new session is refused (503 with
Retry-After) rather than pushing every stream past its budget. The video encoders run after that
output, so the daemon's own CPU is watched too: past `MAX_CPU_SHARE` of the cores it may use (over
the last seconds), one more stream would only slow every encoder down. That is judged before it
happens: what one running session costs is measured, from the recent CPU samples in which every session
was past its first second (its setup costs more than the rest), and a session that would take the
daemon past `MAX_CPU_SHARE` is refused, so those admitted keep their latency. The
daemon's own stream is not charged to the sessions: its share, measured while none ran, is taken off
first. Latency cannot grow without bound meanwhile: the pipelines drop frames instead of queueing them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import psutil

from livefuse.stats import percentiles_ms
from livefuse.threads import usable_cores
from livefuse.web.periodic import Periodic
from livefuse.web.signalling import Peer, Peers

log = logging.getLogger("livefuse.web")

DEFAULT_BUDGET_MS = 150.0
MAX_BUDGET_MS = 10_000.0
NEAR_BUDGET = 0.8  # a session past this share of its budget (recent p95) leaves no room for another
RECENT_FRAMES = 60  # about two seconds at 30 fps: the latency admission looks at
MIN_FRAMES = 10  # fewer measured frames than this: a session that just started is not judged yet
RETRY_AFTER_S = 5
# Of the cores the daemon may run on. Three streams at 83-85 % kept p95 at 20-29 ms; a 4th admitted at 95 %
# (under the rule before `settled_cost`) brought every stream to 28-29 fps and p95 91-115 ms.
MAX_CPU_SHARE = 0.9
CPU_SAMPLE_S = 2.0
MIN_SAMPLE_SHARE = 0.5  # session-runs within the CPU sample needed before a cost per session is trusted
# A session's first second (ICE and DTLS, codecs opening, the first key frames) costs more than the rest:
# judged by samples that held it, two sessions at 24 % of the core were taken for 29 % each.
SETTLE_S = 1.0
# A session whose peer stopped sending costs little until it is closed: taken alone, such a sample made a
# 4th stream look affordable at the end of a run of three. The dearest settled sample this recent counts.
COST_MEMORY_S = 10.0


class CpuLoad(Periodic):
    """The daemon's CPU use over the last `CPU_SAMPLE_S` seconds, as a share of the cores it may use, and
    what it was when no session ran (the daemon's own stream: `baseline`, not charged to sessions)."""

    interval = CPU_SAMPLE_S

    def __init__(self, sessions_running: Callable[[], int] = lambda: 0,
                 on_sample: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self._on_sample = on_sample
        self._process = psutil.Process()
        self._cores = usable_cores()
        self.share = 0.0
        self.baseline = 0.0
        self.sampled_at = time.monotonic()  # when `share` was measured: the end of its sample
        self._sessions_running = sessions_running
        self._idle_samples = 0  # samples in a row with no session running: the second is a clean baseline

    def start(self) -> None:
        self._process.cpu_percent(None)  # the first call starts the count
        super().start()

    def tick(self, late_ns: int) -> None:
        self.share = self._process.cpu_percent(None) / 100 / self._cores
        self.sampled_at = time.monotonic()
        self._idle_samples = self._idle_samples + 1 if self._sessions_running() == 0 else 0
        if self._idle_samples >= 2:
            self.baseline = self.share
        self._on_sample()


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
                log.warning("session %s runs at %.0f ms p95, over its %g ms latency budget; its frames are dropped "
                            "rather than queued, and new sessions are refused while it is near it", session_id,
                            recent["p95"], budget)
            elif recent["p95"] <= budget and session_id in self.over:
                self.over.discard(session_id)
                log.info("session %s is back within its %g ms latency budget (%.0f ms p95)", session_id, budget,
                         recent["p95"])


def check_budget(text: str | None) -> float | None:
    """A budget from a query string (milliseconds), or None when not given; ValueError says what is allowed."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_BUDGET_MS:
        raise ValueError(f"budget_ms must be a number of milliseconds above 0 and at most {MAX_BUDGET_MS:g}, "
                         f"not {text[:40]!r}")
    return value


class Sessions:
    """The camera peers of one server, as sessions: listing, figures, budgets and admission."""

    def __init__(self, peers: Peers, budget_ms: float = DEFAULT_BUDGET_MS) -> None:
        self.peers = peers
        self.budget_ms = budget_ms  # for sessions that ask for none
        self.cpu = CpuLoad(lambda: len(list(self)), on_sample=self.measure_cost)
        self.watch = BudgetWatch(self)
        self.max_cpu_share = MAX_CPU_SHARE
        # (when, CPU share per session) of each sample in which every running session was past its first
        # SETTLE_S seconds
        self._settled: deque[tuple[float, float]] = deque(maxlen=64)

    def __iter__(self) -> Iterator[Peer]:
        return iter([p for p in self.peers.peers.values()
                     if p.mode == "camera" and p.runtime is not None and not p.closing])

    def get(self, session_id: str) -> Peer | None:
        peer = self.peers.session(session_id)
        return peer if peer is not None and peer.runtime is not None else None

    def budget(self, peer: Peer) -> float:
        return peer.budget_ms if peer.budget_ms is not None else self.budget_ms

    def recent_latency(self, peer: Peer) -> dict[str, float] | None:
        """Capture-to-output percentiles of the session's last frames (ms); None until enough are measured."""
        assert peer.runtime is not None
        samples = peer.runtime.pipeline.stats.latency.samples
        if len(samples) < MIN_FRAMES:
            return None
        return percentiles_ms(list(islice(reversed(samples), RECENT_FRAMES)))

    def measure_cost(self) -> None:
        """After each CPU sample: the cost of one session, if every running one was settled in all of it."""
        running = list(self)
        start = self.cpu.sampled_at - self.cpu.interval
        if running and all(p.started + SETTLE_S <= start for p in running):
            self._settled.append((self.cpu.sampled_at, max(0.0, self.cpu.share - self.cpu.baseline) / len(running)))

    @property
    def settled_cost(self) -> float | None:
        """What one session costs: the dearest of the settled samples taken up to COST_MEMORY_S before the
        latest one; None before there was one."""
        if not self._settled:
            return None
        recent = [cost for when, cost in self._settled if when >= self._settled[-1][0] - COST_MEMORY_S]
        return max(recent)

    def share_with_one_more(self, running: list[Peer]) -> float | None:
        """The daemon's CPU share with one more session like those running: its share without sessions,
        plus the measured cost of one session times one more.

        The cost comes from the CPU samples in which every running session was settled (past its first
        SETTLE_S seconds: `settled_cost`). Before there was one, it is the current sample's share split
        between the sessions, each counting for the part of the sample it ran (up to when the sample was
        taken, not up to now, or one that started in between would look cheap); None while they ran too
        little of it to go by.
        """
        cost = self.settled_cost
        if cost is not None:
            return self.cpu.baseline + cost * (len(running) + 1)
        end = self.cpu.sampled_at
        ran = sum(min(1.0, max(0.0, end - p.started) / self.cpu.interval) for p in running)
        if ran < MIN_SAMPLE_SHARE:
            return None
        each = max(0.0, self.cpu.share - self.cpu.baseline) / ran
        return self.cpu.baseline + each * (len(running) + 1)

    def refusal(self) -> str | None:
        """Why one more session would not fit now (measured), or None when it would."""
        running = list(self)
        if running and self.cpu.share > self.max_cpu_share:
            return (f"at capacity: the daemon uses {100 * self.cpu.share:.0f} % of its CPU with {len(running)} "
                    f"sessions; try again in {RETRY_AFTER_S} s")
        predicted = self.share_with_one_more(running) if running else None
        if predicted is not None and predicted > self.max_cpu_share:
            return (f"at capacity: one more session would take the daemon to about {100 * predicted:.0f} % of its "
                    f"CPU ({100 * self.cpu.share:.0f} % now with {len(running)}); try again in {RETRY_AFTER_S} s")
        for peer in running:
            recent = self.recent_latency(peer)
            budget = self.budget(peer)
            if recent is not None and recent["p95"] > NEAR_BUDGET * budget:
                return (f"at capacity: session {peer.id} runs at {recent['p95']:.0f} ms p95 of its {budget:g} ms "
                        f"latency budget; try again in {RETRY_AFTER_S} s")
        return None

    def viewers(self, peer: Peer) -> int:
        return sum(1 for p in self.peers.peers.values() if p.mode == "preview" and p.watching == peer.id)

    def describe(self, peer: Peer) -> dict[str, Any]:
        """A session's figures, as /api/sessions lists them."""
        assert peer.runtime is not None
        stats = peer.runtime.pipeline.stats
        recent = self.recent_latency(peer)
        budget = self.budget(peer)
        return {"id": peer.id, "preset": peer.runtime.preset.name, "state": peer.pc.connectionState,
                "resource": f"/whip/{peer.id}", "viewers": self.viewers(peer), "fps": round(stats.fps, 2),
                "frames_in": stats.frames_in, "frames_out": stats.frames_out, "dropped": stats.dropped,
                "latency_ms": stats.latency.summary(), "recent_latency_ms": recent, "budget_ms": budget,
                "over_budget": recent is not None and recent["p95"] > budget,
                "disabled_stages": [h["label"] for h in peer.runtime.pipeline.chain.health_report() if h["disabled"]]}
