"""The marker-aware video jitter buffer: a frame leaves when its last packet is in, not a frame later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from browser_fixtures import LiveDaemon, daemons_fixture, web_presets_fixture

from livefuse.web.jitter import RECEIVER_BUFFER, MarkerJitterBuffer
from livefuse.web.whip_client import StillCamera, WhipClient, astronaut_frame

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures


def packet(seq: int, timestamp: int, marker: bool) -> RtpPacket:
    p = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=timestamp)
    p._data = f"{seq};".encode()  # type: ignore[attr-defined]  # what aiortc's depayloader leaves there
    return p


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes, int]]:
    """(index of the packet that let the frame out, its data, its timestamp) for each frame handed on."""
    out = []
    for k, p in enumerate(packets):
        _, frame = buffer.add(p)
        if frame is not None:
            out.append((k, frame.data, frame.timestamp))
    return out


FRAMES = [
    packet(100, 3000, False),
    packet(101, 3000, False),
    packet(102, 3000, True),
    packet(103, 6000, False),
    packet(104, 6000, True),
    packet(105, 9000, True),
]


def test_a_frame_leaves_with_its_marked_last_packet() -> None:
    ours = feed(MarkerJitterBuffer(), FRAMES)
    assert ours == [(2, b"100;101;102;", 3000), (4, b"103;104;", 6000), (5, b"105;", 9000)]
    # aiortc's own buffer holds each frame until the next one's first packet: one frame interval later
    theirs = feed(JitterBuffer(capacity=512, is_video=True), FRAMES)
    assert theirs == [(3, b"100;101;102;", 3000), (5, b"103;104;", 6000)]


def test_frames_without_markers_or_with_gaps_are_handed_on_as_before() -> None:
    unmarked = [packet(1, 10, False), packet(2, 10, False), packet(3, 20, False), packet(4, 30, False)]
    assert feed(MarkerJitterBuffer(), unmarked) == [(2, b"1;2;", 10), (3, b"3;", 20)]
    # packet 2 (frame 10's marked last) comes late: frame 10 waits for it, then both frames go
    late = [packet(1, 10, False), packet(3, 20, True), packet(2, 10, True)]
    buffer = MarkerJitterBuffer()
    assert feed(buffer, late) == [(2, b"1;2;", 10)]
    assert feed(buffer, [packet(4, 30, True)]) == [(0, b"3;", 20)]


def test_the_daemon_and_the_client_receive_video_through_it(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()

    async def scenario() -> tuple[list[str], list[str]]:
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), 10))
            assert await client.publish(http) == 201, client.error
            assert await client.wait_frames(5)
            assert daemon.server is not None
            peers = list(daemon.server.sessions)
            daemon_side = [
                type(vars(t.receiver)[RECEIVER_BUFFER]).__name__
                for p in peers
                for t in p.pc.getTransceivers()
                if t.kind == "video"
            ]
            client_side = [
                type(vars(t.receiver)[RECEIVER_BUFFER]).__name__
                for t in client.pc.getTransceivers()
                if t.kind == "video"
            ]
            await client.delete(http)
            await client.close()
        return daemon_side, client_side

    daemon_side, client_side = asyncio.run(scenario())
    assert daemon_side == ["MarkerJitterBuffer"] and client_side == ["MarkerJitterBuffer"]
