"""`livefuse serve`: a headless session server (WHIP/WHEP sessions, the API and /metrics, no source of its own)."""

from __future__ import annotations

import argparse
import asyncio

from livefuse.commands.daemon_args import DEFAULT_PORT, add_daemon_args, engine_options, preset_arg, web_control
from livefuse.logs import QuietLoopErrors, setup_logging
from livefuse.loop_priority import REALTIME, raise_loop_priority
from livefuse.presets import load_preset


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="filter others' streams (WHIP/WHEP sessions) until stopped",
        description="Serve sessions: each WHIP client (or browser camera) gets its stream back filtered by the "
        "preset (or the one it asks for with ?preset=NAME), with the control API and /metrics. "
        "No camera or source of its own.",
    )
    add_daemon_args(parser, port_help=f"API and WHIP port (default: {DEFAULT_PORT})")
    parser.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.verbose)
    asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    from livefuse import daemon  # here, not at the top: the other subcommands never load onnxruntime
    from livefuse.triton.executor import parse_executor

    asyncio.get_running_loop().set_exception_handler(QuietLoopErrors())
    parse_executor(args.executor, args.fps)
    if args.loop_priority == REALTIME:
        raise_loop_priority()  # before the loop starts any thread
    preset = load_preset(preset_arg(args))
    control = web_control(args, DEFAULT_PORT if args.port is None else args.port)
    await daemon.serve(preset, args.size, args.fps, engine_options(args), control)
