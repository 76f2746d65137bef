"""The running daemon: one async exit stack owns its engine, its runtime, the web server and its outputs.

`run` is `livefuse run`: a source through a preset to outputs, with the web server (the `ControlPlane`)
when one is given. `serve` is `livefuse serve`: the web server's sessions alone, with no source of its own.
Whatever fails on the way up, what was opened is closed again, in reverse order; once the pipeline runs,
it owns (and closes) the source, the sound and the outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from livefuse.audio.chunk import AudioFormat
from livefuse.audio.filtered import FilteredAudio
from livefuse.audio.inputs import AudioInput, open_audio
from livefuse.presets import Preset
from livefuse.redact import redact
from livefuse.runtime import Runtime
from livefuse.sinks import Sink, open_sink, parse_output
from livefuse.sources import open_source
from livefuse.sources.base import Source
from livefuse.stats import PipelineStats
from livefuse.status import report_status
from livefuse.wiring import assemble

if TYPE_CHECKING:
    from livefuse.engine import Engine

log = logging.getLogger("livefuse")


@dataclass
class Served:
    """What the control plane serves: the engine and frame format sessions are built on, the preset a session
    runs unless it asks for another, and the daemon's own runtime (None: `livefuse serve`)."""

    engine: Engine
    size: tuple[int, int]
    fps: float
    preset: Callable[[], Preset]  # read when a session starts: the daemon's active preset, with its live values
    main: Runtime | None = None


class ControlPlane(Protocol):
    """The web server (livefuse/web/control.py), as the daemon drives it."""

    def preview_sink(self, audio: AudioFormat | None) -> Sink:
        """The `preview` output, which the server sends to its viewers (asked before `serving`)."""

    def serving(self, served: Served) -> AbstractAsyncContextManager[object]:
        """Listening while the context runs."""


@dataclass(frozen=True)
class EngineOptions:
    provider: str = "auto"
    iobinding: bool = True
    executor: str = "local"  # or triton://HOST:PORT
    session_id: str = "main"
    batch_delay_ms: float | None = None  # batch the model calls of all streams (None: off)


@dataclass(frozen=True)
class RunPlan:
    """`livefuse run`, its arguments checked."""

    preset: Preset
    source: str
    outputs: list[str]
    size: tuple[int, int]
    fps: float
    engine: EngineOptions = field(default_factory=EngineOptions)
    audio: str = "auto"
    audio_filter: str | None = None  # None: the preset's, else none
    max_frames: int | None = None
    duration: float | None = None
    sleep_after: float | None = None  # None: never sleeps
    settings: dict[str, Any] = field(default_factory=dict)  # more for /api/status (the loop's priority)
    json_status: bool = False
    stats_json: Path | None = None


async def open_engine(options: EngineOptions, fps: float) -> Engine:
    """The engine, its provider resolved (off the loop: it may try several)."""
    from livefuse.engine import Engine
    from livefuse.triton.executor import open_executor

    loop = asyncio.get_running_loop()
    executor = await loop.run_in_executor(None, open_executor, options.executor, fps)
    engine = Engine(
        provider=options.provider, iobinding=options.iobinding, executor=executor, session_id=options.session_id
    )
    try:
        if options.batch_delay_ms is not None:
            engine.pool.enable_batching(max_delay_ms=options.batch_delay_ms)
        await loop.run_in_executor(None, engine.resolve_provider)
    except BaseException:
        engine.close()
        raise
    return engine


def open_sound(plan: RunPlan, source: Source) -> AudioInput | None:
    """The sound the outputs carry, through the audio filter asked for (None: none)."""
    audio = open_audio(plan.audio, source, source.description)
    audio_filter = plan.audio_filter or plan.preset.audio_filter or "none"
    if audio is None:
        if audio_filter != "none":
            log.warning("--audio-filter %s: there is no sound to filter (see --audio)", audio_filter)
        return None
    try:
        return FilteredAudio(audio, audio_filter)
    except BaseException:
        audio.close()
        raise


