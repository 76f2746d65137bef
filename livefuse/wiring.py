"""The one place a preset becomes something that runs: engine -> stage context -> chain -> pipeline.

`livefuse run`, each WebRTC camera session, `livefuse bench` and a preset switch all go through here:

    assembly = assemble(preset, engine, size, fps)      # blocking: loads the stages' models
    pipeline = assembly.pipeline(source, sinks)         # or Runtime.wire(assembly, source, sinks, ...)

`assemble` builds the preset's stages on `engine` for frames of `size` at `fps` (the stage context, with
the preset's folder for relative paths) into a chain (`build_chain`); a
preset that cannot start raises ModelError or PresetError naming every missing model. Run it off the
event loop when the loop is serving (it may take seconds). `Assembly.pipeline` runs that chain between
a source and outputs. A session of its own (a camera peer) passes `engine.for_session(id)`, so a grey
release can pick its model versions by that id. `Runtime.wire` (livefuse/runtime.py) wraps the pipeline
with what the control API needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from livefuse.audio.inputs import AudioInput
from livefuse.chain import Chain
from livefuse.device.boundary import DeviceBoundary
from livefuse.device.choice import frames_device
from livefuse.errors import ModelError
from livefuse.pipeline import Pipeline
from livefuse.presets import Preset
from livefuse.sinks.base import Sink
from livefuse.sources.base import Source
from livefuse.stage import Stage, StageContext
from livefuse.stats import PipelineStats
from livefuse.transfers import TransferCounter

if TYPE_CHECKING:
    from livefuse.engine import Engine


@dataclass
class Assembly:
    """A preset's chain, built on one engine for one frame size and rate, ready to run in a pipeline."""

    preset: Preset
    engine: Engine
    context: StageContext
    chain: Chain

    def pipeline(
        self,
        source: Source,
        sinks: list[Sink],
        *,
        max_frames: int | None = None,
        duration: float | None = None,
        audio: AudioInput | None = None,
        stats: PipelineStats | None = None,
        sleep_after: float | None = None,
    ) -> Pipeline:
        """The chain between `source` and `sinks` (the first is the primary output latency is measured at)."""
        pipeline = Pipeline(
            source,
            self.chain,
            sinks,
            fps=self.context.fps,
            max_frames=max_frames,
            duration=duration,
            stats=stats,
            engine=self.engine,
            audio=audio,
            sleep_after=sleep_after,
        )
        pipeline.stats.provider = self.engine.provider
        return pipeline


def assemble(
    preset: Preset,
    engine: Engine,
    size: tuple[int, int],
    fps: float,
    *,
    stats: PipelineStats | None = None,
    implementation: str = "auto",
) -> Assembly:
    """Build `preset`'s stages on `engine` for `size` frames at `fps` (loads models: call it off the loop).

    `stats`: the statistics the chain records into (a preset switch keeps the pipeline's).
    `implementation`: "auto" (frames stay on the device on a GPU provider, in host memory on the CPU one),
    or "graph" / "cpu" forced (`livefuse bench --implementation`, tests).
    """
    context = StageContext(
        engine=engine, size=size, fps=fps, preset_dir=preset.path.parent, implementation=implementation
    )
    return Assembly(preset, engine, context, build_chain(preset, context, stats))


def build_chain(preset: Preset, context: StageContext, stats: PipelineStats | None = None) -> Chain:
    """Instantiate a preset's stages (loading their models) into a runnable chain.

    On a GPU provider (or with `context.implementation = "graph"`) the chain keeps its frames on the
    device: one upload after capture, one download at the end, the stages' device paths in between.
    """
    device = frames_device(context.engine, context.implementation)
    boundary = None
    if device is not None:
        context = dataclasses.replace(context, transfers=TransferCounter())
        boundary = DeviceBoundary(device, context.transfers)
    built: list[tuple[str, Stage]] = []
    missing: list[str] = []  # every stage's model problem, so one run names all there is to pull
    try:
        for config in preset.stages:
            try:
                built.append((config.label, config.spec.factory(dict(config.params), context)))
            except ModelError as exc:
                missing.append(str(exc))
        if missing:
            raise ModelError(f"preset {preset.name!r} cannot start:\n  " + "\n  ".join(missing))
    except BaseException:
        for _, stage in built:
            stage.close()
        raise
    return Chain(preset.name, built, stats, boundary=boundary)
