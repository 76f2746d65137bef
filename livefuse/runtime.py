"""A running pipeline with its controls: its engine, active preset and source face, and the operations the
API offers.

The daemon builds one `Runtime` (and each session one of its own) with `Runtime.wire`; the web control
API switches presets, tunes parameters and sets the source face through it while frames keep flowing.
One lock orders those changes, so a parameter change never lands on a chain a preset switch replaces.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from livefuse.audio.filtered import FilteredAudio
from livefuse.audio.inputs import AudioInput
from livefuse.engine import providers as prov
from livefuse.errors import PresetError, UserError
from livefuse.faults import first_line
from livefuse.pipeline import Pipeline
from livefuse.presets import Preset, load_preset, shown, validate_params
from livefuse.sinks.base import Sink
from livefuse.sources.base import Source
from livefuse.stage import StageContext, TakesSourceFace
from livefuse.wiring import Assembly, assemble

if TYPE_CHECKING:
    from livefuse.engine import Engine


@dataclass
class Runtime:
    pipeline: Pipeline
    preset: Preset
    context: StageContext
    engine: Engine
    settings: dict[str, Any] = field(default_factory=dict)  # size, fps, source, outputs: for /api/status
    source_face: np.ndarray | None = None  # the identity uploaded for swap stages; set again after a switch
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one change at a time: preset, params, face

    @classmethod
    def wire(
        cls,
        assembly: Assembly,
        source: Source,
        sinks: list[Sink],
        *,
        settings: dict[str, Any],
        max_frames: int | None = None,
        duration: float | None = None,
        audio: AudioInput | None = None,
        sleep_after: float | None = None,
    ) -> Runtime:
        """The assembled chain run between `source` and `sinks` (see livefuse/wiring.py), with its controls."""
        pipeline = assembly.pipeline(
            source, sinks, max_frames=max_frames, duration=duration, audio=audio, sleep_after=sleep_after
        )
        if isinstance(audio, FilteredAudio):
            pipeline.stats.audio_filter = audio.audio_filter
        return cls(pipeline, assembly.preset, assembly.context, assembly.engine, settings)

    async def switch_preset(self, name_or_path: str) -> Preset:
        """Load and build the new preset off the loop, swap it in between two frames, and hand its swap
        stages the source face given earlier."""
        async with self.lock:
            preset = await self._switch(name_or_path)
            if self.source_face is not None:
                await self._apply_source_face(self.source_face)
        return preset

    async def _switch(self, name_or_path: str) -> Preset:
        loop = asyncio.get_running_loop()
        preset = await loop.run_in_executor(None, load_preset, name_or_path)
        audio = self.pipeline.audio
        switch_sound = isinstance(audio, FilteredAudio) and preset.audio_filter is not None
        if switch_sound:
            assert isinstance(audio, FilteredAudio) and preset.audio_filter is not None
            # refused before anything is built or changed; off the loop: the first check loads the suppressor
            await loop.run_in_executor(None, audio.check_filter, preset.audio_filter)
        # Its files are relative to its own folder, not the first preset's; its stages share state afresh.
        size, fps = self.context.size, self.context.fps
        assembly = await loop.run_in_executor(
            None, lambda: assemble(preset, self.engine, size, fps, stats=self.pipeline.stats)
        )
        await self.pipeline.swap_chain(assembly.chain)
        if switch_sound:
            assert isinstance(audio, FilteredAudio) and preset.audio_filter is not None
            await loop.run_in_executor(None, self._set_filter, audio, preset.audio_filter)
        self.preset, self.context = preset, assembly.context
        return preset

    async def switch_audio_filter(self, name: str) -> str:
        """Put `name` (one of AUDIO_FILTERS) on the sound from the next chunk on; a UserError naming the fix
        where there is no sound to filter or the filter cannot run here."""
        audio = self.pipeline.audio
        if not isinstance(audio, FilteredAudio):
            raise UserError(
                "audio_filter: this stream has no sound to filter; start the daemon with sound (--audio) to use one"
            )
        async with self.lock:
            # off the loop: it checks the suppressor and builds it (DeepFilterNet's process starts in ~0.4 s)
            await asyncio.get_running_loop().run_in_executor(None, self._set_filter, audio, name)
        return name

    def _set_filter(self, audio: FilteredAudio, name: str) -> None:
        audio.set_filter(name)
        self.pipeline.stats.audio = audio.description
        self.pipeline.stats.audio_filter = name

    async def update_params(self, label: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply live parameter changes to one stage of the active preset.

        Applying waits for the stage to finish its current frame and may rebuild a table or a graph
        (tens of milliseconds), so it runs off the loop. The values come from the untrusted API: file
        parameters may only name files inside the preset's folder. A stage switched off after
        failures is switched back on.
        """
        async with self.lock:
            return await self._update(label, params)

    async def _update(self, label: str, params: dict[str, Any]) -> dict[str, Any]:
        config = next((c for c in self.preset.stages if c.label == label), None)
        if config is None:
            labels = ", ".join(c.label for c in self.preset.stages) or "none"
            raise KeyError(f"no stage {shown(label)} in preset {self.preset.name!r}; stages: {labels}")
        checked = validate_params(
            config.spec,
            params,
            f"stage {label}",
            partial=True,
            live_only=True,
            files_under=Path(self.preset.path).parent,
        )
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.pipeline.chain.update, label, checked)
        except (UserError, KeyError):
            raise
        except Exception as exc:  # a stage refused values that passed the checks
            raise PresetError(
                f"stage {label}: cannot apply {sorted(checked)} ({first_line(exc)}); "
                "the stage keeps its previous values"
            ) from exc
        config.params.update(checked)
        return dict(config.params)

    async def set_source_face(self, image: np.ndarray) -> list[str]:
        """Keep `image` as the source face and hand it to every swap stage; the labels of those it reached."""
        async with self.lock:
            self.source_face = image
            return await self._apply_source_face(image)

    async def _apply_source_face(self, image: np.ndarray) -> list[str]:
        """Off the loop: a stage may run a model on it (a face it cannot use raises UserError)."""
        applied: list[str] = []
        for label, stage in self.pipeline.chain.stages:
            if isinstance(stage, TakesSourceFace):
                await asyncio.get_running_loop().run_in_executor(None, stage.set_source_face, image)
                applied.append(label)
        return applied

    def status(self) -> dict[str, Any]:
        health = {h["label"]: h for h in self.pipeline.chain.health_report()}
        described = {label: stage.describe() for label, stage in self.pipeline.chain.stages}
        stages = [
            {
                "type": c.type,
                "label": c.label,
                "params": c.params,
                **health.get(c.label, {}),
                **described.get(c.label, {}),
            }
            for c in self.preset.stages
        ]
        executor = self.engine.executor
        return {
            "session_id": self.engine.session_id,
            "executor": executor.status() if executor is not None else {"executor": "local"},
            "preset": self.preset.name,
            "preset_path": shown_path(Path(self.preset.path)),
            "stages": stages,
            "disabled_stages": [s["label"] for s in stages if s.get("disabled")],
            "provider": self.pipeline.stats.provider,
            # Each provider that was tried and failed: why, and what to install (engine/provider_help.py).
            "provider_fallbacks": {prov.short_name(p): why for p, why in self.engine.choice.failures().items()},
            # Frames kept on the device: uploads, downloads and the full-frame copies each stage forces.
            "device_frames": self.pipeline.chain.transfers(),
            **self.settings,
            "stats": self.pipeline.stats.snapshot(),
        }


def shown_path(path: Path) -> str:
    """A file's path as an API answer shows it: relative to where the daemon runs, else its name alone (an
    absolute path tells a caller how the machine is laid out)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return path.name
