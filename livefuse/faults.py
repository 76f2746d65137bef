"""Each stage's fault state: no stage stays off without the user knowing, and none stays off for good.

A stage that raises is counted (and logged once). After `disable_after` failures in a row it is switched
off, then retried on one frame after a backoff (1, 2, 4 ... 30 s: the last delay repeats); a retry that
works switches it back on, and so does a change of its parameters (a new preset is a new chain).
`/api/status`, `/metrics` and the page read the state from `report()`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from livefuse.stats import PipelineStats

log = logging.getLogger("livefuse.pipeline")

DISABLE_AFTER_CONSECUTIVE_ERRORS = 30
RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # the last delay repeats


def first_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message`, first line only and cut short: what status and the page show as a last error."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class StageHealth:
    """One stage's fault state, as status and /metrics show it."""

    label: str
    guards_privacy: bool = False
    consecutive_errors: int = 0
    disabled: bool = False
    last_error: str | None = None
    retries: int = 0  # failed retries since it was switched off: picks the next backoff delay
    retry_at: float = math.inf  # clock time of the next retry while disabled
    probing: bool = False  # a frame is retrying it now

    def describe(self, now: float) -> dict[str, Any]:
        retry = max(0.0, self.retry_at - now) if self.disabled and math.isfinite(self.retry_at) else None
        return {
            "label": self.label,
            "disabled": self.disabled,
            "last_error": self.last_error,
            "consecutive_errors": self.consecutive_errors,
            "guards_privacy": self.guards_privacy,
            "retry_in_s": None if retry is None else round(retry, 2),
        }


class StageFaults:
    """The fault state of a chain's stages, by stage index; safe to use from every worker thread."""

    def __init__(
        self,
        stages: Sequence[tuple[str, bool]],
        stats: PipelineStats,
        *,
        disable_after: int = DISABLE_AFTER_CONSECUTIVE_ERRORS,
        backoff: Sequence[float] = RETRY_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = [StageHealth(label, guards) for label, guards in stages]
        self.stats = stats
        self.disable_after = disable_after
        self.backoff = tuple(backoff)  # seconds before the 1st, 2nd ... retry of a switched-off stage
        self.clock = clock
        self._lock = threading.Lock()
        self._logged: set[str] = set()

    def first_time(self, label: str) -> bool:
        """True the first time a fault of `label` is seen: it is logged then, and only counted after."""
        with self._lock:
            if label in self._logged:
                return False
            self._logged.add(label)
            return True

    def should_run(self, owner: int) -> bool:
        """On, or switched off and due for a retry (one frame at a time retries it)."""
        health = self.health[owner]
        with self._lock:
            if not health.disabled:
                return True
            if health.probing or self.clock() < health.retry_at:
                return False
            health.probing = True
            return True

    def on_success(self, owner: int) -> None:
        health = self.health[owner]
        with self._lock:
            health.consecutive_errors = 0
            if health.disabled:
                health.disabled = health.probing = False
                health.retry_at = math.inf
                log.info("stage %s works again after being switched off; it is back on", health.label)
            elif health.retries:
                health.retries = 0  # it has run since its last retry: a later fault starts the backoff afresh

    def on_error(self, owner: int, label: str, exc: Exception) -> None:
        self.stats.stage_error(label)
        health = self.health[owner]
        action = "covering the frame" if health.guards_privacy else "passing this frame through"
        if self.first_time(label):
            log.warning(
                "stage %s failed (%s: %s); %s. Further errors are counted, not logged",
                label,
                type(exc).__name__,
                exc,
                action,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
        with self._lock:
            health.last_error = first_line(exc)
            health.consecutive_errors += 1
            if health.disabled:  # a retry failed: wait longer
                health.probing = False
                health.retries += 1
                health.retry_at = self.clock() + self._delay(health.retries)
                log.debug(
                    "stage %s still fails (%s); next retry in %.0f s",
                    label,
                    health.last_error,
                    self._delay(health.retries),
                )
            elif health.consecutive_errors >= self.disable_after:
                health.disabled = True
                health.retry_at = self.clock() + self._delay(health.retries)
                log.error(
                    "stage %s failed %d frames in a row (%s); it is switched off (%s) and retried in %.0f s",
                    label,
                    health.consecutive_errors,
                    health.last_error,
                    "its frames are covered" if health.guards_privacy else "its frames pass through",
                    self._delay(health.retries),
                )

    def _delay(self, retries: int) -> float:
        return self.backoff[min(retries, len(self.backoff) - 1)] if self.backoff else 0.0

    def enable(self, owner: int) -> None:
        """Switch a stage back on now (its parameters changed), with a fresh count of failures."""
        health = self.health[owner]
        with self._lock:
            was_off = health.disabled
            health.disabled = health.probing = False
            health.consecutive_errors = health.retries = 0
            health.retry_at = math.inf
        if was_off:
            log.info("stage %s switched back on: its parameters changed", health.label)

    def report(self) -> list[dict[str, Any]]:
        """Each stage's fault state: on or off, its last error, when it is retried."""
        now = self.clock()
        with self._lock:
            return [h.describe(now) for h in self.health]
