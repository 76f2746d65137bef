"""A preset's built stages, run on worker threads with stage-level overlap (double buffering).

Frames enter with a ticket in capture order. Each stage serves tickets strictly
in order, so with two frames in flight frame N+1 is captured, converted and
pre-processed in the early stages while frame N is still in inference, and a
stateful stage (tracking, smoothing) still sees frames one at a time, in order.

A stage may split its work into steps (`Stage.steps()`, e.g. segment then
composite): each step takes its turns on its own, so on two cores one frame's
composite overlaps the next frame's segmentation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from livefuse.frame import Frame
from livefuse.stages.base import Stage
from livefuse.stats import PipelineStats

log = logging.getLogger("livefuse.pipeline")

DISABLE_AFTER_CONSECUTIVE_ERRORS = 30


class Chain:
    """Ordered stages plus the turn-taking that keeps each stage's frames in order."""

    def __init__(self, name: str, stages: Sequence[tuple[str, Stage]], stats: PipelineStats | None = None,
                 params: dict[str, dict[str, Any]] | None = None) -> None:
        self.name = name
        self.stages = list(stages)
        self.params = params or {}
        self.stats = stats or PipelineStats()
        # The units that take turns: one per stage, or one per step of a stage that has steps.
        self._steps: list[tuple[str, int, Callable[[Frame], None]]] = []
        for index, (label, stage) in enumerate(self.stages):
            steps = getattr(stage, "steps", None)
            for step_label, fn in (steps() if callable(steps) else [("", stage.process)]):
                self._steps.append((f"{label}:{step_label}" if step_label else label, index, fn))
        count = len(self._steps)
        self._turns = [0] * count
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._consecutive_errors = [0] * count
        self._disabled = [False] * count
        self._busy = [threading.Lock() for _ in range(count)]  # held while a step runs, or its stage is updated
        self._logged: set[str] = set()
        self.on_first_stage_free: Callable[[], None] | None = None  # called (in a worker) when step 0 frees up

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
        """Run every step on the frame, each waiting its turn; a step that raises is bypassed."""
        for index, (label, _, fn) in enumerate(self._steps):
            with self._cond:
                self._cond.wait_for(lambda i=index: self._turns[i] == ticket)
            try:
                if not self._disabled[index]:
                    start = time.perf_counter_ns()
                    with self._busy[index]:
                        fn(frame)
                    elapsed = time.perf_counter_ns() - start
                    frame.stage_ns[label] = elapsed
                    self.stats.record_stage(label, elapsed)
                    self._consecutive_errors[index] = 0
            except Exception as exc:  # noqa: BLE001 - a filter must never take the stream down
                self._on_error(index, label, exc)
            finally:
                with self._cond:
                    self._turns[index] += 1
                    self._cond.notify_all()
                if index == 0 and self.on_first_stage_free is not None:
                    self.on_first_stage_free()

    def _on_error(self, index: int, label: str, exc: Exception) -> None:
        self.stats.stage_errors[label] = self.stats.stage_errors.get(label, 0) + 1
        self._consecutive_errors[index] += 1
        if label not in self._logged:
            self._logged.add(label)
            log.warning("stage %s failed (%s: %s); passing this frame through. Further errors are counted, "
                        "not logged", label, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        if self._consecutive_errors[index] >= DISABLE_AFTER_CONSECUTIVE_ERRORS and not self._disabled[index]:
            self._disabled[index] = True
            log.error("stage %s failed %d frames in a row; it is now passed through", label,
                      DISABLE_AFTER_CONSECUTIVE_ERRORS)

    def update(self, label: str, params: dict[str, Any]) -> None:
        """Apply already-validated live parameters to one stage, between frames."""
        for index, (name, stage) in enumerate(self.stages):
            if name == label:
                locks = [self._busy[i] for i, (_, owner, _) in enumerate(self._steps) if owner == index]
                for lock in locks:  # never while one of the stage's steps is processing a frame
                    lock.acquire()
                try:
                    stage.update(params)
                    self.params.setdefault(label, {}).update(params)
                finally:
                    for lock in locks:
                        lock.release()
                return
        raise KeyError(label)

    def close(self) -> None:
        for _, stage in self.stages:
            try:
                stage.close()
            except Exception:  # closing must release every stage
                log.debug("closing stage failed", exc_info=True)
