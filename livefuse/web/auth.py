"""Who may use the web server: token holders, on loopback too (any local user or process could otherwise
switch a privacy preset off and watch the raw face); `--no-auth` is the explicit opt-out, loopback only.

The token is accepted as `Authorization: Bearer <token>`, as a cookie (set when
the page is opened with `?token=`, so the page's own requests carry it), or as
`?token=` on any request. `/healthz` stays open for liveness probes.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from livefuse.web.cors import cors_allowed, is_event_stream

COOKIE = "livefuse_token"
OPEN_PATHS = frozenset({"/healthz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token: str | None, *, no_auth: bool = False) -> str | None:
    """The token to require: the given one, else a fresh one; None only with `no_auth`."""
    if no_auth:
        return None
    return token or secrets.token_urlsafe(24)


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.query.get("token") or request.cookies.get(COOKIE)


def _same(given: str, token: str) -> bool:
    """Constant-time comparison; a header of undecodable bytes (kept as surrogates by aiohttp) is simply wrong."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _hostname(value: str) -> str | None:
    """The host name of a Host header or an Origin; None when it does not parse (`[::1` ...)."""
    try:
        return urlsplit(value).hostname or ""
    except ValueError:
        return None


def token_middleware(token: str) -> Middleware:
    """Rejects requests without the token (401); remembers a `?token=` in a cookie for the page."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (request.method == "GET" and is_event_stream(request.path)):
            return await handler(request)  # a WHEP event stream's secret path is its own capability
        given = _presented(request)
        if given is None or not _same(given, token):
            return web.json_response(
                {
                    "error": "a valid token is required (Authorization: Bearer TOKEN, "
                    "or open the page with ?token=TOKEN)"
                },
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        response = await handler(request)
        if request.query.get("token") and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check


def trusted_origin_middleware(bind_host: str, cors_origins: frozenset[str] = frozenset()) -> Middleware:
    """Refuses what another web site could make a visitor's browser send (403).

    No CORS headers are ever sent, so pages elsewhere cannot read responses; this
    also stops them *changing* things: a request with a foreign Origin that is not
    a plain read, and, on loopback, any Host that is not a loopback name (DNS rebinding).
    """
    loopback = is_loopback(bind_host)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = _hostname(f"//{request.host}")
        if host is None:
            return web.json_response({"error": f"malformed Host header {request.host[:80]!r}"}, status=400)
        if loopback and not is_loopback(host):
            return web.json_response({"error": f"host {request.host!r} not allowed"}, status=403)
        origin = request.headers.get("Origin")
        if origin and _hostname(origin) is None:
            return web.json_response({"error": f"malformed Origin header {origin[:80]!r}"}, status=400)
        if (
            origin
            and request.method not in ("GET", "HEAD")
            and urlsplit(origin).netloc != request.host
            and not cors_allowed(request, cors_origins)
        ):  # WHIP/WHEP from an origin --cors-origin allows
            return web.json_response({"error": f"requests from {origin} are not allowed"}, status=403)
        return await handler(request)

    return check
