"""The WHEP draft's server-sent events extension: a viewer learns at once that the stream it plays ended.

Without it a third-party WHEP player notices only when ICE consent runs out (about 8 s in Chromium). The
201 of `POST /whep/<session>` carries `Link: </whep/<session>/<viewer>/events>;
rel="urn:ietf:params:whep:ext:core:server-sent-events"; events="active,inactive"`. The player POSTs the
JSON list of events it wants there (with the token, like any WHEP request) and gets `201 Created` with the
stream's `Location`, `/whep/<session>/<viewer>/events/<secret>`. It opens that with an `EventSource`,
which cannot send a token: the 128-bit secret in the path is the capability instead. The stream says
`active` at once, sends a comment every KEEPALIVE_S, and says `inactive` and ends the moment the viewer's
connection closes (its session ended, the viewer was deleted, the daemon stops). One stream per viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass

from aiohttp import web

from livefuse.web.api import json_error
from livefuse.web.cors import CORS_HEADERS
from livefuse.web.signalling import Peer, Peers

REL = "urn:ietf:params:whep:ext:core:server-sent-events"
EVENTS = ("active", "inactive")  # the draft's events this daemon sends (no layers, no viewer count)
KEEPALIVE_S = 15.0
MAX_BODY = 1024  # bytes: a JSON list of a few event names


def link(session: str, viewer: str) -> str:
    return f'</whep/{session}/{viewer}/events>; rel="{REL}"; events="{",".join(EVENTS)}"'


@dataclass
class _Stream:
    viewer: Peer
    secret: str  # the path's last part: the capability an EventSource presents instead of a token
    events: frozenset[str]
    open: bool = False  # an EventSource reads it now


class WhepEvents:
    """The event streams of one server's WHEP viewers."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers
        self.streams: dict[str, _Stream] = {}  # by viewer id

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/whep/{session}/{id}/events", self.subscribe),
            web.get("/whep/{session}/{id}/events/{secret}", self.stream),
        ]

    async def subscribe(self, request: web.Request) -> web.Response:
        """The viewer's events asked for: 201 and where to read them (the same place when asked again)."""
        viewer = self.peers.peers.get(request.match_info["id"])
        if viewer is None or viewer.mode != "preview" or viewer.watching != request.match_info["session"]:
            raise json_error("no such viewer", web.HTTPNotFound)
        body = await request.read()  # in memory already, within the app's cap (web/connections.py)
        if len(body) > MAX_BODY:
            raise json_error(
                f"at most {MAX_BODY} bytes: a JSON list of event names",
                web.HTTPRequestEntityTooLarge,
                max_size=MAX_BODY,
                actual_size=len(body),
            )
        try:
            asked = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            asked = None
        if not isinstance(asked, list) or not all(isinstance(e, str) for e in asked):
            raise json_error(f"expected a JSON list of event names, e.g. {json.dumps(list(EVENTS))}")
        events = frozenset(asked) & frozenset(EVENTS)  # the draft: events the server does not send are left out
        for gone in [v for v, stream in self.streams.items() if stream.viewer.ended.is_set() and not stream.open]:
            del self.streams[gone]  # asked for and never opened: at most one a viewer, so few
        stream = self.streams.setdefault(viewer.id, _Stream(viewer, secrets.token_urlsafe(16), events))
        stream.events = events
        location = f"/whep/{viewer.watching}/{viewer.id}/events/{stream.secret}"
        return web.Response(status=201, headers={"Location": location})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        stream = self.streams.get(request.match_info["id"])
        given = request.match_info["secret"].encode("utf-8", "surrogatepass")  # any text a path may decode to
        if stream is None or stream.open or not secrets.compare_digest(stream.secret.encode(), given):
            raise json_error("no such event stream", web.HTTPNotFound)
        stream.open = True
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", **request.get(CORS_HEADERS, {})}
        )
        try:
            await response.prepare(request)
            if "active" in stream.events and not stream.viewer.ended.is_set():
                await response.write(b"event: active\ndata: {}\n\n")
            while not stream.viewer.ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.viewer.ended.wait(), KEEPALIVE_S)
                    break
                await response.write(b": keep-alive\n\n")
            if "inactive" in stream.events:
                await response.write(b"event: inactive\ndata: {}\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the player went away
        finally:
            del self.streams[stream.viewer.id]
        return response
