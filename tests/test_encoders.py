"""The daemon's VP8 encoder: aiortc's settings less the denoiser, set on every VP8 sender it negotiates."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import numpy as np
from aiortc.codecs.vpx import Vp8Decoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from av.video.codeccontext import VideoCodecContext
from browser_fixtures import LiveDaemon, daemons_fixture, web_presets_fixture

from livefuse.web.encoders import SENDER_ENCODER, QuietVp8Encoder
from livefuse.web.whip_client import StillCamera, WhipClient, astronaut_frame
from livefuse.yuv import yuv420p_frame

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures


def test_quiet_vp8_frames_decode_to_the_picture_and_follow_the_bitrate() -> None:
    class Counted(QuietVp8Encoder):
        opened: list[dict[str, str]] = []  # noqa: RUF012 - the test's record

        def _open(self, width: int, height: int) -> VideoCodecContext:
            codec = super()._open(width, height)
            self.opened.append(dict(codec.options))  # libvpx takes them when it opens, on the first frame
            return codec

    image = astronaut_frame((320, 240))
    encoder, decoder = Counted(), Vp8Decoder()
    decoded = []
    for n in range(6):
        frame = yuv420p_frame(image)
        frame.pts, frame.time_base = n * 3000, Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=n == 0)
        # one partition: the payloads, less their descriptors, are the frame (as aiortc's depayloader does)
        data = b"".join(vp8_depayload(p) for p in payloads)
        decoded += decoder.decode(JitterFrame(data=data, timestamp=timestamp))
    assert len(decoded) == 6 and [o["noise-sensitivity"] for o in encoder.opened] == ["0"]
    last = decoded[-1]
    assert isinstance(last, av.VideoFrame)  # aiortc's decoder types its frames plain Frames
    picture = last.to_ndarray(format="bgr24").astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((picture - image) ** 2))
    assert psnr > 28, psnr
    opened = encoder.codec
    encoder.target_bitrate = encoder.target_bitrate * 2  # as a receiver's bandwidth estimate raises it
    frame = yuv420p_frame(image)
    frame.pts, frame.time_base = 6 * 3000, Fraction(1, 90000)
    encoder.encode(frame)
    assert encoder.codec is not None
    assert encoder.codec is not opened and encoder.codec.bit_rate == encoder.target_bitrate
    assert [o["noise-sensitivity"] for o in encoder.opened] == ["0", "0"]


def test_the_daemon_sends_vp8_through_it(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), 10))
            assert await client.publish(http) == 201, client.error
            assert await client.wait_frames(5)  # the filtered stream came back, so it encoded and decoded
            assert daemon.server is not None
            encoders = [
                type(vars(t.sender)[SENDER_ENCODER]).__name__
                for p in daemon.server.sessions
                for t in p.pc.getTransceivers()
                if t.kind == "video"
            ]
            await client.delete(http)
            await client.close()
        return encoders

    assert asyncio.run(scenario()) == ["QuietVp8Encoder"]
