"""The `preview` output: processed frames to browsers over WebRTC, with the control API beside them.

`write()` (on the output's own thread) hands the newest frame to one outgoing
track; the server relays that track to every viewer, so the stream is computed
and converted once however many watch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from livefuse.audio.chunk import AudioFormat
from livefuse.audio.feed import AudioFeed
from livefuse.frame import Frame
from livefuse.runtime import Runtime
from livefuse.sinks.base import Sink
from livefuse.web.auth import resolve_token
from livefuse.web.ice_servers import IceServer
from livefuse.web.server import WebServer
from livefuse.web.sessions import DEFAULT_BUDGET_MS
from livefuse.web.signalling import PEER_TIMEOUT_S
from livefuse.web.tracks import HeldBackAudioTrack, LatestFrameTrack

log = logging.getLogger("livefuse.web")

DEFAULT_MAX_PEERS = 16
STOP_TIMEOUT_S = 10.0


class PreviewSink(Sink):
    """Serves the preview page, signalling and API on host:port once attached to a runtime."""

    repeat_when_idle = True

    def __init__(self, size: tuple[int, int], fps: float, *, host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None, no_auth: bool = False, max_peers: int = DEFAULT_MAX_PEERS,
                 peer_timeout: float = PEER_TIMEOUT_S, audio_format: AudioFormat | None = None,
                 session_budget_ms: float = DEFAULT_BUDGET_MS, allow_push: tuple[str, ...] = (),
                 cors_origins: tuple[str, ...] = (), ice_servers: tuple[IceServer, ...] = ()) -> None:
        self.name = "preview"
        self.audio_feed: AudioFeed | None = AudioFeed(audio_format) if audio_format is not None else None
        self.audio_track: HeldBackAudioTrack | None = None  # Opus to viewers, held back by the video's delay
        self.size = size
        self.fps = fps
        self.host = host
        self.port = port
        self.token = resolve_token(token, no_auth=no_auth)
        self.max_peers = max_peers
        self.peer_timeout = peer_timeout
        self.session_budget_ms = session_budget_ms
        self.allow_push = allow_push
        self.cors_origins = cors_origins
        self.ice_servers = ice_servers
        self.track: LatestFrameTrack | None = None
        self.server: WebServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def attach(self, runtime: Runtime) -> None:
        """Start the web server on the running loop (called once the pipeline exists)."""
        self._loop = asyncio.get_running_loop()
        self.track = LatestFrameTrack(self._loop)
        self.server = WebServer(runtime, self.track, host=self.host, port=self.port, token=self.token,
                                max_peers=self.max_peers, peer_timeout=self.peer_timeout,
                                session_budget_ms=self.session_budget_ms, allow_push=self.allow_push,
                                cors_origins=self.cors_origins, ice_servers=self.ice_servers)
        if self.audio_feed is not None:
            self.audio_track = HeldBackAudioTrack(self._loop)
            self.server.peers.preview_audio = self.audio_track
        await self.server.start()
        self.port = self.server.port
        url = self.server.url
        if self.token is None:
            log.info("preview at %s (no token: --no-auth)", url)
            return
        # printed, not logged (the log redacts tokens): seen whatever the log format or level, as Jupyter does
        print(f"livefuse: preview and API token: {self.token}  (open {url}?token={self.token})", file=sys.stderr,
              flush=True)

    @property
    def url(self) -> str:
        return self.server.url if self.server else f"http://{self.host}:{self.port}/"

    def write(self, frame: Frame) -> None:
        watched = self.track is not None and self.server is not None and self.server.peers.viewers > 0
        if watched and self.track is not None:
            self.track.put(frame.image, frame.capture_ns)
        if self.audio_feed is not None:
            chunks = self.audio_feed.take_all()  # taken even unwatched: a viewer joins at the live sound
            if watched and self.audio_track is not None:
                self.audio_track.video_delay_ns = time.monotonic_ns() - frame.capture_ns
                for chunk in chunks:
                    self.audio_track.put_chunk(chunk)

    def watched(self) -> bool:
        """A browser views the stream (before the server starts there is no telling: watched)."""
        return self.server is None or self.server.peers.viewers > 0

    def close(self) -> None:
        """Stop the server (from the output's thread at the end of a run, or from the loop)."""
        server, self.server = self.server, None
        if self._loop is None or self._loop.is_closed():
            return
        if self.track is not None:
            self._loop.call_soon_threadsafe(self.track.stop)
        if self.audio_track is not None:
            self._loop.call_soon_threadsafe(self.audio_track.stop)
        if server is None:
            return
        if self._on_loop():
            self._loop.create_task(server.stop())
            return
        future = asyncio.run_coroutine_threadsafe(server.stop(), self._loop)
        try:
            future.result(STOP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - closing must not fail the run
            log.warning("preview server did not stop cleanly: %s", exc)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False
