"""A running daemon: its engine, pipeline and active preset, and the operations the API offers.

The CLI builds one `Runtime`; the web control API switches presets and tunes
parameters through it while frames keep flowing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livefuse.pipeline import Pipeline
from livefuse.presets import Preset, build_chain, load_preset, validate_params
from livefuse.stages.base import StageContext


@dataclass
class Runtime:
    pipeline: Pipeline
    preset: Preset
    context: StageContext
    engine: Any
    settings: dict[str, Any] = field(default_factory=dict)  # size, fps, source, outputs: for /api/status

    async def switch_preset(self, name_or_path: str) -> Preset:
        """Load and build the new preset off the loop, then swap it in between two frames."""
        loop = asyncio.get_running_loop()
        preset = await loop.run_in_executor(None, load_preset, name_or_path)
        chain = await loop.run_in_executor(None, build_chain, preset, self.context, self.pipeline.stats)
        await self.pipeline.swap_chain(chain)
        self.preset = preset
        return preset

    async def update_params(self, label: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply live parameter changes to one stage of the active preset.

        Applying waits for the stage to finish its current frame and may rebuild a table or a graph
        (tens of milliseconds), so it runs off the loop.
        """
        config = next((c for c in self.preset.stages if c.label == label), None)
        if config is None:
            labels = ", ".join(c.label for c in self.preset.stages) or "none"
            raise KeyError(f"no stage {label!r} in preset {self.preset.name!r}; stages: {labels}")
        checked = validate_params(config.spec, params, f"stage {label}", partial=True, live_only=True)
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.chain.update, label, checked)
        config.params.update(checked)
        return dict(config.params)

    def status(self) -> dict[str, Any]:
        executor = self.engine.executor
        return {
            "session_id": self.engine.session_id,
            "executor": executor.status() if executor is not None else {"executor": "local"},
            "preset": self.preset.name,
            "preset_path": str(Path(self.preset.path)),
            "stages": [{"type": c.type, "label": c.label, "params": c.params} for c in self.preset.stages],
            "provider": self.pipeline.stats.provider,
            **self.settings,
            "stats": self.pipeline.stats.snapshot(),
        }
