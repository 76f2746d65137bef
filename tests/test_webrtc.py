"""WebRTC against a live daemon with real aiortc peers: one stream relayed to many, and camera filtering."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from browser_fixtures import TAG_BOX, LiveDaemon, daemons_fixture, demo_person_alpha, web_presets_fixture

from livefuse.sources.demo import DemoSource

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures


class Client:
    """A viewer or camera peer: posts its offer to /api/offer and counts the frames it gets back."""

    def __init__(self, base: str, mode: str = "preview", send: MediaStreamTrack | None = None) -> None:
        self.base = base
        self.mode = mode
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.last: np.ndarray | None = None
        self.peer = ""
        self.paused = False
        self._track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._got_track)
        if send is not None:
            self.pc.addTrack(send)
        else:
            self.pc.addTransceiver("video", direction="recvonly")

    def _got_track(self, track: MediaStreamTrack) -> None:
        if not self._track.done():
            self._track.set_result(track)

    async def connect(self, session: aiohttp.ClientSession) -> int:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer", "mode": self.mode}
        async with session.post(self.base + "/api/offer", json=offer) as response:
            if response.status != 200:
                return response.status
            answer = await response.json()
        self.peer = answer["peer"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return 200

    async def receive(self) -> None:
        track = await self._track
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames += 1
                if self.frames % 5 == 0:
                    self.last = frame.to_ndarray(format="bgr24")

    async def close(self) -> None:
        await self.pc.close()


class DemoCameraTrack(VideoStreamTrack):
    """A browser camera stand-in: DemoSource frames with no motion, at 30 fps."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.image = DemoSource(size, 30, paced=False, motion=0).read()

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def _ten_viewers(daemon: LiveDaemon, seconds: float) -> tuple[list[Client], dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        viewers = [Client(daemon.url) for _ in range(10)]
        assert await asyncio.gather(*(v.connect(session) for v in viewers)) == [200] * 10
        extra = Client(daemon.url)
        assert await extra.connect(session) == 503  # over --max-peers
        await extra.close()
        tasks = [asyncio.create_task(v.receive()) for v in viewers]
        deadline = time.monotonic() + 20
        while min(v.frames for v in viewers) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        start = [v.frames for v in viewers]
        await asyncio.sleep(seconds / 2)
        await viewers[0].close()  # one viewer leaves halfway
        await asyncio.sleep(seconds / 2)
        counts = [v.frames - s for v, s in zip(viewers, start, strict=True)]
        async with session.get(daemon.url + "/api/status") as response:
            status = await response.json()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(v.close() for v in viewers[1:]))
    return viewers, {"counts": counts, "status": status}


@pytest.mark.slow
def test_ten_viewers_share_one_pipeline(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    fps, seconds = 15.0, 4.0
    daemon = daemons("tag-a", size=(160, 120), fps=fps, max_peers=10).start()
    viewers, result = asyncio.run(_ten_viewers(daemon, seconds))
    daemon.stop()
    assert daemon.pipeline is not None and daemon.control is not None and daemon.control.preview is not None
    stats = daemon.pipeline.stats
    counts = result["counts"]
    # every remaining viewer got the stream at (nearly) the source's rate, the one that left did not stop them
    assert min(counts[1:]) >= 0.6 * fps * seconds, counts
    assert counts[0] < min(counts[1:]), counts
    assert len(result["status"]["peers"]) == 9
    # the pipeline ran once: every captured frame was processed or dropped, once; never once per viewer
    assert stats.frames_processed == stats.frames_in - stats.dropped
    assert stats.stages["test_tag"].count == stats.frames_processed
    assert daemon.control.preview.video.sent <= stats.outputs["preview"].frames + 5
    duration = stats.snapshot()["duration_s"]
    assert isinstance(duration, float)
    assert sum(counts) > 5 * stats.frames_processed * seconds / (duration + 1)
    # and what the viewers saw is the processed stream (the tag square is drawn by the stage)
    assert viewers[5].last is not None
    square = viewers[5].last[4 : TAG_BOX - 4, 4 : TAG_BOX - 4]
    assert abs(float(square.mean()) - 40) < 12


async def _camera_round_trip(daemon: LiveDaemon, seconds: float) -> Client:
    async with aiohttp.ClientSession() as session:
        client = Client(daemon.url, mode="camera", send=DemoCameraTrack(daemon.size))
        assert await client.connect(session) == 200
        task = asyncio.create_task(client.receive())
        deadline = time.monotonic() + 20
        while client.frames == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        start = client.frames
        await asyncio.sleep(seconds)
        client.frames -= start
        async with session.get(daemon.url + "/api/status") as response:
            peers = (await response.json())["peers"]
        assert [p["mode"] for p in peers] == ["camera"] and peers[0]["preset"] == "backdrop"
        async with session.delete(f"{daemon.url}/api/peers/{client.peer}") as response:
            assert response.status == 200
        task.cancel()
        await client.close()
    return client


@pytest.mark.slow
def test_camera_peer_gets_its_own_frames_filtered(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    size, seconds = (160, 120), 3.0
    daemon = daemons("backdrop", size=size, fps=15.0).start()
    assert daemon.pipeline is not None
    processed_before = daemon.pipeline.stats.frames_processed
    client = asyncio.run(_camera_round_trip(daemon, seconds))
    assert client.frames >= 0.6 * 30 * seconds, client.frames  # the camera's rate, not the daemon's 15 fps
    assert client.last is not None
    alpha = demo_person_alpha(size)
    original = DemoSource(size, 30, paced=False, motion=0).read().astype(np.float32)
    diff = np.abs(client.last.astype(np.float32) - original).mean(axis=2)
    background = diff[alpha < 0.01]
    person = diff[alpha > 0.99]
    grey = client.last[alpha < 0.01].astype(np.float32)
    assert abs(float(grey.mean()) - 128) < 10 and float(background.mean()) > 25
    assert float(person.mean()) < 12
    assert daemon.pipeline.stats.frames_processed > processed_before  # the daemon's own stream carried on
    server = daemon.server
    assert server is not None
    assert wait_until(lambda: not server.peers.peers)


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())
