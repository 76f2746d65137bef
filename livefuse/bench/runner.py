"""Runs one preset in one mode on a real-time released source and measures it.

Each mode runs in a fresh child process (spawned), so its CPU time, peak memory, thread
pools and warmed-up caches are its own and the two modes cannot disturb each other; they
still run one after the other in the same invocation, on the same machine state.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livefuse.bench.camera import ReleasedCamera, preloaded
from livefuse.bench.report import Measured, mode_result, ratios
from livefuse.errors import UserError
from livefuse.frame import Frame
from livefuse.sinks.base import Sink

log = logging.getLogger("livefuse.bench")

MODES = ("pipelined", "sequential")
AUDIO_MODE = "pipelined+audio"  # the pipeline again, with a microphone's sound resampled and AAC-encoded
WARMUP_FRAMES = 10  # run through the chain unmeasured first: the first inferences allocate and tune


@dataclass
class BenchConfig:
    preset: str = "background-blur"
    source: str = "demo"  # "demo" or a video file path
    size: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    frames: int = 600
    provider: str = "auto"
    iobinding: bool = True
    warmup: int = WARMUP_FRAMES
    preload: int = 0  # > 0: decode this many frames first and cycle copies of them (capacity runs)
    executor: str = "local"  # or triton://HOST:PORT: the remote executor's cost, against local in the same run
    # auto, graph or cpu (StageContext.implementation): "graph" keeps frames on the engine's device between
    # stages, "auto" does so on a GPU provider only.
    implementation: str = "auto"


class RecordingSink(Sink):
    """The null output, noting when each frame reached it (the end of its capture-to-output latency)."""

    repeat_when_idle = False
    inline = True  # written by the emitting thread, as `livefuse run --output null` is: no hop it lacks

    def __init__(self, camera: ReleasedCamera) -> None:
        self.name = "null"
        self._camera = camera
        self.outputs: list[tuple[int, int, int, int, int]] = []

    def write(self, frame: Frame) -> None:
        now = time.monotonic_ns()
        got = self._camera.reads[frame.seq]  # read n of the camera became frame seq n
        self.outputs.append((got.index, got.release_ns, frame.capture_ns, now, sum(frame.stage_ns.values())))

    def close(self) -> None:
        pass


def open_producer(config: BenchConfig) -> tuple[Callable[[], np.ndarray | None], Callable[[], None], str]:
    """(next frame, close, description) for the bench source, unpaced: the camera emulator paces it."""
    produce, close, description = _open_producer(config)
    if config.preload > 0:
        return preloaded(produce, config.preload), close, f"{description} (first {config.preload} preloaded)"
    return produce, close, description


def _open_producer(config: BenchConfig) -> tuple[Callable[[], np.ndarray | None], Callable[[], None], str]:
    if config.source == "demo":
        from livefuse.sources.demo import DemoSource

        demo = DemoSource(config.size, config.fps, paced=False)
        return demo.read, demo.close, demo.description
    from livefuse.sources.av_source import AVSource
    from livefuse.sources.base import SourceLost

    path = Path(config.source)
    if not path.is_file():
        raise UserError(f"--source {config.source}: no such file; give a video file or 'demo'")
    video = AVSource(str(path), config.size, config.fps, live=True, description=f"file {path}")

    def read_looping() -> np.ndarray | None:
        """Decoded as fast as asked (live=True: the camera emulator paces it); back to the start at its end."""
        try:
            return video.read()
        except SourceLost:  # a live source's end: reopen the file once, a second failure propagates
            video.reopen()
            return video.read()

    return read_looping, video.close, video.description


def run_mode(config: BenchConfig, mode: str) -> dict[str, Any]:
    """Build the preset, warm it up, run `config.frames` released frames through it in `mode`; its JSON."""
    from livefuse.engine import Engine
    from livefuse.memory import keep_frame_memory
    from livefuse.presets import load_preset
    from livefuse.stats import PipelineStats
    from livefuse.wiring import assemble

    if mode not in (*MODES, AUDIO_MODE):
        raise ValueError(mode)
    keep_frame_memory()  # as `livefuse run` does (a spawned process starts with the default malloc)
    preset = load_preset(config.preset)
    from livefuse.triton.executor import open_executor

    engine = Engine(
        provider=config.provider, iobinding=config.iobinding, executor=open_executor(config.executor, config.fps)
    )
    assembly = assemble(preset, engine, config.size, config.fps, implementation=config.implementation)
    chain = assembly.chain
    produce, close_source, description = open_producer(config)
    try:
        for seq in range(config.warmup):
            image = produce()
            if image is None:
                break
            chain.run(Frame(seq=seq, capture_ns=time.monotonic_ns(), image=image), chain.admit())
        chain.stats = stats = PipelineStats()  # forget the warm-up
        copies_before = engine.copies()
        transfers_before = chain.boundary.counter.raw() if chain.boundary is not None else None
        camera = ReleasedCamera(produce, config.fps, config.frames, size=config.size, description=description)
        sink = RecordingSink(camera)
        measured = Measured(release_ns=camera.release_times_ns)
        measured.usage.start()
        camera.start()
        if mode == "pipelined":
            asyncio.run(assembly.pipeline(camera, [sink], stats=stats).run())
        elif mode == AUDIO_MODE:
            from livefuse.bench.audio import AudioEncodeSink, SyntheticMicrophone

            microphone = SyntheticMicrophone()
            pipeline = assembly.pipeline(
                camera, [sink, AudioEncodeSink(microphone.format)], stats=stats, audio=microphone
            )
            asyncio.run(pipeline.run())
        else:
            from livefuse.bench.sequential import run_sequential

            run_sequential(camera, chain, sink)
        measured.usage.stop()
        camera.close()
        if camera.error is not None:
            raise camera.error
    finally:
        close_source()
        chain.close()
        engine.close()
    measured.outputs = sink.outputs
    measured.stages_ns = {name: list(rec.samples) for name, rec in stats.stages.items()}
    measured.provider = engine.provider if preset.stages else "none (no stage)"
    measured.copies = {k: v - copies_before.get(k, 0) for k, v in engine.copies().items()}
    measured.camera_slips = camera.slips
    if chain.boundary is not None:
        measured.device_frames = {
            "device": chain.boundary.device,
            "pinned": chain.boundary.pinned,
            **chain.boundary.counter.report(since=transfers_before),
        }
    measured.stage_errors = dict(stats.stage_errors)
    return mode_result(measured)


def _child(config: dict[str, Any], mode: str, conn: Any) -> None:
    """Entry point of a mode's process: sends ("ok", result) or ("error", message, is_user_error)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config["size"] = tuple(config["size"])
        conn.send(("ok", run_mode(BenchConfig(**config), mode)))
    except UserError as exc:
        conn.send(("error", str(exc), True))
    except BaseException:  # noqa: BLE001 - reported by the parent
        conn.send(("error", traceback.format_exc(), False))
    finally:
        conn.close()


