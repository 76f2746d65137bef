"""A WHIP/WHEP client (aiortc): pushes a camera to a WHIP endpoint, or only watches a WHEP one, and takes
what comes back. The tests drive the daemon's sessions with it, and benchmarks/streams.py loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from fractions import Fraction

import aiohttp
import av
import cv2
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livefuse.sources.demo import astronaut_bgr
from livefuse.web.jitter import hand_on_at_marker

SENT_KEPT = 300


def astronaut_frame(size: tuple[int, int]) -> np.ndarray:
    """scikit-image's astronaut at `size` (BGR): a real face, filling most of the frame."""
    return cv2.resize(astronaut_bgr(), size, interpolation=cv2.INTER_AREA)


class PacedCamera(VideoStreamTrack):
    """A camera sending `picture(n)` as frame n at `fps`, on time: the n-th frame is due n/fps after the first."""

    def __init__(self, picture: Callable[[int], np.ndarray], fps: int = 15) -> None:
        super().__init__()
        self.picture = picture
        self.fps = fps
        self.sent = 0
        self.sent_at: dict[int, float] = {}  # frame number -> loop time it was handed to the encoder
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        number = await self.next_due()
        frame = av.VideoFrame.from_ndarray(self.picture(number), format="bgr24")
        frame.pts, frame.time_base = self.pts(number), Fraction(1, 90000)
        self.mark_sent(number)
        return frame

    async def next_due(self) -> int:
        """The next frame's number, once it is due."""
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        number = self.sent
        self.sent += 1
        wait = self._t0 + number / self.fps - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return number

    def pts(self, number: int) -> int:
        return number * 90000 // self.fps

    def mark_sent(self, number: int) -> None:
        """Note when frame `number` was handed on (the last few seconds are enough to time what comes back)."""
        self.sent_at[number] = asyncio.get_running_loop().time()
        self.sent_at.pop(number - SENT_KEPT, None)


class StillCamera(PacedCamera):
    """A camera showing one still image (so a test knows what each frame was)."""

    def __init__(self, image: np.ndarray, fps: int = 15) -> None:
        super().__init__(lambda _: image, fps)


class WhipClient:
    """POSTs its offer as application/sdp and keeps the resource; counts the frames it gets back."""

    def __init__(
        self,
        base: str,
        send: MediaStreamTrack | None = None,
        token: str | None = None,
        on_frame: Callable[[av.VideoFrame], None] | None = None,
        keep_every: int = 3,
        *,
        audio: MediaStreamTrack | None = None,
        hear: bool = False,
    ) -> None:
        """`send`: the camera to push (None: only watch). `audio`: a microphone to push too; `hear`: ask
        for sound without sending any. What sound comes back is counted in `audio_frames` and `loudest`."""
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.last: np.ndarray | None = None  # every `keep_every`-th frame received, as BGR
        self.keep_every = keep_every
        self.on_frame = on_frame  # called with each frame received (on the loop)
        self.location = ""
        self.etag = ""
        self.accept_patch = ""
        self.error = ""
        self.links: list[str] = []  # the answer's Link headers (ICE servers, WHEP's event stream)
        self.trickled = ""  # with publish(trickle=True): the candidates held back, as an SDP fragment to PATCH
        self._track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._on_track)
        self._receiver: asyncio.Task[None] | None = None
        self.audio_frames = 0
        self.loudest = 0.0  # the largest sample heard, in [0, 1]
        self._hearing: asyncio.Task[None] | None = None
        if send is not None:
            self.pc.addTransceiver(send, direction="sendrecv")
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if audio is not None:
            self.pc.addTransceiver(audio, direction="sendrecv")
        elif hear:
            self.pc.addTransceiver("audio", direction="recvonly")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._hearing = asyncio.ensure_future(self._hear(track))
            return
        hand_on_at_marker(self.pc, track)  # frames leave its buffer when whole, as in a browser
        if not self._track.done():
            self._track.set_result(track)

    async def _hear(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                self.audio_frames += 1
                samples = frame.to_ndarray()
                if samples.size:
                    self.loudest = max(self.loudest, float(np.abs(samples).max()) / 32768.0)

    @property
    def id(self) -> str:
        return self.location.rsplit("/", 1)[-1]

    async def publish(self, session: aiohttp.ClientSession, path: str = "/whip", *, trickle: bool = False) -> int:
        """The offer to `path` (a WHIP or WHEP endpoint, with its query); the HTTP status it got.

        With `trickle`, the offer goes without its candidates, as a trickling client's would, and they are
        kept in `trickled` (an application/trickle-ice-sdpfrag) for a PATCH.
        """
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        if trickle:
            lines = offer.splitlines()
            held = [ln for ln in lines if ln.startswith(("a=candidate:", "a=end-of-candidates"))]
            ice = [ln for ln in lines if ln.startswith(("a=ice-ufrag:", "a=ice-pwd:"))][:2]
            offer = "\r\n".join(ln for ln in lines if ln not in held) + "\r\n"
            self.trickled = "\r\n".join([*ice, "a=mid:0", *dict.fromkeys(held)]) + "\r\n"
        headers = {**self.headers, "Content-Type": "application/sdp"}
        async with session.post(self.base + path, data=offer, headers=headers) as response:
            if response.status != 201:
                self.error = await response.text()
                return response.status
            assert response.content_type == "application/sdp"
            answer = await response.text()
            self.location = response.headers["Location"]
            self.etag = response.headers.get("ETag", "")
            self.accept_patch = response.headers.get("Accept-Patch", "")
            self.links = response.headers.getall("Link", [])
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._receiver = asyncio.create_task(self._receive())
        return 201

    async def _receive(self) -> None:
        track = await self._track
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.frames += 1
                if self.on_frame is not None:
                    self.on_frame(frame)
                if self.keep_every and self.frames % self.keep_every == 0:
                    self.last = frame.to_ndarray(format="bgr24")

    async def wait_frames(self, count: int, timeout: float = 30.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.frames < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.frames >= count

    async def delete(self, session: aiohttp.ClientSession) -> int:
        async with session.delete(self.base + self.location, headers=self.headers) as response:
            return response.status

    async def close(self) -> None:
        for task in (self._receiver, self._hearing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.pc.close()
