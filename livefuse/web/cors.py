"""CORS for WHIP and WHEP (RFC 9725 §4.5 asks WHIP endpoints to support it), for the origins the operator
allows (`--cors-origin https://app.example.com`): a page there may publish and play with a WHIP/WHEP
client. The preflight is answered before the token check (a browser sends no credentials with it); the
real request still needs the token. Other origins get no CORS headers, and the origin check refuses them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

# the request key a streamed response finds its CORS headers under
CORS_HEADERS = web.RequestKey("livefuse.cors_headers", dict[str, str])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EXPOSED = "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After"
REQUEST_HEADERS = "Authorization, Content-Type, If-Match"
MAX_AGE_S = 600


def allowed_methods(path: str) -> str | None:
    """The methods a WHIP/WHEP path takes (the endpoint or a session's resource); None: not a WHIP/WHEP path."""
    parts = path.strip("/").split("/")
    if parts[0] == "whip" and len(parts) in (1, 2):
        return "OPTIONS, POST" if len(parts) == 1 else "OPTIONS, PATCH, DELETE"
    if parts[0] == "whep" and len(parts) in (2, 3):
        return "OPTIONS, POST" if len(parts) == 2 else "OPTIONS, PATCH, DELETE"
    if parts[0] == "whep" and len(parts) == 4 and parts[3] == "events":  # a viewer's events, asked for
        return "OPTIONS, POST"
    return "OPTIONS, GET" if is_event_stream(path) else None


def is_event_stream(path: str) -> bool:
    """A WHEP viewer's event stream (web/whep_events.py): opened by an EventSource, which sends no token, so
    the secret in its path stands in for one."""
    parts = path.strip("/").split("/")
    return len(parts) == 5 and parts[0] == "whep" and parts[3] == "events"


def cors_allowed(request: web.Request, origins: frozenset[str]) -> bool:
    """True for a WHIP/WHEP request from an origin the operator allows (the origin check lets it by)."""
    return request.headers.get("Origin", "") in origins and allowed_methods(request.path) is not None


def cors_middleware(origins: frozenset[str]) -> Middleware:
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        methods = allowed_methods(request.path) if origin in origins else None
        if methods is None:
            return await handler(request)
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(
                status=204,
                headers={
                    **headers,
                    "Access-Control-Allow-Methods": methods,
                    "Access-Control-Allow-Headers": REQUEST_HEADERS,
                    "Access-Control-Max-Age": str(MAX_AGE_S),
                    "Allow": methods,
                },
            )
        headers["Access-Control-Expose-Headers"] = EXPOSED
        request[CORS_HEADERS] = headers  # a streamed response (WHEP's events) sends them before it returns
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        if not response.prepared:
            response.headers.update(headers)
        return response

    return cors
