"""The web server as the daemon's control plane (livefuse/daemon.py's `ControlPlane`).

The daemon asks it for the `preview` output before its pipeline is wired, then serves through it while
running: the server listens once the daemon's runtime (or, for `livefuse serve`, its engine) exists, and
stops when the daemon's exit stack unwinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from livefuse.audio.chunk import AudioFormat
from livefuse.sinks.base import Sink
from livefuse.web.auth import resolve_token
from livefuse.web.preview import Preview, PreviewSink
from livefuse.web.server import WebOptions, WebServer

if TYPE_CHECKING:
    from livefuse.daemon import Served

log = logging.getLogger("livefuse.web")


class WebControl:
    """Serves a daemon on host:port: the preview page and its stream, the API, WHIP/WHEP and /metrics."""

    def __init__(self, options: WebOptions, *, no_auth: bool = False) -> None:
        """`options.token`: the one to require (a fresh one is made when None, unless `no_auth`)."""
        self.options = dataclasses.replace(options, token=resolve_token(options.token, no_auth=no_auth))
        self.preview: Preview | None = None
        self.server: WebServer | None = None

    @property
    def token(self) -> str | None:
        return self.options.token

    def preview_sink(self, audio: AudioFormat | None) -> Sink:
        """The `preview` output, fed to the server's preview tracks (on the loop, before `serving`)."""
        self.preview = Preview(asyncio.get_running_loop(), audio=audio is not None)
        return PreviewSink(self.preview, audio)

    @contextlib.asynccontextmanager
    async def serving(self, served: Served) -> AsyncIterator[WebServer]:
        """The server listening while the block runs (OutputError when it cannot)."""
        server = self.server = WebServer(self.options, served, self.preview)
        await server.start()
        try:
            self._announce(server)
            yield server
        finally:
            await server.stop()

    def _announce(self, server: WebServer) -> None:
        what = "preview and API" if self.preview is not None else "API"
        if server.token is None:
            log.info("%s at %s (no token: --no-auth)", what, server.url)
            return
        # printed, not logged (the log redacts tokens): seen whatever the log format or level, as Jupyter does
        print(
            f"livefuse: {what} token: {server.token}  (open {server.url}?token={server.token})",
            file=sys.stderr,
            flush=True,
        )
