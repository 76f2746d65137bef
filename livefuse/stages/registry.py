"""All stage types presets can name, keyed by their `type`."""

from __future__ import annotations

import importlib

from livefuse.stages.base import StageSpec

STAGES: dict[str, StageSpec] = {}

# Modules that register stage types when imported; add a module here when you add one.
STAGE_MODULES: tuple[str, ...] = (
    "livefuse.stages.face",
    "livefuse.stages.background",
    "livefuse.stages.anonymise",
    "livefuse.stages.colour",
    "livefuse.stages.debug",
    "livefuse.stages.beauty",
    "livefuse.stages.swap",
    "livefuse.stages.enhance",
)


def register(spec: StageSpec) -> StageSpec:
    """Make a stage type available to presets."""
    if spec.type in STAGES:
        raise ValueError(f"stage type {spec.type!r} registered twice")
    STAGES[spec.type] = spec
    return spec


def stage_types() -> dict[str, StageSpec]:
    """Every registered stage type (importing the stage modules on first use)."""
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return STAGES
