"""All stage types presets can name, keyed by their `type`."""

from __future__ import annotations

import importlib
import inspect

from livefuse.stage import StageSpec

STAGES: dict[str, StageSpec] = {}

# Modules that register stage types when imported; add a module here when you add one.
STAGE_MODULES: tuple[str, ...] = (
    "livefuse.stages.face.spec",
    "livefuse.stages.background.spec",
    "livefuse.stages.anonymise",
    "livefuse.stages.colour.spec",
    "livefuse.stages.debug",
    "livefuse.stages.beauty",
    "livefuse.stages.swap.spec",
    "livefuse.stages.enhance.spec",
    "livefuse.stages.framing",
)


def register(spec: StageSpec) -> StageSpec:
    """Make a stage type available to presets.

    A stage class that leaves an abstract method of `Stage` out (`close()`, say) is refused here, when its
    module is imported, rather than when a preset first builds it.
    """
    if spec.type in STAGES:
        raise ValueError(f"stage type {spec.type!r} registered twice")
    factory = spec.factory
    if isinstance(factory, type) and inspect.isabstract(factory):
        missing = ", ".join(sorted(vars(factory).get("__abstractmethods__", ())))
        raise TypeError(f"stage type {spec.type!r}: {factory.__name__} does not implement {missing}")
    STAGES[spec.type] = spec
    return spec


def stage_types() -> dict[str, StageSpec]:
    """Every registered stage type (importing the stage modules on first use)."""
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return STAGES
