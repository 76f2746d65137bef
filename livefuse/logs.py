"""Logging for people (short lines) or machines (--log-format json, one object per line)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from typing import Any

from livefuse.redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(fmt: str = "text", verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("livefuse: %(message)s"))
    handler.addFilter(RedactingFilter())  # no password, stream key or token of a URL reaches the log
    root = logging.getLogger("livefuse")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


class QuietLoopErrors:
    """An asyncio exception handler that reports each kind of error (its message) at most once per
    `interval_s`, with the count it held back: out of descriptors, asyncio retried accept() every second and
    wrote a traceback each time (178 MB of them in one run)."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}  # message -> (when last reported, held back since)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "error in the event loop"))
        now = time.monotonic()
        last, held = self._last.get(message, (-math.inf, 0))
        if now - last < self.interval_s:
            self._last[message] = (last, held + 1)
            return
        self._last[message] = (now, 0)
        if held:
            context = {**context, "message": f"{message} (and {held} more like it in {now - last:.0f} s)"}
        loop.default_exception_handler(context)