def open_outputs(
    plan: RunPlan, audio: AudioFormat | None, control: ControlPlane | None, owned: contextlib.ExitStack
) -> list[Sink]:
    """The outputs, each closed by `owned` until the pipeline takes them over; the preview is the server's."""
    sinks: list[Sink] = []
    for spec in plan.outputs:
        if parse_output(spec)[0] == "preview" and control is not None:
            sink = control.preview_sink(audio)
        else:
            sink = open_sink(spec, plan.size, plan.fps, audio)
        owned.callback(sink.close)
        sinks.append(sink)
    return sinks


async def run(plan: RunPlan, control: ControlPlane | None = None) -> PipelineStats:
    """Filter until the source ends, the limit is reached or SIGINT/SIGTERM; the final statistics."""
    async with contextlib.AsyncExitStack() as stack:
        owned = stack.enter_context(contextlib.ExitStack())  # the pipeline's once it runs
        source = open_source(plan.source, plan.size, plan.fps)
        owned.callback(source.close)
        audio = open_sound(plan, source)
        if audio is not None:
            owned.callback(audio.close)
        engine = await open_engine(plan.engine, plan.fps)
        stack.callback(engine.close)
        assembly = assemble(plan.preset, engine, plan.size, plan.fps)
        sinks = open_outputs(plan, audio.format if audio is not None else None, control, owned)
        settings = {
            "source": redact(plan.source),
            "size": list(plan.size),
            "fps": plan.fps,
            "outputs": [redact(spec) for spec in plan.outputs],
            **plan.settings,
        }
        runtime = Runtime.wire(
            assembly,
            source,
            sinks,
            max_frames=plan.max_frames,
            duration=plan.duration,
            audio=audio,
            sleep_after=plan.sleep_after,
            settings=settings,
        )
        pipeline = runtime.pipeline
        stack.callback(lambda: runtime.pipeline.chain.close())  # the chain running last, after any switch
        if control is not None:
            await stack.enter_async_context(
                control.serving(Served(engine, plan.size, plan.fps, lambda: runtime.preset, runtime))
            )
        log.info(
            "running preset %s on %s -> %s (%s; sound: %s)",
            plan.preset.name,
            source.description,
            ", ".join(redact(spec) for spec in plan.outputs),
            engine.provider,
            audio.description if audio is not None else "none",
        )
        _stop_on_signals(stack, pipeline.stop)
        status = asyncio.create_task(
            report_status(
                pipeline.stats,
                json_lines=plan.json_status,
                disabled=lambda: [h["label"] for h in runtime.pipeline.chain.health_report() if h["disabled"]],
            )
        )
        stack.push_async_callback(_cancel, status)  # the status line ends before the summary is logged
        owned.pop_all()
        stats = await pipeline.run()
    _report(stats, plan.stats_json)
    return stats


async def serve(
    preset: Preset, size: tuple[int, int], fps: float, engine_options: EngineOptions, control: ControlPlane
) -> None:
    """Serve sessions (WHIP, the page's camera) running `preset` unless they ask for another, until
    SIGINT/SIGTERM. The preset is built first and kept, so one that cannot start is reported before the server
    listens, and a session running it finds its models loaded."""
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_engine(engine_options, fps)
        stack.callback(engine.close)
        chain = (await loop.run_in_executor(None, assemble, preset, engine, size, fps)).chain
        stack.callback(chain.close)  # kept, never run: the engine's pool keeps its models while a chain holds them
        await stack.enter_async_context(control.serving(Served(engine, size, fps, lambda: preset)))
        log.info("serving sessions of %s at %gx%g, %g fps (%s)", preset.name, *size, fps, engine.provider)
        stopped = asyncio.Event()
        _stop_on_signals(stack, stopped.set)
        await stopped.wait()


def _stop_on_signals(stack: contextlib.AsyncExitStack, stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
        stack.callback(loop.remove_signal_handler, sig)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _report(stats: PipelineStats, stats_json: Path | None) -> None:
    snapshot = stats.snapshot()
    if stats_json is not None:
        stats_json.write_text(json.dumps(snapshot, indent=2) + "\n")
    lat = snapshot["latency_ms"]
    assert isinstance(lat, dict)
    log.info(
        "done: %d frames in, %d out, %d dropped, %.1f fps, latency p50 %.1f ms p95 %.1f ms (%s)",
        stats.frames_in,
        stats.frames_out,
        stats.dropped,
        stats.fps,
        lat["p50"],
        lat["p95"],
        stats.provider,
    )
