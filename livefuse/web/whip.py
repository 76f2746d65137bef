"""WHIP (RFC 9725) ingest and WHEP egress: sessions over the IETF WISH protocols.

- `POST /whip` with an `application/sdp` offer starts a session (a camera peer: its own pipeline
  and preset, `?preset=NAME`, `?budget_ms=N`) and answers `201 Created` with the SDP answer and
  `Location: /whip/<id>`; the same connection carries the filtered video back. `DELETE` on the
  location ends it; `PATCH` with an `application/trickle-ice-sdpfrag` adds trickled candidates
  (204). aiortc gathers all its own candidates before answering, and cannot restart ICE, so an ICE
  restart is refused with 422, as the RFC asks of a server with trickle but no restarts.
- `POST /whep/<id>` (a recvonly offer) watches a session's filtered output; `/whep/main` is the
  daemon's own stream. `DELETE /whep/<id>/<viewer>` ends the viewer. Its answer links the viewer's
  server-sent events (web/whep_events.py), which say at once when the stream ends.
- Past capacity (see sessions.py) or the peer limit, `POST /whip` answers 503 with `Retry-After`.

Authorisation is the server's: the daemon's token as `Authorization: Bearer`, required off loopback.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web
from aiortc.sdp import candidate_from_sdp
from multidict import CIMultiDict

from livefuse.errors import UserError
from livefuse.presets import Preset, load_preset, shown
from livefuse.web.api import MAX_SDP_CHARS, error_text, has_lone_surrogate, json_error, preset_name
from livefuse.web.ice_servers import IceServer
from livefuse.web.offers import MAX_CANDIDATES, BadOffer
from livefuse.web.sessions import RETRY_AFTER_S, Sessions, check_budget
from livefuse.web.signalling import MAIN, NoSuchSession, Peer, PeerLimit, Peers
from livefuse.web.whep_events import link as events_link

log = logging.getLogger("livefuse.web")

SDP = "application/sdp"
SDP_FRAGMENT = "application/trickle-ice-sdpfrag"
_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.M)


def etag(peer: Peer) -> str:
    """The entity tag of a session's ICE session: it would change on an ICE restart, which aiortc cannot do."""
    return f'"{peer.id}"'