def run_mode_isolated(config: BenchConfig, mode: str) -> dict[str, Any]:
    """`run_mode` in a fresh spawned process, so each mode's CPU and memory figures are its own."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(asdict(config), mode, child), name=f"bench-{mode}")
    process.start()
    child.close()
    try:
        reply = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"bench {mode} process died (exit code {process.exitcode})") from None
    process.join()
    if reply[0] == "ok":
        return reply[1]
    if reply[2]:
        raise UserError(reply[1])
    raise RuntimeError(f"bench {mode} failed:\n{reply[1]}")


def run_bench(config: BenchConfig, modes: tuple[str, ...], *, isolate: bool = True) -> dict[str, Any]:
    """Every requested mode, one after the other, in the JSON shape `livefuse bench --json` writes."""
    results = {mode: (run_mode_isolated(config, mode) if isolate else run_mode(config, mode)) for mode in modes}
    first = next(iter(results.values()))
    result: dict[str, Any] = {
        "preset": config.preset,
        "source": config.source,
        "size": list(config.size),
        "fps_target": config.fps,
        "frames": config.frames,
        "provider": first["provider"],
        "iobinding": config.iobinding,
        "implementation": config.implementation,
        "preload": config.preload,
        "modes": results,
    }
    if "pipelined" in results and "sequential" in results:
        result["ratios"] = ratios(results)
    return result
