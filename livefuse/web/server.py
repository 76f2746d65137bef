"""The aiohttp application: the preview page, the control API, signalling, WHIP/WHEP sessions and /metrics.

`WebServer` ties what the daemon serves (livefuse/daemon.py's `Served`: its runtime, or only the engine
sessions run on) to an HTTP server on `host:port`; web/control.py starts and stops it with the daemon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from livefuse.errors import OutputError
from livefuse.stats import PipelineStats
from livefuse.web.access_log import access_log_middleware
from livefuse.web.api import MAX_UPLOAD_BYTES, Api
from livefuse.web.auth import token_middleware, trusted_origin_middleware
from livefuse.web.connections import (
    IDLE_TIMEOUT_S,
    CappedSite,
    body_deadline_middleware,
    connection_cap,
    expect_continue,
)
from livefuse.web.cors import cors_middleware
from livefuse.web.ice_servers import IceServer
from livefuse.web.loop_lag import LoopLagProbe
from livefuse.web.metrics import CONTENT_TYPE, Metrics
from livefuse.web.preview import Preview
from livefuse.web.session_api import SessionApi
from livefuse.web.session_metrics import SessionCollector
from livefuse.web.sessions import DEFAULT_BUDGET_MS, SessionRunner, Sessions
from livefuse.web.signalling import PEER_TIMEOUT_S, Peers
from livefuse.web.whep_events import WhepEvents
from livefuse.web.whip import Whip

if TYPE_CHECKING:
    from livefuse.daemon import Served

log = logging.getLogger("livefuse.web")

STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class WebOptions:
    """The server's command-line settings (`livefuse run` and `livefuse serve`)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # None: none required (--no-auth)
    max_peers: int = 16
    peer_timeout: float = PEER_TIMEOUT_S
    session_budget_ms: float = DEFAULT_BUDGET_MS
    allow_push: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()


class WebServer:
    """One daemon's web face; `start()` binds, `stop()` closes peers and the listener."""

    def __init__(self, options: WebOptions, served: Served, preview: Preview | None = None) -> None:
        self.host = options.host
        self.port = options.port
        self.token = options.token
        self.runner = SessionRunner(served)
        self.peers = Peers(preview, self.runner, options.max_peers, options.peer_timeout)
        self.peers.ice_servers = [server.rtc() for server in options.ice_servers]
        self.cors_origins = frozenset(options.cors_origins)
        self.metrics = self._metrics(served)
        self.sessions = Sessions(self.peers, options.session_budget_ms)
        self.api = Api(served.main, self.peers, self.sessions, self.runner)
        self.metrics.registry.register(SessionCollector(self.sessions, served.engine.pool))
        self.loop_lag = LoopLagProbe(self.metrics.registry)
        self.whip = Whip(self.peers, self.sessions, options.ice_servers)
        self.whep_events = WhepEvents(self.peers)
        self.session_api = SessionApi(self.sessions, self.loop_lag, options.allow_push)
        self.app = self._make_app()
        self._runner: web.AppRunner | None = None

    def _metrics(self, served: Served) -> Metrics:
        """The daemon's stream's figures; a server without one (`livefuse serve`) reports an idle stream."""
        main, engine = served.main, served.engine
        if main is None:
            idle = PipelineStats()
            idle.provider = engine.provider
            return Metrics(lambda: idle, lambda: engine, lambda: len(self.peers.peers))
        metrics = Metrics(
            lambda: main.pipeline.stats,
            lambda: engine,
            lambda: len(self.peers.peers),
            lambda: main.pipeline.chain.health_report(),
        )
        main.pipeline.frame_listeners.append(metrics.on_frame)
        return metrics

    def _make_app(self) -> web.Application:
        middlewares: list[Middleware] = [
            access_log_middleware(),
            cors_middleware(self.cors_origins),
            trusted_origin_middleware(self.host, self.cors_origins),
        ]
        if self.token:
            middlewares.append(token_middleware(self.token))
        middlewares.append(body_deadline_middleware())  # after the token: no stranger's body is waited for
        app = web.Application(middlewares=middlewares, client_max_size=MAX_UPLOAD_BYTES + 64 * 1024)
        routes = [
            *self.api.routes(),
            *self.session_api.routes(),
            *self.whip.routes(),
            *self.whep_events.routes(),
            web.get("/", self.index),
            web.get("/metrics", self.prometheus),
        ]
        app.add_routes(
            [web.RouteDef(r.method, r.path, r.handler, {**r.kwargs, "expect_handler": expect_continue}) for r in routes]
        )
        app.add_routes([web.static("/static", STATIC, expect_handler=expect_continue)])
        app.on_shutdown.append(self._on_shutdown)
        app.on_response_prepare.append(_security_headers)
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.loop_lag.stop()
        await self.sessions.cpu.stop()
        await self.sessions.watch.stop()
        await self.peers.close_all()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=IDLE_TIMEOUT_S)
        await self._runner.setup()
        site = CappedSite(self._runner, self.host, self.port, max_connections=connection_cap())
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OutputError(
                f"web server: cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                "pick another with --port or --host"
            ) from exc
        if self.port == 0 and self._runner.addresses:  # an ephemeral port (tests): report the real one
            self.port = int(self._runner.addresses[0][1])
        self.loop_lag.start()
        self.sessions.cpu.start()
        self.sessions.watch.start()

    async def stop(self) -> None:
        await self.loop_lag.stop()
        await self.sessions.cpu.stop()
        await self.sessions.watch.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No other site may frame the page (clickjacking the preset switch), nor sniff a type into a script."""
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
