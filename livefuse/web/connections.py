"""Bounds on HTTP connections: how many at once, how long one may idle, how long a body may take.

250 idle connections under `ulimit -n 256` left no descriptor to accept /healthz with (for 50 s, and
asyncio logged 178 MB of accept errors). Past `max_connections` a new connection is answered 503 at
once and closed; a connection that sends no request (or only part of its headers) is closed after
IDLE_TIMEOUT_S; a request body that takes longer than BODY_TIMEOUT_S is answered 408.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource

from aiohttp import web
from aiohttp.typedefs import Middleware

from livefuse.web.auth import Handler

IDLE_TIMEOUT_S = 10.0  # aiohttp's keep-alive timeout, which also runs from a connection's start
BODY_TIMEOUT_S = 30.0  # a 5 MB upload at 1.4 Mbit/s
MAX_CONNECTIONS = 512
_BUSY = json.dumps({"error": "too many connections: try again in a second"}).encode()
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


def connection_cap() -> int:
    """MAX_CONNECTIONS, or a quarter of the descriptors this process may open when that is fewer: the rest stay
    for models, peers' sockets and outputs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(8, min(MAX_CONNECTIONS, soft // 4))


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY_RESPONSE)
        transport.close()


class CappedSite(web.TCPSite):
    """A TCPSite that answers 503 to connections past `max_connections` instead of taking them on."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner (TCPSite.start would listen too)
        server = self._runner.server
        assert server is not None
        cap = self.max_connections

        def protocol() -> asyncio.Protocol:
            return _Busy() if len(server.connections) >= cap else server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        with contextlib.suppress(AttributeError):  # aiohttp >= 3.13 reports the port it bound
            self._bound_port = self._server.sockets[0].getsockname()[1]


def body_deadline_middleware() -> Middleware:
    """Reads a request's body (up to the app's size cap) within BODY_TIMEOUT_S, or answers 408; the
    handler then reads it from memory. Multipart uploads are streamed by their handler, under its own limit."""

    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists and not request.content_type.startswith("multipart/"):
            try:
                await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
            except TimeoutError:
                return web.json_response(
                    {"error": f"the request body took more than {BODY_TIMEOUT_S:g} s"},
                    status=408,
                    headers={"Connection": "close"},
                )
        return await handler(request)

    return read_body


async def expect_continue(request: web.Request) -> None:
    """`Expect: 100-continue` as aiohttp answers it; any other value is a 417 that quotes it safely (aiohttp's
    own answer put bytes that are not UTF-8 into its text, which then failed as a 500; it runs before any
    middleware)."""
    expect = request.headers.get("Expect", "")
    if request.version != (1, 1):
        return
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the real answer still follows
        return
    shown = expect[:60].encode("utf-8", "surrogateescape")  # the bytes as sent, shown as a bytes literal
    raise web.HTTPExpectationFailed(
        text=json.dumps({"error": f"unknown Expect: {shown!r}; only 100-continue"}), content_type="application/json"
    )
