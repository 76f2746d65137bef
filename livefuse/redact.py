"""Secrets out of URLs before they are shown: user info, stream keys and secret query values.

`rtsp://user:pass@cam/stream` -> `rtsp://***@cam/stream`, `rtmp://live.example.com/app/KEY` ->
`rtmp://live.example.com/app/***`, `srt://host:9000?passphrase=x` -> `srt://host:9000?passphrase=***`.
Applied to every log line (RedactingFilter), to outputs' names (stats, /api/status, /metrics labels) and
to the settings /api/status shows.
"""

from __future__ import annotations

import logging
import re

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#'\"@]*@)?([^\s/?#'\"]*)([^\s?#'\"]*)(\?[^\s#'\"]*)?")
_SECRET_KEYS = re.compile(
    r"(?i)^(key|stream_?key|passphrase|streamid|token|password|pass|pwd|secret|auth|"
    r"sig|signature|access_token|api_key)$"
)
_KEY_IN_PATH = ("rtmp://", "rtmps://")  # FLV pushes: the last path segment is the stream key


def redact(text: str) -> str:
    """`text` with the secrets of every URL in it replaced by ***."""
    return _URL.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    scheme, userinfo, host, path, query = match.group(1, 2, 3, 4, 5)
    tail = ""
    if query is None and (stripped := path.rstrip(":.,;)")) != path:  # "... rtmp://h/app/KEY: refused"
        path, tail = stripped, path[len(stripped) :]
    if userinfo:
        userinfo = "***@"
    if scheme.lower() in _KEY_IN_PATH:
        parts = path.split("/")
        if len(parts) > 2 and parts[-1]:  # /app/KEY: the app stays, the key goes
            path = "/".join([*parts[:-1], "***"])
    if query:
        pairs = []
        for pair in query[1:].split("&"):
            name, sep, value = pair.partition("=")
            pairs.append(f"{name}=***" if sep and value and _SECRET_KEYS.match(name) else pair)
        query = "?" + "&".join(pairs)
    return f"{scheme}{userinfo or ''}{host}{path}{query or ''}{tail}"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with its URLs redacted (a source's password in an FFmpeg error too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact(message), None
        return True
