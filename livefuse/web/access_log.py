"""Who changed what, when: one log line per request that may change state (anything but GET, HEAD and
OPTIONS), refused ones included, on the `livefuse.access` logger. The token never appears: only the
query's keys other than `token` are kept."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from livefuse.web.auth import Handler

log = logging.getLogger("livefuse.access")
READS = frozenset({"GET", "HEAD", "OPTIONS"})


def access_log_middleware() -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in READS:
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            log.info(
                "access %s %s %s %s -> %d (%s)",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                request.remote or "?",
                request.method,
                _what(request),
                status,
                _agent(request),
            )

    return record


def _what(request: web.Request) -> str:
    query = "&".join(f"{k}=..." for k in request.query if k != "token")
    return request.path[:200] + (f"?{query[:200]}" if query else "")


def _agent(request: web.Request) -> str:
    agent = request.headers.get("User-Agent", "no user agent")
    return agent[:80].encode("ascii", "replace").decode()
