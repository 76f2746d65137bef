"""A critically damped spring over arrays: moves towards a goal as fast as it can without overshooting.

Each step uses the spring's exact solution over the elapsed time, so it is stable and the same motion at
any frame rate, and a frame that arrives late moves the value by the right amount rather than a frame's.
"""

from __future__ import annotations

import math

import numpy as np

RATE = 5.8  # (1 + u) e^-u = 0.02 at u = 5.8: a step from rest is 98 % done after `response` seconds


class CriticalSpring:
    """x'' = w^2 (goal - x) - 2 w x', with w = 5.8 / response: 98 % of a step from rest is covered in `response` s."""

    def __init__(self, response: float) -> None:
        self.response = response
        self.value: np.ndarray | None = None
        self.velocity: np.ndarray | None = None

    def reset(self, value: np.ndarray | None = None) -> None:
        self.value = None if value is None else np.asarray(value, np.float64).copy()
        self.velocity = None if value is None else np.zeros_like(self.value)

    def step(self, goal: np.ndarray, dt: float) -> np.ndarray:
        """Advance by `dt` seconds towards `goal`; the first call starts at the goal."""
        goal = np.asarray(goal, np.float64)
        if self.value is None or self.velocity is None or self.value.shape != goal.shape:
            self.reset(goal)
            assert self.value is not None
            return self.value
        w = RATE / max(self.response, 1e-3)
        decay = math.exp(-w * dt)
        y0 = self.value - goal
        c = self.velocity + w * y0
        self.value = goal + (y0 + c * dt) * decay
        self.velocity = (self.velocity - w * c * dt) * decay
        return self.value
