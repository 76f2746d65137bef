"""`--executor`: `local`, or `triton://HOST[:PORT][?timeout_ms=N]` parsed into where and how long to wait."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from livefuse.errors import UserError

DEFAULT_PORT = 8001


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed `--executor` value."""

    address: str  # host:port for gRPC
    timeout_s: float  # per call; past it the call runs locally

    @property
    def url(self) -> str:
        return f"triton://{self.address}"


def parse_executor(text: str, fps: float = 30.0) -> ExecutorSpec | None:
    """`local` -> None; `triton://HOST[:PORT][?timeout_ms=N]` -> its spec; anything else a UserError.

    The default timeout is two frame intervals: a late answer is replaced by a local run while the
    frame still fits the budget.
    """
    if text == "local":
        return None
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme != "triton" or not parsed.hostname:
        raise UserError(f"--executor {text!r}: use local, or triton://HOST:PORT (Triton's gRPC port, 8001 by default)")
    try:
        port = parsed.port or DEFAULT_PORT
    except ValueError:
        raise UserError(f"--executor {text!r}: the port must be a number from 1 to 65535") from None
    query = urllib.parse.parse_qs(parsed.query)
    unknown = set(query) - {"timeout_ms"}
    if unknown:
        raise UserError(f"--executor {text!r}: unknown option {sorted(unknown)[0]!r}; the only one is timeout_ms")
    timeout_ms = 2000.0 / fps
    if "timeout_ms" in query:
        try:
            timeout_ms = float(query["timeout_ms"][-1])
        except ValueError:
            timeout_ms = float("nan")
        if not 1 <= timeout_ms <= 10000:  # NaN fails too
            raise UserError(f"--executor {text!r}: timeout_ms must be a number of milliseconds from 1 to 10000")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return ExecutorSpec(f"{host}:{port}", timeout_ms / 1000)
