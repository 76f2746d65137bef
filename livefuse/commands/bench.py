"""`livefuse bench`: a preset's throughput and capture-to-output latency on a source released in real time.

`--mode both` runs livefuse's pipeline and the naive one-thread loop on the same source, one
after the other in the same invocation, and reports their ratios.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from livefuse.commands.args import add_engine_args, add_video_args, positive_int
from livefuse.errors import OutputError
from livefuse.logs import setup_logging
from livefuse.presets import DEFAULT_PRESET, available_presets, load_preset
from livefuse.triton.executor import parse_executor

log = logging.getLogger("livefuse")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure a preset's throughput and end-to-end latency",
        description="Run a preset on a source released in real time (like a camera) to the null output, and "
        "report fps, dropped frames, capture-to-output latency, per-stage times, CPU and memory.",
    )
    parser.add_argument("--preset", metavar="NAME|PATH", help=f"preset name or .toml file (default: {DEFAULT_PRESET})")
    parser.add_argument(
        "--source",
        default="demo",
        metavar="demo|PATH",
        help="the built-in demo or a video file, released at --fps (default: demo)",
    )
    add_video_args(parser)
    parser.add_argument(
        "--frames", type=positive_int, default=600, metavar="N", help="frames released per mode (default: 600)"
    )
    add_engine_args(parser)
    parser.add_argument(
        "--mode",
        choices=("pipelined", "sequential", "both"),
        default="both",
        help="livefuse's pipeline, the naive one-thread loop, or both (default: both)",
    )
    parser.add_argument(
        "--audio",
        action="store_true",
        help="also run the pipeline with sound (a 44.1 kHz microphone, resampled and AAC-encoded), "
        "to show what audio adds to CPU and to video latency in the same run",
    )
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="decode the first N frames up front and cycle them, so that releasing frames costs no "
        "CPU (for capacity runs with a high --fps; default: 0, decode as released)",
    )
    parser.add_argument(
        "--implementation",
        choices=("auto", "graph", "cpu"),
        default="auto",
        help="graph: frames stay on the engine's device from one upload to one download, each stage "
        "on its device path; cpu: host memory and OpenCV; auto (default): graph on a GPU "
        "provider, cpu on the CPU provider",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results here")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="write a latency CDF and timeline (matplotlib)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from livefuse.bench.report import table, write_json
    from livefuse.bench.runner import AUDIO_MODE, MODES, BenchConfig, run_bench

    setup_logging("text", args.verbose)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and not path.resolve().parent.is_dir():
            raise OutputError(f"{option} {path}: folder {path.parent} does not exist")
    preset = args.preset or (DEFAULT_PRESET if DEFAULT_PRESET in available_presets() else "passthrough")
    load_preset(preset)  # report a bad preset now, not from a child process
    parse_executor(args.executor, args.fps)
    config = BenchConfig(
        preset=preset,
        source=args.source,
        size=args.size,
        fps=args.fps,
        frames=args.frames,
        provider=args.provider,
        iobinding=args.iobinding,
        preload=args.preload,
        executor=args.executor,
        implementation=args.implementation,
    )
    modes = MODES if args.mode == "both" else (args.mode,)
    if args.audio:
        modes = (*modes, AUDIO_MODE) if "pipelined" in modes else ("pipelined", *modes, AUDIO_MODE)
    log.info(
        "benchmarking %s on %s at %dx%d %g fps, %d frames per mode: %s",
        preset,
        args.source,
        *args.size,
        args.fps,
        args.frames,
        ", ".join(modes),
    )
    result = run_bench(config, modes)
    print(table(result))
    if args.json is not None:
        write_json(result, args.json)
    if args.plot is not None:
        from livefuse.bench.plot import plot_latency

        plot_latency(
            list(result["modes"].items()),
            args.plot,
            f"{preset} {args.size[0]}x{args.size[1]} @ {args.fps:g} fps ({result['provider']})",
        )
    return 0
