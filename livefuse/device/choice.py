"""Whether a chain's frames stay on the device: where its stages' graph implementations run.

The same choice as the two-implementation stages make (`livefuse.stage.choose_implementation`): "graph"
on a GPU provider, or when forced (tests, benchmarks); the CPU provider's default stays the host path,
where OpenCV is faster. The frames then live where the provider's tensors live.
"""

from __future__ import annotations

from livefuse.engine.core import Engine
from livefuse.engine.providers import CPU, device_type
from livefuse.stage import choose_implementation

DEVICES = ("cpu", "cuda")  # OrtValue devices the boundary can allocate on


def frames_device(engine: Engine, implementation: str) -> str | None:
    """ "cuda" or "cpu" when frames should stay on the engine's device between stages, else None."""
    if engine is None or not engine.iobinding:
        return None  # no engine (stages without models, in tests), or plain session.run: nothing stays anywhere
    provider = engine.provider
    if implementation == "auto" and provider != CPU:
        provider = engine.resolve_provider()  # the provider that works, not the one asked for
    if choose_implementation(implementation, provider) != "graph":
        return None
    device = device_type(provider)
    return device if device in DEVICES else None
