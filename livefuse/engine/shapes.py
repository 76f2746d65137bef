"""Tensor shapes: whether every dimension is fixed (the condition for a CUDA graph)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def all_fixed(shapes: Iterable[Sequence[int | str | None]]) -> bool:
    """Whether every dimension of every shape is a positive number (no named or unknown axis)."""
    return all(isinstance(d, int) and d > 0 for shape in shapes for d in shape)
