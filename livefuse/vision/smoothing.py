"""One Euro filter (Casiez et al., CHI 2012) over arrays: steady when still, responsive when moving.

A fixed low-pass either jitters (high cutoff) or lags (low cutoff). The One Euro filter raises its
cutoff with the signal's speed, so a face held still is rock steady and a fast turn is followed
without visible lag. Speeds are divided by `scale` (the face size in pixels) so the same `beta`
works for small and large faces and at any resolution.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """Filters an array of any fixed shape sampled at timestamps in seconds."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def velocity(self) -> np.ndarray | None:
        """Smoothed rate of change per second (for extrapolating between detections)."""
        return self._dx

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self._x is None or self._t is None or self._x.shape != x.shape or t <= self._t:
            if self._x is not None and self._x.shape == x.shape and self._t is not None and t <= self._t:
                return self._x  # a repeated timestamp: nothing new to filter
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return self._x
        dt = t - self._t
        assert self._dx is not None
        # Written as few whole-array steps as it can be: the filter runs once a face a frame, and on a busy
        # host each numpy call after the frame's pause costs far more than its arithmetic.
        dx = x - self._x
        dx /= dt
        dx -= self._dx
        dx *= _alpha(self.d_cutoff, dt)
        self._dx = self._dx + dx
        # Per-element cutoff from the element's own speed, in face sizes per second:
        # alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi cutoff), so alpha = u / (u + 1), u = 2 pi cutoff dt.
        u = np.abs(self._dx)
        u *= 2.0 * math.pi * dt * self.beta / max(scale, 1e-6)
        u += 2.0 * math.pi * dt * self.min_cutoff
        u /= u + 1.0
        step = x - self._x
        step *= u
        self._x = self._x + step
        self._t = t
        return self._x
