"""A preset's built stages, run on worker threads with stage-level overlap (double buffering).

Frames enter with a ticket in capture order. Each stage serves tickets strictly
in order, so with two frames in flight frame N+1 is captured, converted and
pre-processed in the early stages while frame N is still in inference, and a
stateful stage (tracking, smoothing) still sees frames one at a time, in order.

A stage may split its work into steps (`Stage.steps()`, e.g. segment then
composite): each step takes its turns on its own, so on two cores one frame's
composite overlaps the next frame's segmentation.

When the source was reopened (`Frame.source_epoch` moved on), each stage's `on_source_reopened()` runs on
its own turn before it sees the first such frame, so trackers forget the old scene in capture order.

Faults: a stage that raises is bypassed for that frame (the frame passes through), logged once and
counted; livefuse/faults.py switches it off after repeated failures and retries it with a backoff.
A stage that guards privacy (`Stage.guards_privacy`, e.g. anonymise) fails closed:
when it, or any stage before it, failed on a frame or is switched off, the whole frame is covered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from livefuse.device.steps import download_step, stage_steps, to_host, upload_step
from livefuse.faults import DISABLE_AFTER_CONSECUTIVE_ERRORS, RETRY_BACKOFF_S, StageFaults, StageHealth
from livefuse.frame import Frame
from livefuse.stage import Stage
from livefuse.stats import PipelineStats

if TYPE_CHECKING:
    from livefuse.device.boundary import DeviceBoundary

log = logging.getLogger("livefuse.pipeline")

BOUNDARY = -1  # the owner of the device boundary's steps (no stage: never bypassed, never switched off)
COVER_ACROSS = 6  # a covered frame keeps this many blurred pixels across its shorter side: no face survives


def cover_whole(frame: Frame) -> None:
    """Hide everything in the frame, without any stage's parameters (a privacy stage's fallback).

    The frame is shrunk to a few pixels across and scaled back (a coarse blur, so the stream still
    shows that something moves); if even that fails, the frame is blanked.
    """
    try:
        image = frame.image
        h, w = image.shape[:2]
        k = COVER_ACROSS / min(w, h)
        small = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        image[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    except Exception:  # noqa: BLE001 - whatever went wrong, nothing of the picture may be shown
        frame.image = np.zeros_like(np.asarray(frame.image, dtype=np.uint8))


class Chain:
    """Ordered stages plus the turn-taking that keeps each stage's frames in order."""

    def __init__(
        self,
        name: str,
        stages: Sequence[tuple[str, Stage]],
        stats: PipelineStats | None = None,
        *,
        disable_after: int = DISABLE_AFTER_CONSECUTIVE_ERRORS,
        backoff: Sequence[float] = RETRY_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
        boundary: DeviceBoundary | None = None,
    ) -> None:
        self.name = name
        # Frames stay on the device between stages when there is a boundary (see livefuse/device/steps.py).
        self.boundary = boundary
        self.stages = list(stages)
        self.stats = stats or PipelineStats()
        self.clock = clock
        self.faults = StageFaults(
            [(label, stage.guards_privacy) for label, stage in self.stages],
            self.stats,
            disable_after=disable_after,
            backoff=backoff,
            clock=clock,
        )
        guarded = [i for i, (_, stage) in enumerate(self.stages) if stage.guards_privacy]
        for _, stage in self.stages[: max(guarded, default=0)]:
            stage.feeds_privacy()  # what a privacy stage relies on may not trade safety for speed
        # The units that take turns: one per stage, or one per step of a stage that has steps.
        # The device boundary's upload and download are steps of their own (owner BOUNDARY), so frame N + 1 is
        # uploaded while frame N is filtered.
        self._steps: list[tuple[str, int, Callable[[Frame], None]]] = []
        if boundary is not None:
            self._steps.append(("upload", BOUNDARY, upload_step(boundary)))
        for index, (label, stage) in enumerate(self.stages):
            steps = stage.steps() if boundary is None else stage_steps(label, stage, boundary)
            for step_label, fn in steps:
                self._steps.append((f"{label}:{step_label}" if step_label else label, index, fn))
        if boundary is not None:
            self._steps.append(("download", BOUNDARY, download_step(boundary)))
        self._last_step = {owner: i for i, (_, owner, _) in enumerate(self._steps)}
        self._first_step = {owner: i for i, (_, owner, _) in reversed(list(enumerate(self._steps)))}
        self._epochs: list[int | None] = [None] * len(self.stages)  # the source epoch each stage last saw
        count = len(self._steps)
        self._turns = [0] * count
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._busy = [threading.Lock() for _ in range(count)]  # held while a step runs, or its stage is updated
        self._running: dict[int, float] = {}  # step index -> clock time its current call started
        self.on_first_stage_free: Callable[[], object] | None = None  # called (in a worker) when step 0 frees up

    @property
    def guards_privacy(self) -> bool:
        """True when a stage of this chain guards privacy: a frame it could not cover must be covered whole."""
        return any(health.guards_privacy for health in self.health)

    def stalled(self, limit_s: float) -> tuple[str, float] | None:
        """(step label, seconds) of a step whose call has run longer than `limit_s`, if one has: it hangs."""
        now = self.clock()
        for index, started in list(self._running.items()):
            if now - started > limit_s:
                return self._steps[index][0], now - started
        return None

    def first_stage_free(self) -> bool:
        """True when every admitted frame has left the first step, so a new one would start at once."""
        with self._cond:
            return not self._steps or self._turns[0] == self._next_ticket

    def admit(self) -> int:
        """A ticket for the next frame (called in capture order)."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def run(self, frame: Frame, ticket: int) -> None:
        """Run every step on the frame, each waiting its turn; a step that raises is bypassed.

        Whether a stage runs on this frame (on, or off but due for a retry) is decided at its first
        step, so all its steps see the same frames.
        """
        runs: dict[int, bool] = {}
        failed: set[int] = set()  # stages that failed on this frame or were skipped (switched off)
        for index, (label, owner, fn) in enumerate(self._steps):
            with self._cond:
                self._cond.wait_for(partial(self._is_turn, index, ticket))
            if owner == BOUNDARY:
                self._run_boundary(index, label, fn, frame)
                continue
            try:
                if self._first_step[owner] == index and self._epochs[owner] != frame.source_epoch:
                    with self._busy[index]:  # as a step: never while the stage is updated
                        self._follow_source(owner, frame.source_epoch)
                if owner not in runs:
                    runs[owner] = self._should_run(owner)
                    if not runs[owner]:
                        failed.add(owner)
                if runs[owner] and owner not in failed:
                    start = time.perf_counter_ns()
                    with self._busy[index]:
                        self._running[index] = self.clock()
                        try:
                            fn(frame)
                        finally:
                            del self._running[index]
                    elapsed = time.perf_counter_ns() - start
                    frame.stage_ns[label] = elapsed
                    self.stats.record_stage(label, elapsed)
                    if self._last_step[owner] == index:
                        self._on_success(owner)
            except Exception as exc:  # noqa: BLE001 - a filter must never take the stream down
                failed.add(owner)  # its later steps skip this frame: they would work on a half-done one
                self._on_error(owner, label, exc)
            finally:
                if self._last_step[owner] == index and self.health[owner].guards_privacy and failed:
                    self._cover(frame)  # it, or a stage it relies on, did not run: show nothing
                    self.stats.count(frames_covered=1)
                self._next_turn(index)

    def _next_turn(self, index: int) -> None:
        with self._cond:
            self._turns[index] += 1
            self._cond.notify_all()
        if index == 0 and self.on_first_stage_free is not None:
            self.on_first_stage_free()

    def _run_boundary(self, index: int, label: str, fn: Callable[[Frame], None], frame: Frame) -> None:
        """The device upload or download: timed like a stage; if it fails the frame goes on in host memory."""
        try:
            start = time.perf_counter_ns()
            fn(frame)
            elapsed = time.perf_counter_ns() - start
            frame.stage_ns[label] = elapsed
            self.stats.record_stage(label, elapsed)
        except Exception as exc:  # noqa: BLE001 - the stages then run their host paths on frame.image
            frame.device_image = None
            self.stats.stage_error(label)
            if self.faults.first_time(label):
                log.warning("device %s failed (%s: %s); the frame stays in host memory", label, type(exc).__name__, exc)
        finally:
            self._next_turn(index)

    def _cover(self, frame: Frame) -> None:
        """Cover the whole frame (on the host: a fault path, so its copy is counted, as "cover")."""
        if self.boundary is not None:
            to_host(frame, self.boundary, "cover")
        cover_whole(frame)

    def _is_turn(self, index: int, ticket: int) -> bool:
        return self._turns[index] == ticket

    def _follow_source(self, owner: int, epoch: int) -> None:
        """Tell the stage once that the source was reopened before it sees the first frame captured after."""
        seen, self._epochs[owner] = self._epochs[owner], epoch
        if seen is not None and seen != epoch:
            self.stages[owner][1].on_source_reopened()

    # -- faults (livefuse/faults.py keeps each stage's state) ------------------------------------------

    @property
    def health(self) -> list[StageHealth]:
        return self.faults.health

    @property
    def disable_after(self) -> int:
        return self.faults.disable_after

    @disable_after.setter
    def disable_after(self, count: int) -> None:
        self.faults.disable_after = count

    @property
    def backoff(self) -> tuple[float, ...]:
        return self.faults.backoff

    @backoff.setter
    def backoff(self, delays: Sequence[float]) -> None:
        self.faults.backoff = tuple(delays)

    def _should_run(self, owner: int) -> bool:
        return self.faults.should_run(owner)

    def _on_success(self, owner: int) -> None:
        self.faults.on_success(owner)

    def _on_error(self, owner: int, label: str, exc: Exception) -> None:
        self.faults.on_error(owner, label, exc)

    def enable(self, label: str) -> None:
        """Switch a stage back on now (its parameters changed), with a fresh count of failures."""
        self.faults.enable(self._index(label))

    def health_report(self) -> list[dict[str, Any]]:
        """Each stage's fault state: on or off, its last error, when it is retried."""
        return self.faults.report()

    # -- parameters --------------------------------------------------------------------------------

    def _index(self, label: str) -> int:
        for index, (name, _) in enumerate(self.stages):
            if name == label:
                return index
        raise KeyError(label)

    def update(self, label: str, params: dict[str, Any]) -> None:
        """Apply already-validated live parameters to one stage, between frames, and switch it back on."""
        index = self._index(label)
        stage = self.stages[index][1]
        locks = [self._busy[i] for i, (_, owner, _) in enumerate(self._steps) if owner == index]
        for lock in locks:  # never while one of the stage's steps is processing a frame
            lock.acquire()
        try:
            stage.update(params)
        finally:
            for lock in locks:
                lock.release()
        self.enable(label)

    def transfers(self) -> dict[str, Any] | None:
        """What crossed the device boundary so far (None when frames stay in host memory)."""
        return self.boundary.counter.report() if self.boundary is not None else None

    def close(self) -> None:
        if self.boundary is not None:
            self.boundary.close()
        for _, stage in self.stages:
            try:
                stage.close()
            except Exception:  # closing must release every stage
                log.debug("closing stage failed", exc_info=True)
