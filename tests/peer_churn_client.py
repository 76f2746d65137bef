"""A batch of real aiortc viewers in a process of its own, for the WebRTC churn test.

    python tests/peer_churn_client.py URL COUNT LEAVE[,LEAVE...]

Connects COUNT preview peers to URL at once, waits until each has received a frame, then each leaves the
way LEAVE says (cycled over the peers): `delete` (DELETE /api/peers/ID, then close), `bye` (close the
connection: RTCP BYE and a DTLS close alert, no API call) or `drop` (nothing at all: the process exits
without closing anything, as a browser tab that crashed or a laptop whose network went away). Prints one
JSON line: how many connected, the frames each got, and the seconds it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class Viewer:
    def __init__(self, base: str) -> None:
        self.base = base
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.peer = ""
        self.frames = 0
        self.first = asyncio.Event()
        self._track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if not self._track.done():
            self._track.set_result(track)

    async def connect(self, session: aiohttp.ClientSession) -> int:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer", "mode": "preview"}
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
                await track.recv()
                self.frames += 1
                self.first.set()


async def main(base: str, count: int, leaves: list[str]) -> dict[str, object]:
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        viewers = [Viewer(base) for _ in range(count)]
        statuses = await asyncio.gather(*(v.connect(session) for v in viewers))
        connected = [v for v, status in zip(viewers, statuses, strict=True) if status == 200]
        receiving = {v: asyncio.create_task(v.receive()) for v in connected}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(v.first.wait() for v in connected)), 30)
        result: dict[str, object] = {
            "statuses": statuses,
            "frames": [v.frames for v in viewers],
            "connect_s": round(time.monotonic() - start, 2),
        }
        ways = [leaves[i % len(leaves)] for i in range(count)]
        result["leaves"] = ways
        deleted = []
        for viewer, way in zip(viewers, ways, strict=True):
            if way == "delete" and viewer.peer:
                async with session.delete(f"{base}/api/peers/{viewer.peer}") as response:
                    deleted.append(response.status)
        result["deleted"] = deleted
        polite = [v for v, way in zip(viewers, ways, strict=True) if way != "drop"]
        await asyncio.gather(*(v.pc.close() for v in polite))
        for viewer in polite:
            if viewer in receiving:
                receiving[viewer].cancel()
        result["total_s"] = round(time.monotonic() - start, 2)
    return result


if __name__ == "__main__":
    url, number, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    # not asyncio.run: it would cancel the droppers' tasks and so let aiortc close their connections
    outcome = asyncio.new_event_loop().run_until_complete(main(url, number, modes))
    print(json.dumps(outcome), flush=True)
    os._exit(0)  # for the droppers: no close, no BYE, no DELETE; the process and its sockets just go away
