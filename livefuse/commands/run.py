"""`livefuse run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livefuse.audio.denoise import AUDIO_FILTERS
from livefuse.audio.filtered import FilteredAudio
from livefuse.audio.inputs import AUDIO_HELP, AudioInput, open_audio
from livefuse.commands.args import (
    add_engine_args,
    add_video_args,
    milliseconds,
    positive_float,
    positive_int,
    positive_ms,
)
from livefuse.errors import OutputError, UserError
from livefuse.logs import QuietLoopErrors, setup_logging
from livefuse.loop_priority import NORMAL, REALTIME, raise_loop_priority
from livefuse.presets import DEFAULT_PRESET, available_presets, load_preset
from livefuse.redact import redact
from livefuse.runtime import Runtime
from livefuse.sinks import OUTPUT_HELP, Sink, open_sink, parse_output
from livefuse.sleep import SLEEP_AFTER_S
from livefuse.sources import SOURCE_HELP, default_source, open_source
from livefuse.status import report_status
from livefuse.web.auth import is_loopback
from livefuse.web.ice_servers import parse_ice_server
from livefuse.wiring import assemble

log = logging.getLogger("livefuse")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run", help="filter live video until stopped", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Capture, filter and output live video, and its sound.",
        epilog="Sound: the source's own audio (files, streams) or an --audio device goes, never dropped and in "
               "sync,\nto .mp4/.mkv (AAC), .webm (Opus), RTMP (AAC in FLV) and udp/srt (AAC in MPEG-TS) outputs. "
               "Video and\naudio keep their capture times, so the sound is held back by exactly the video's "
               "processing delay.\nThe virtual camera carries no sound: set the video delay livefuse reports as "
               "the microphone's\nsync offset in OBS.")
    parser.add_argument("--source", metavar="SPEC", help=f"{SOURCE_HELP} (default: webcam if present, else demo)")
    parser.add_argument("--preset", metavar="NAME|PATH", help=f"preset name or .toml file (default: {DEFAULT_PRESET})")
    parser.add_argument("--output", action="append", metavar="SPEC",
                        help=f"{OUTPUT_HELP}; repeat for several (default: preview, plus virtualcam when usable)")
    parser.add_argument("--audio", default="auto", metavar="SPEC", help=f"{AUDIO_HELP} (default: auto)")
    parser.add_argument("--audio-filter", choices=AUDIO_FILTERS, default=None,
                        help="denoise: RNNoise noise removal on the sound before the outputs (20 ms, kept in sync); "
                             "none: the sound as captured (default: the preset's audio_filter, else none)")
    add_video_args(parser)
    add_engine_args(parser)
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--frames", type=positive_int, metavar="N", help="stop after N captured frames")
    limit.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--always-on", action="store_true",
                        help="keep capturing and filtering when no output is watched (by default livefuse sleeps "
                             "after --sleep-after seconds with no viewer, no virtual camera reader, no recording "
                             "or push, and releases the camera; a run with --frames or --duration never sleeps)")
    parser.add_argument("--sleep-after", type=positive_float, default=SLEEP_AFTER_S, metavar="SECONDS",
                        help=f"grace period before sleeping unwatched (default: {SLEEP_AFTER_S:g})")
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final statistics here")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--host", default="127.0.0.1", help="preview and API address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="preview and API port (default: 8080)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="the preview and API token (visible to other users in `ps`: prefer "
                                      "--token-file or LIVEFUSE_TOKEN); a fresh one is generated if none is given")
    auth.add_argument("--token-file", type=Path, metavar="PATH", help="read the token from this file")
    auth.add_argument("--no-auth", action="store_true",
                      help="no token at all (loopback only): any local user and process may then use the API")
    parser.add_argument("--allow-push", action="append", metavar="PATTERN",
                        help="a destination API clients may push sessions to, as a pattern of the URL without its "
                             "query (e.g. 'rtmp://live.example.com/app/*'); repeatable; none by default")
    parser.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                        help="a web origin (https://app.example.com) whose pages may use /whip and /whep with a "
                             "WHIP/WHEP client (CORS, RFC 9725); repeatable; none by default")
    parser.add_argument("--ice-server", action="append", metavar="URL",
                        help="a STUN or TURN server (stun:HOST:PORT, turn:USER:PASS@HOST:PORT) for the daemon's "
                             "peers, and told to WHIP/WHEP clients in Link headers; repeatable")
    parser.add_argument("--session-id", default="main", metavar="ID",
                        help="this stream's id: with --executor triton://, a grey release picks model versions by "
                             "its hash (default: main; give each daemon its own)")
    parser.add_argument("--max-peers", type=positive_int, default=16, metavar="N",
                        help="most WebRTC viewers and filtered browser cameras at once (default: 16)")
    parser.add_argument("--peer-timeout", type=positive_float, default=15.0, metavar="SECONDS",
                        help="close a WebRTC peer that sent nothing back for this long (default: 15)")
    parser.add_argument("--session-budget-ms", type=positive_ms, default=150.0, metavar="MS",
                        help="each WHIP session's glass-to-glass latency budget: while one runs near it, new "
                             "sessions are refused with 503 (default: 150)")
    parser.add_argument("--batch-delay-ms", type=milliseconds, default=None, metavar="MS",
                        help="batch the model calls of all streams, each waiting at most this long for the others' "
                             "(off by default; e.g. 2)")
    parser.add_argument("--loop-priority", choices=(REALTIME, NORMAL), default=REALTIME,
                        help="the event loop's thread at real-time priority where the OS allows it, which keeps "
                             "signalling and RTP prompt on a loaded machine (default: realtime)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=run_command)


def default_preset() -> str:
    presets = available_presets()
    return DEFAULT_PRESET if DEFAULT_PRESET in presets else "passthrough"


def default_outputs() -> list[str]:
    from livefuse.sinks.virtualcam import virtualcam_fix, virtualcam_usable

    outputs = ["preview"]
    if virtualcam_usable():
        outputs.append("virtualcam")
    else:
        log.info("no virtual camera on this machine, so only the preview runs; for one: %s", virtualcam_fix())
    return outputs


def open_outputs(specs: list[str], size: tuple[int, int], fps: float, web: dict[str, Any],
                 audio: AudioInput | None = None) -> list[Sink]:
    sinks: list[Sink] = []
    try:
        for spec in specs:
            sinks.append(open_sink(spec, size, fps, audio.format if audio is not None else None, **web))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def read_token(args: argparse.Namespace) -> str | None:
    """The token from --token, --token-file or LIVEFUSE_TOKEN (None: the preview generates one, or --no-auth)."""
    if args.no_auth:
        if not is_loopback(args.host):
            raise UserError(f"--no-auth is for a loopback --host only: {args.host} is reachable from other "
                             "machines, so it needs a token")
        return None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--token-file {args.token_file}: cannot read it ({exc})") from exc
        source = f"--token-file {args.token_file}"
    else:
        token, source = args.token or os.environ.get("LIVEFUSE_TOKEN", "").strip(), "the token"
    if args.token:
        log.warning("--token is visible to every user of this machine (ps); --token-file or LIVEFUSE_TOKEN is not")
    if token and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
        raise UserError(f"{source}: a token must be at least 16 printable ASCII characters without spaces")
    return token or None


def check_origin(origin: str) -> str:
    """A --cors-origin: exactly what browsers send as Origin (scheme://host[:port], no path)."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment \
            or "@" in parts.netloc:
        raise UserError(f"--cors-origin {origin!r}: give an origin as a browser sends it, e.g. https://app.example.com "
                        "or http://localhost:3000 (no path, no trailing slash)")
    return origin


def run_command(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.verbose)
    if args.stats_json is not None and not args.stats_json.resolve().parent.is_dir():
        raise OutputError(f"--stats-json {args.stats_json}: folder {args.stats_json.parent} does not exist")
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from livefuse.engine import Engine
    from livefuse.triton.executor import open_executor, parse_executor

    size, fps = args.size, args.fps
    asyncio.get_running_loop().set_exception_handler(QuietLoopErrors())
    parse_executor(args.executor, fps)  # a bad --executor is reported before anything opens
    # before the loop starts any thread, so that every thread but the loop's stays at normal priority
    loop_priority = raise_loop_priority() if args.loop_priority == REALTIME else NORMAL
    preset = load_preset(args.preset or default_preset())
    specs = args.output or default_outputs()
    token = read_token(args)
    cors_origins = tuple(check_origin(origin) for origin in args.cors_origin or ())
    for url in args.ice_server or ():
        parse_ice_server(url)  # a typo is reported before any model loads
    for spec in specs:
        parse_output(spec)  # a typo in --output is reported before any model loads
    source_spec = args.source or default_source()
    if args.source is None and source_spec == "demo":
        log.info("no camera found: showing the built-in demo source (pick one with --source)")
    source = open_source(source_spec, size, fps)
    try:
        audio = open_audio(args.audio, source, source.description)
        audio_filter = args.audio_filter or preset.audio_filter or "none"
        if audio is not None:
            try:
                audio = FilteredAudio(audio, audio_filter)
            except BaseException:
                audio.close()
                raise
        elif audio_filter != "none":
            log.warning("--audio-filter %s: there is no sound to filter (see --audio)", audio_filter)
    except BaseException:
        source.close()
        raise
    sinks: list[Sink] = []
    engine: Engine | None = None
    try:
        engine = Engine(provider=args.provider, iobinding=args.iobinding,
                        executor=await asyncio.get_running_loop().run_in_executor(
                            None, open_executor, args.executor, fps),
                        session_id=args.session_id)
        if args.batch_delay_ms is not None:
            engine.pool.enable_batching(max_delay_ms=args.batch_delay_ms)
        await asyncio.get_running_loop().run_in_executor(None, engine.resolve_provider)
        assembly = assemble(preset, engine, size, fps)
        web = {"host": args.host, "port": args.port, "token": token, "no_auth": args.no_auth,
               "max_peers": args.max_peers,
               "peer_timeout": args.peer_timeout, "session_budget_ms": args.session_budget_ms,
               "allow_push": tuple(args.allow_push or ()), "cors_origins": cors_origins,
               "ice_servers": tuple(parse_ice_server(url) for url in args.ice_server or ())}
        sinks = open_outputs(specs, size, fps, web, audio)
        bounded = args.frames is not None or args.duration is not None
        runtime = Runtime.wire(assembly, source, sinks, max_frames=args.frames, duration=args.duration, audio=audio,
                               sleep_after=None if args.always_on or bounded else args.sleep_after,
                               settings={"source": redact(source_spec), "size": list(size), "fps": fps,
                                         "outputs": [redact(spec) for spec in specs],
                                         "loop_priority": loop_priority})
        pipeline = runtime.pipeline
        for sink in sinks:
            await sink.attach(runtime)  # the preview output starts its web server with the control API
    except BaseException:
        for sink in sinks:  # e.g. the preview's port was taken: finalise any recording already opened
            sink.close()
        source.close()  # from here on the pipeline's capture thread owns (and closes) the source
        if audio is not None:
            audio.close()
        if engine is not None:
            engine.close()
        raise
    log.info("running preset %s on %s -> %s (%s; sound: %s)", preset.name, source.description,
             ", ".join(redact(spec) for spec in specs),
             engine.provider, audio.description if audio is not None else "none")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, pipeline.stop)
    status = asyncio.create_task(report_status(
        pipeline.stats, json_lines=args.log_format == "json",
        disabled=lambda: [h["label"] for h in runtime.pipeline.chain.health_report() if h["disabled"]]))
    try:
        stats = await pipeline.run()
    finally:
        status.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await status  # the status line ends its line before the summary is logged
        runtime.pipeline.chain.close()
        engine.close()
    snapshot = stats.snapshot()
    if args.stats_json is not None:
        args.stats_json.write_text(json.dumps(snapshot, indent=2) + "\n")
    lat = snapshot["latency_ms"]
    assert isinstance(lat, dict)
    log.info("done: %d frames in, %d out, %d dropped, %.1f fps, latency p50 %.1f ms p95 %.1f ms (%s)",
             stats.frames_in, stats.frames_out, stats.dropped, stats.fps, lat["p50"], lat["p95"], stats.provider)
    return 0

