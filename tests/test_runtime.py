"""The runtime's controls: one lock orders preset switches, parameter changes and source faces, and the
source face outlives a preset switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from browser_fixtures import web_presets_fixture

from livefuse.engine import Engine
from livefuse.presets import load_preset
from livefuse.runtime import Runtime
from livefuse.sinks import NullSink
from livefuse.sources.demo import DemoSource
from livefuse.wiring import assemble

__all__ = ["web_presets_fixture"]  # the `web_presets` fixture

SIZE, FPS = (64, 48), 10.0


def tagged_runtime() -> Runtime:
    assembly = assemble(load_preset("tag-a"), Engine(provider="cpu"), SIZE, FPS)
    return Runtime.wire(assembly, DemoSource(SIZE, FPS), [NullSink()], settings={})


def test_a_parameter_change_waits_for_the_lock_a_preset_switch_holds(web_presets: Path) -> None:
    async def scenario() -> tuple[bool, dict[str, object]]:
        runtime = tagged_runtime()
        async with runtime.lock:  # as a preset switch holds it while it builds and swaps the chain
            change = asyncio.create_task(runtime.update_params("test_tag", {"value": 99}))
            await asyncio.sleep(0.2)
            waited = not change.done()
        return waited, await change

    waited, params = asyncio.run(scenario())
    assert waited and params["value"] == 99


def test_the_source_face_reaches_the_stages_of_the_next_preset(web_presets: Path) -> None:
    async def scenario() -> tuple[list[str], list[tuple[int, ...]]]:
        runtime = tagged_runtime()
        applied = await runtime.set_source_face(np.zeros((8, 6, 3), np.uint8))
        await runtime.switch_preset("tag-b")
        try:
            return applied, runtime.pipeline.chain.stages[0][1].source_faces  # type: ignore[attr-defined]
        finally:
            runtime.pipeline.chain.close()

    applied, faces = asyncio.run(scenario())
    assert applied == ["test_tag"] and faces == [(8, 6, 3)]
