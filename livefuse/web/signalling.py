"""WebRTC peers: SDP offers answered, ICE candidates taken, connections watched and closed.

- "preview": the peer receives the daemon's processed stream (or a session's). It is produced once
  and relayed (aiortc's MediaRelay, unbuffered: each viewer gets the newest frame),
  so a viewer that leaves or stalls affects neither the others nor the pipeline.
- "camera": the peer sends its camera and gets the filtered result back on the same connection: a
  session, whose pipeline web/sessions.py starts and stops. Its output is relayed like the daemon's
  stream, so WHEP viewers can watch it.

A peer that vanishes without a goodbye (a crashed tab, a lost network) is noticed
when its receiver reports stop (`peer_timeout`, default 15 s; ICE consent would
take 30 s) and closed like one that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from livefuse.memory import release_freed_memory
from livefuse.presets import Preset
from livefuse.runtime import Runtime
from livefuse.web.encoders import encode_quietly
from livefuse.web.jitter import hand_on_at_marker
from livefuse.web.offers import BadOffer, parse_offer
from livefuse.web.preview import Preview
from livefuse.web.tracks import HeldBackAudioTrack, LatestFrameTrack

log = logging.getLogger("livefuse.web")

MODES = ("preview", "camera")
PEER_TIMEOUT_S = 15.0  # a peer that sent no RTCP report for this long has gone: it is closed
TRIM_DELAY_S = 1.0  # memory freed by peers that left is given back this long after the first of them


class PeerLimit(Exception):
    """Too many peers are connected."""


class NoSuchSession(KeyError):
    """A viewer asked to watch a session that is not there."""


MAIN = "main"  # what a viewer watches when it names no session: the daemon's own stream


def _collect_and_release() -> None:
    """Free what peers that left hold in reference cycles (aiortc's objects are full of them) now rather than at
    some later full collection, then give the freed memory back to the system."""
    gc.collect()
    release_freed_memory()


@dataclass
class Peer:
    id: str
    mode: str
    pc: RTCPeerConnection
    incoming: MediaStreamTrack | None = None
    outgoing: LatestFrameTrack | None = None
    outgoing_audio: HeldBackAudioTrack | None = None  # camera mode: the browser's microphone, sent back in sync
    audio_task: asyncio.Task[None] | None = None
    runtime: Runtime | None = None  # camera mode: its session's pipeline and controls (web/sessions.py)
    closing: bool = False
    viewing: bool = False  # counted in Preview.viewers
    watchdog: asyncio.Task[None] | None = None
    watching: str = MAIN  # preview mode: the session it views (MAIN: the daemon's stream)
    budget_ms: float | None = None  # camera mode: its glass-to-glass budget (None: the daemon's default)
    started: float = field(default_factory=time.monotonic)  # when it was answered (admission weighs its CPU)
    candidates: int = 0  # remote ICE candidates taken, from the offer and trickled (at most MAX_CANDIDATES)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set as it starts closing (WHEP's events)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"id": self.id, "mode": self.mode, "state": self.pc.connectionState}
        if self.mode == "preview":
            info["watching"] = self.watching
        if self.runtime is not None:
            stats = self.runtime.pipeline.stats
            info.update(
                preset=self.runtime.preset.name,
                fps=round(stats.fps, 2),
                dropped=stats.dropped,
                frames_in=stats.frames_in,
                frames_out=stats.frames_out,
                latency_ms=stats.latency.summary(),
            )
        return info


class SessionPipelines(Protocol):
    """Runs a camera peer's pipeline between its two tracks (web/sessions.py): started before the answer
    goes out, stopped when the peer closes."""

    async def start(self, peer: Peer, preset: Preset | None) -> None: ...

    async def stop(self, peer: Peer) -> None: ...


class Peers:
    """Answers offers and owns every peer connection, up to `max_peers` at once."""

    def __init__(
        self, preview: Preview | None, pipelines: SessionPipelines, max_peers: int, peer_timeout: float = PEER_TIMEOUT_S
    ) -> None:
        self.preview = preview  # the daemon's own stream (None: `livefuse serve`, sessions only)
        self.pipelines = pipelines
        self.max_peers = max_peers
        self.peer_timeout = peer_timeout
        self.relay = MediaRelay()
        self.peers: dict[str, Peer] = {}
        self.ice_servers: list[RTCIceServer] = []  # --ice-server: STUN/TURN for the daemon's own candidates
        self._trim: asyncio.TimerHandle | None = None

    def session(self, session_id: str) -> Peer | None:
        """The camera peer (session) with this id, if it is there and not closing."""
        peer = self.peers.get(session_id)
        return peer if peer is not None and peer.mode == "camera" and not peer.closing else None

    async def answer(
        self,
        sdp: str,
        kind: str,
        mode: str,
        *,
        watch: str = MAIN,
        preset: Preset | None = None,
        budget_ms: float | None = None,
    ) -> tuple[Peer, RTCSessionDescription]:
        """Accept an offer; returns the peer and the answer. Raises BadOffer, PeerLimit, NoSuchSession.

        A preview peer watches `watch` (a session's id, or MAIN); a camera peer runs `preset` (default: a copy
        of the daemon's, with its live parameter values) within `budget_ms`.
        """
        if mode not in MODES:
            raise BadOffer(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if kind != "offer":
            raise BadOffer(f"expected an SDP offer, got type {kind!r}")
        offer = await asyncio.get_running_loop().run_in_executor(None, parse_offer, sdp)
        watched = self.session(watch) if watch != MAIN else None
        missing = self.preview is None if watch == MAIN else watched is None or watched.outgoing is None
        if mode == "preview" and missing:
            raise NoSuchSession(watch)
        if len(self.peers) >= self.max_peers:
            raise PeerLimit(f"{len(self.peers)} peers are connected, the limit (--max-peers) is {self.max_peers}")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.ice_servers)))
        peer = Peer(secrets.token_hex(8), mode, pc, watching=watch, budget_ms=budget_ms, candidates=offer.candidates)
        self.peers[peer.id] = peer
        self._watch(peer)
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if mode == "preview":
                self._send(peer, watched)
            elif peer.incoming is None:
                raise BadOffer("camera mode needs a video track in the offer")
            else:
                await self.pipelines.start(peer, preset)
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
            encode_quietly(peer.pc)  # VP8 out without libvpx's denoiser: the picture is filtered already
        except Exception as exc:
            await self.close(peer.id)
            # AttributeError: aiortc reading a part the offer lacks (a=setup, a=fingerprint)
            if isinstance(exc, BadOffer) or not isinstance(
                exc, (ValueError, KeyError, IndexError, TypeError, AttributeError)
            ):
                raise
            raise BadOffer(f"malformed offer: {exc}") from exc
        peer.watchdog = asyncio.create_task(self._watch_liveness(peer))
        log.info("webrtc %s peer %s connected (%d peers)", mode, peer.id, len(self.peers))
        return peer, peer.pc.localDescription

    def _send(self, peer: Peer, watched: Peer | None) -> None:
        """A viewer: the watched session's tracks, else the daemon's own stream, relayed."""
        if watched is not None:
            video, audio = watched.outgoing, watched.outgoing_audio
        else:
            assert self.preview is not None
            video, audio = self.preview.video, self.preview.audio
            peer.viewing = True
            self.preview.viewers += 1
        assert video is not None
        peer.pc.addTrack(self.relay.subscribe(video, buffered=False))
        if audio is not None:  # buffered: the relay must pass every audio frame on, not only the newest
            peer.pc.addTrack(self.relay.subscribe(audio, buffered=True))

    async def _watch_liveness(self, peer: Peer) -> None:
        """Close the peer once nothing came back from it for `peer_timeout` seconds.

        A live receiver sends an RTCP report about every second for the video it gets (and a camera peer
        sends video): each new one, seen in the connection's stats, shows it is still there. One that
        never completes its connection is closed the same way.
        """
        heard_at, last = time.monotonic(), None
        while not peer.closing:
            await asyncio.sleep(min(1.0, self.peer_timeout / 4))
            try:
                report = await peer.pc.getStats()
            except Exception:  # noqa: BLE001 - the connection is being torn down: close() finishes it
                break
            signs = []
            for stats in report.values():
                if isinstance(stats, RTCRemoteInboundRtpStreamStats):  # from the peer's last receiver report
                    signs.append((stats.id, str(stats.timestamp)))
                elif isinstance(stats, RTCInboundRtpStreamStats):  # what its camera sent
                    signs.append((stats.id, str(stats.packetsReceived)))
            signs.sort()
            if signs != last:
                heard_at, last = time.monotonic(), signs
            elif time.monotonic() - heard_at > self.peer_timeout:
                log.info("webrtc peer %s sent nothing for %.0f s: it has gone; closing it", peer.id, self.peer_timeout)
                await self.close(peer.id)
                return

    def _watch(self, peer: Peer) -> None:
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and peer.mode == "camera" and peer.incoming is None:
                hand_on_at_marker(pc, track)  # each frame decoded when whole, not a frame later
                peer.incoming = track
                peer.outgoing = LatestFrameTrack(asyncio.get_running_loop())
                pc.addTrack(self.relay.subscribe(peer.outgoing, buffered=False))  # WHEP viewers may join it
            elif track.kind == "audio" and peer.mode == "camera" and peer.outgoing_audio is None:
                peer.outgoing_audio = HeldBackAudioTrack(asyncio.get_running_loop())
                pc.addTrack(self.relay.subscribe(peer.outgoing_audio, buffered=True))  # WHEP viewers hear it too
                peer.audio_task = asyncio.create_task(_return_audio(track, peer.outgoing_audio))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(peer.id)

    async def close(self, peer_id: str) -> bool:
        """Stop a peer's pipeline and connection; False when there is no such peer."""
        peer = self.peers.get(peer_id)
        if peer is None or peer.closing:
            return peer is not None
        peer.closing = True
        peer.ended.set()
        if peer.watchdog is not None and peer.watchdog is not asyncio.current_task():
            peer.watchdog.cancel()
        if peer.mode == "camera":  # a session ending ends its viewers
            viewers = [p.id for p in self.peers.values() if p.mode == "preview" and p.watching == peer.id]
            await asyncio.gather(*(self.close(v) for v in viewers), return_exceptions=True)
        if peer.mode == "camera":
            await self.pipelines.stop(peer)
        if peer.outgoing is not None:
            peer.outgoing.stop()
        if peer.outgoing_audio is not None:
            peer.outgoing_audio.stop()
        if peer.audio_task is not None:
            peer.audio_task.cancel()
        await peer.pc.close()
        self.peers.pop(peer_id, None)
        if peer.viewing and self.preview is not None:
            self.preview.viewers -= 1
        log.info("webrtc peer %s left (%d peers)", peer.id, len(self.peers))
        if self._trim is None:  # once for peers leaving together
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._release_memory)
        return True

    def _release_memory(self) -> None:
        self._trim = None
        with contextlib.suppress(RuntimeError):  # the daemon is shutting down: nothing to give back then
            asyncio.get_running_loop().run_in_executor(None, _collect_and_release)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(pid) for pid in list(self.peers)), return_exceptions=True)


async def _return_audio(incoming: MediaStreamTrack, outgoing: HeldBackAudioTrack) -> None:
    """Camera mode: the browser's microphone back to it beside the filtered video, held back by that
    video's delay (the page keeps it muted: it is for recording the call, not for hearing oneself)."""
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await incoming.recv()
            assert isinstance(frame, av.AudioFrame)  # an audio track's
            outgoing.put(frame, time.monotonic_ns() - frame.samples * 1_000_000_000 // frame.sample_rate)
