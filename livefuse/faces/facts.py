"""What a face model expects, read from models/manifest.toml: input size, alignment template, mean and std.

FaceFusion keeps the same facts in its model sets; here the manifest is their one home. A model given as a
file has no entry, so it gets the facts of the manifest model it stands in for (the stage's default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import TYPE_CHECKING

import numpy as np

from livefuse.errors import ModelError

if TYPE_CHECKING:
    from livefuse.engine.manifest import ModelEntry
    from livefuse.engine.session import Session


@dataclass(frozen=True)
class FaceModelFacts:
    """A face model's square input `size`, its crop `template` (None: the caller picks) and normalisation:
    the model takes (rgb - mean) / std per channel, rgb in 0..255."""

    size: int
    template: str | None
    mean: tuple[float, float, float]  # RGB
    std: tuple[float, float, float]

    @cached_property
    def mean_rgb(self) -> np.ndarray:
        """`mean` as float32 [3]."""
        return np.array(self.mean, np.float32)

    @cached_property
    def inv_std(self) -> np.ndarray:
        """1 / `std` as float32 [3], divided in float64 first."""
        return np.array([1.0 / s for s in self.std], np.float32)

    @cached_property
    def offset(self) -> np.ndarray:
        """`mean` / `std` as float32 [3], divided in float64 first: x * inv_std - offset is (x - mean) / std."""
        return np.array([m / s for m, s in zip(self.mean, self.std, strict=True)], np.float32)

    def scalar(self) -> tuple[float, float]:
        """(mean, std) for graphs that take one of each: the model's must be the same on every channel."""
        if len(set(self.mean)) != 1 or len(set(self.std)) != 1:
            raise ModelError(f"mean {self.mean} and std {self.std} differ by channel; this path takes one of each")
        return self.mean[0], self.std[0]


def entry_facts(entry: ModelEntry) -> FaceModelFacts:
    """The facts of one manifest entry: the size of its first input, its template and its preprocess."""
    shape = entry.inputs[0].shape if entry.inputs else ()
    size = shape[-1] if shape else None
    if entry.preprocess is None or not isinstance(size, int) or shape[-2] != size:
        raise ModelError(
            f"{entry.ref}: the manifest gives no square input size or no [model.preprocess] "
            f"mean and std; add them (see models/README.md)"
        )
    mean, std = (tuple(float(v) for v in values) for values in (entry.preprocess.mean, entry.preprocess.std))
    if len(mean) != 3 or len(std) != 3:
        raise ModelError(f"{entry.ref}: [model.preprocess] needs three means and three stds (RGB)")
    return FaceModelFacts(int(size), entry.template, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


@cache
def manifest_facts(name: str) -> FaceModelFacts:
    """The facts of the model `name` in livefuse's own manifest."""
    from livefuse.engine.registry import Registry

    return entry_facts(Registry().entry(name))


def facts_of(session: Session, default: str) -> FaceModelFacts:
    """The facts of the session's manifest entry; a file (or an entry without them) gets `default`'s."""
    entry = session.source.entry
    if entry is not None and entry.preprocess is not None:
        try:
            facts = entry_facts(entry)
        except ModelError:
            return manifest_facts(default)
        return facts if facts.template else replace(facts, template=manifest_facts(default).template)
    return manifest_facts(default)
