"""What `livefuse run` and `livefuse serve` share: the web server's options and the engine's, read and checked
before anything opens."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from livefuse.commands.args import (
    add_engine_args,
    add_video_args,
    milliseconds,
    positive_float,
    positive_int,
    positive_ms,
)
from livefuse.errors import UserError
from livefuse.loop_priority import NORMAL, REALTIME
from livefuse.presets import DEFAULT_PRESET, default_preset
from livefuse.web.auth import is_loopback
from livefuse.web.ice_servers import parse_ice_server

if TYPE_CHECKING:  # built in the functions below: every subcommand imports this module, and only run and serve
    # may load onnxruntime (`livefuse models list` must not)
    from livefuse.daemon import EngineOptions
    from livefuse.web.control import WebControl

log = logging.getLogger("livefuse")

DEFAULT_PORT = 8080


def add_daemon_args(parser: argparse.ArgumentParser, *, port_help: str) -> None:
    """The preset, the frame format, the engine and the web server's options."""
    parser.add_argument("--preset", metavar="NAME|PATH", help=f"preset name or .toml file (default: {DEFAULT_PRESET})")
    add_video_args(parser)
    add_engine_args(parser)
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--host", default="127.0.0.1", help="preview and API address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=port_help)
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token",
        help="the preview and API token (visible to other users in `ps`: prefer "
        "--token-file or LIVEFUSE_TOKEN); a fresh one is generated if none is given",
    )
    auth.add_argument("--token-file", type=Path, metavar="PATH", help="read the token from this file")
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="no token at all (loopback only): any local user and process may then use the API",
    )
    parser.add_argument(
        "--allow-push",
        action="append",
        metavar="PATTERN",
        help="a destination API clients may push sessions to, as a pattern of the URL without its "
        "query (e.g. 'rtmp://live.example.com/app/*'); repeatable; none by default",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a web origin (https://app.example.com) whose pages may use /whip and /whep with a "
        "WHIP/WHEP client (CORS, RFC 9725); repeatable; none by default",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        metavar="URL",
        help="a STUN or TURN server (stun:HOST:PORT, turn:USER:PASS@HOST:PORT) for the daemon's "
        "peers, and told to WHIP/WHEP clients in Link headers; repeatable",
    )
    parser.add_argument(
        "--session-id",
        default="main",
        metavar="ID",
        help="this stream's id: with --executor triton://, a grey release picks model versions by "
        "its hash (default: main; give each daemon its own)",
    )
    parser.add_argument(
        "--max-peers",
        type=positive_int,
        default=16,
        metavar="N",
        help="most WebRTC viewers and filtered browser cameras at once (default: 16)",
    )
    parser.add_argument(
        "--peer-timeout",
        type=positive_float,
        default=15.0,
        metavar="SECONDS",
        help="close a WebRTC peer that sent nothing back for this long (default: 15)",
    )
    parser.add_argument(
        "--session-budget-ms",
        type=positive_ms,
        default=150.0,
        metavar="MS",
        help="each WHIP session's glass-to-glass latency budget: while one runs near it, new "
        "sessions are refused with 503 (default: 150)",
    )
    parser.add_argument(
        "--batch-delay-ms",
        type=milliseconds,
        default=None,
        metavar="MS",
        help="batch the model calls of all streams, each waiting at most this long for the others' "
        "(off by default; e.g. 2)",
    )
    parser.add_argument(
        "--loop-priority",
        choices=(REALTIME, NORMAL),
        default=REALTIME,
        help="the event loop's thread at real-time priority where the OS allows it, which keeps "
        "signalling and RTP prompt on a loaded machine (default: realtime)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")


def preset_arg(args: argparse.Namespace) -> str:
    return args.preset or default_preset()


def engine_options(args: argparse.Namespace) -> EngineOptions:
    from livefuse.daemon import EngineOptions

    return EngineOptions(
        provider=args.provider,
        iobinding=args.iobinding,
        executor=args.executor,
        session_id=args.session_id,
        batch_delay_ms=args.batch_delay_ms,
    )


def web_control(args: argparse.Namespace, port: int) -> WebControl:
    """The web server --host, --port and the rest ask for (each option checked now, before any model loads)."""
    from livefuse.web.control import WebControl
    from livefuse.web.server import WebOptions

    options = WebOptions(
        host=args.host,
        port=port,
        token=read_token(args),
        max_peers=args.max_peers,
        peer_timeout=args.peer_timeout,
        session_budget_ms=args.session_budget_ms,
        allow_push=tuple(args.allow_push or ()),
        cors_origins=tuple(check_origin(origin) for origin in args.cors_origin or ()),
        ice_servers=tuple(parse_ice_server(url) for url in args.ice_server or ()),
    )
    return WebControl(options, no_auth=args.no_auth)


def read_token(args: argparse.Namespace) -> str | None:
    """The token from --token, --token-file or LIVEFUSE_TOKEN (None: the server generates one, or --no-auth)."""
    if args.no_auth:
        if not is_loopback(args.host):
            raise UserError(
                f"--no-auth is for a loopback --host only: {args.host} is reachable from other "
                "machines, so it needs a token"
            )
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
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise UserError(
            f"--cors-origin {origin!r}: give an origin as a browser sends it, e.g. https://app.example.com "
            "or http://localhost:3000 (no path, no trailing slash)"
        )
    return origin