class Whip:
    """The WHIP and WHEP handlers of one server."""

    def __init__(self, peers: Peers, sessions: Sessions, ice_servers: tuple[IceServer, ...] = ()) -> None:
        self.peers = peers
        self.sessions = sessions
        self.ice_links = [server.link() for server in ice_servers]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.options("/whip", self.options),
            web.post("/whip", self.post_whip),
            web.options("/whip/{id}", self.options_resource),
            web.patch("/whip/{id}", self.patch_whip),
            web.delete("/whip/{id}", self.delete_whip),
            web.options("/whep/{session}", self.options),
            web.post("/whep/{session}", self.post_whep),
            web.options("/whep/{session}/{id}", self.options_resource),
            web.patch("/whep/{session}/{id}", self.patch_whep),
            web.delete("/whep/{session}/{id}", self.delete_whep),
        ]

    async def options(self, request: web.Request) -> web.Response:
        """The endpoint's methods, and the ICE servers a client should use (RFC 9725 §4.6: Link headers)."""
        return web.Response(status=204, headers=self._links({"Accept-Post": SDP, "Allow": "OPTIONS, POST"}))

    async def options_resource(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"Accept-Patch": SDP_FRAGMENT, "Allow": "OPTIONS, PATCH, DELETE"})

    def _links(self, headers: dict[str, str]) -> CIMultiDict[str]:
        out = CIMultiDict(headers)
        for link in self.ice_links:
            out.add("Link", link)
        return out

    # -- ingest ----------------------------------------------------------------------------------

    async def post_whip(self, request: web.Request) -> web.Response:
        offer = await read_offer(request)
        try:
            budget = check_budget(request.query.get("budget_ms"))
        except ValueError as exc:
            raise json_error(str(exc)) from exc
        preset = await self._preset(request.query.get("preset"))
        refusal = self.sessions.refusal()
        if refusal is not None:
            log.info("whip: refused a session (%s)", refusal)
            raise json_error(refusal, web.HTTPServiceUnavailable, headers={"Retry-After": str(RETRY_AFTER_S)})
        peer = await self._answer(offer, "camera", preset=preset, budget_ms=budget)
        log.info("whip: session %s started (%s)", peer.id, peer.runtime.preset.name if peer.runtime else "?")
        return answered(peer, f"/whip/{peer.id}", self.ice_links)

    async def _preset(self, name: str | None) -> Preset | None:
        if name is None:
            return None
        checked = preset_name({"name": name})  # as PUT /api/preset checks it
        try:
            return await asyncio.get_running_loop().run_in_executor(None, load_preset, checked)
        except UserError as exc:
            raise json_error(str(exc)) from exc

    async def patch_whip(self, request: web.Request) -> web.Response:
        return await self._patch(request, self.peers.session(request.match_info["id"]))

    async def delete_whip(self, request: web.Request) -> web.Response:
        peer = self.peers.session(request.match_info["id"])
        if peer is None or not await self.peers.close(peer.id):
            raise json_error("no such session", web.HTTPNotFound)
        log.info("whip: session %s ended", peer.id)
        return web.json_response({"closed": peer.id})

    # -- egress ----------------------------------------------------------------------------------

    async def post_whep(self, request: web.Request) -> web.Response:
        offer = await read_offer(request)
        session = request.match_info["session"]
        peer = await self._answer(offer, "preview", watch=session)
        return answered(peer, f"/whep/{session}/{peer.id}", [*self.ice_links, events_link(session, peer.id)])

    def _viewer(self, request: web.Request) -> Peer | None:
        peer = self.peers.peers.get(request.match_info["id"])
        if peer is None or peer.mode != "preview" or peer.watching != request.match_info["session"]:
            return None
        return peer

    async def patch_whep(self, request: web.Request) -> web.Response:
        return await self._patch(request, self._viewer(request))

    async def delete_whep(self, request: web.Request) -> web.Response:
        peer = self._viewer(request)
        if peer is None or not await self.peers.close(peer.id):
            raise json_error("no such viewer", web.HTTPNotFound)
        return web.json_response({"closed": peer.id})

    # -- shared ----------------------------------------------------------------------------------

    async def _answer(
        self, offer: str, mode: str, *, watch: str = MAIN, preset: Preset | None = None, budget_ms: float | None = None
    ) -> Peer:
        try:
            peer, _ = await self.peers.answer(offer, "offer", mode, watch=watch, preset=preset, budget_ms=budget_ms)
        except BadOffer as exc:
            raise json_error(error_text(exc)) from exc
        except NoSuchSession as exc:
            raise json_error(
                f"no session {shown(str(exc.args[0]))} to watch; GET /api/sessions lists them", web.HTTPNotFound
            ) from exc
        except PeerLimit as exc:
            raise json_error(str(exc), web.HTTPServiceUnavailable, headers={"Retry-After": str(RETRY_AFTER_S)}) from exc
        except UserError as exc:  # the preset could not be built for this session
            raise json_error(str(exc), web.HTTPInternalServerError) from exc
        return peer

    async def _patch(self, request: web.Request, peer: Peer | None) -> web.Response:
        """Trickle ICE: the client's candidates in an SDP fragment (RFC 8840), added to the connection."""
        if peer is None:
            raise json_error("no such session", web.HTTPNotFound)
        if request.content_type != SDP_FRAGMENT:
            raise json_error(
                f"send the candidates as {SDP_FRAGMENT}, not {request.content_type or 'no type'}",
                web.HTTPUnsupportedMediaType,
            )
        match = request.headers.get("If-Match")
        if match == "*":
            raise json_error(
                "ICE restarts are not supported: start a new session (POST /whip)", web.HTTPUnprocessableEntity
            )
        if match is not None and match != etag(peer):
            raise json_error(
                f"If-Match {match[:60]!r} does not name this session's ICE session {etag(peer)}",
                web.HTTPPreconditionFailed,
            )
        if request.content_length is not None and request.content_length > MAX_SDP_CHARS:
            raise too_large("fragment", request.content_length)
        fragment = await read_text(request, "fragment")
        if len(fragment) > MAX_SDP_CHARS:
            raise too_large("fragment", len(fragment))
        remote = peer.pc.remoteDescription
        known = _UFRAG.search(remote.sdp) if remote is not None else None
        given = _UFRAG.search(fragment)
        if given and known and given.group(1) != known.group(1):
            raise json_error(
                "a new ice-ufrag is an ICE restart, which is not supported: start a new session",
                web.HTTPUnprocessableEntity,
            )
        await add_candidates(peer, fragment)
        return web.Response(status=204)  # no ETag: RFC 9725 §4.3.1 keeps it for an ICE restart's answer


async def read_offer(request: web.Request) -> str:
    """The SDP offer of a WHIP/WHEP POST, or the 4xx that says what is wrong with it."""
    if request.content_type != SDP:
        raise json_error(
            f"send the offer as {SDP}, not {request.content_type or 'no type'}", web.HTTPUnsupportedMediaType
        )
    if request.content_length is not None and request.content_length > MAX_SDP_CHARS:
        raise too_large("offer", request.content_length)
    offer = await read_text(request, "offer")
    if len(offer) > MAX_SDP_CHARS:
        raise too_large("offer", len(offer))
    if not offer.strip():
        raise json_error("empty offer: send an SDP offer in the body")
    return offer


async def read_text(request: web.Request, what: str) -> str:
    """The body as text, or a 400 naming what is wrong: bytes that are not text, or an unknown charset."""
    try:
        text = await request.text()
    except UnicodeDecodeError as exc:
        raise json_error(f"the {what} is not text in its charset ({request.charset or 'utf-8'})") from exc
    except LookupError as exc:
        raise json_error(f"the {what}'s charset {request.charset!r} is unknown: send utf-8") from exc
    if has_lone_surrogate(text):
        raise json_error(f"the {what} holds a lone surrogate, which is not Unicode text")
    return text


def too_large(what: str, size: int) -> web.HTTPException:
    return json_error(
        f"{what} too large: at most {MAX_SDP_CHARS} characters of SDP",
        web.HTTPRequestEntityTooLarge,
        max_size=MAX_SDP_CHARS,
        actual_size=size,
    )


def answered(peer: Peer, location: str, links: list[str] | None = None) -> web.Response:
    """201 Created: the answer, where the session lives, that it takes trickled candidates, the ICE servers."""
    answer = peer.pc.localDescription
    headers = CIMultiDict({"Location": location, "ETag": etag(peer), "Accept-Patch": SDP_FRAGMENT})
    for link in links or []:
        headers.add("Link", link)
    return web.Response(status=201, body=answer.sdp.encode(), content_type=SDP, headers=headers)


async def add_candidates(peer: Peer, fragment: str) -> None:
    """Each `a=candidate` line of the fragment for the media section (`a=mid`) it follows; 400 when malformed,
    or past MAX_CANDIDATES for the session (none of the fragment's is added then)."""
    count = sum(1 for line in fragment.splitlines() if line.strip().startswith("a=candidate:"))
    if peer.candidates + count > MAX_CANDIDATES:
        raise json_error(
            f"too many ICE candidates: at most {MAX_CANDIDATES} per session, {peer.candidates} "
            f"taken already and {count} more sent",
            web.HTTPUnprocessableEntity,
        )
    peer.candidates += count
    mid: str | None = None
    for raw in fragment.splitlines():
        line = raw.strip()
        if line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=candidate:"):
            try:
                candidate = candidate_from_sdp(line[len("a=candidate:") :])
            except (AssertionError, ValueError, IndexError) as exc:
                raise json_error(f"malformed candidate line {line[:80]!r}") from exc
            candidate.sdpMid = mid
            if mid is None:
                candidate.sdpMLineIndex = 0  # bundled: the first media section carries the transport
            try:
                await peer.pc.addIceCandidate(candidate)
            except ValueError as exc:
                raise json_error(f"candidate refused: {error_text(exc)}") from exc
        elif line == "a=end-of-candidates":
            await peer.pc.addIceCandidate(None)
