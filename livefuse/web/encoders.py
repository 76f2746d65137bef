"""The daemon's VP8 encoder: aiortc's, less libvpx's denoiser.

aiortc opens libvpx with `noise-sensitivity 4`, a temporal denoiser meant for a raw sensor's noise. What
the daemon sends is already filtered (a blurred or replaced background, smoothed skin), and at 640x360
the denoiser is 40 % of the encode: 2.4 ms a frame with it, 1.4 ms without, on one core of this machine
(`benchmarks/results/2026-12-03-streams.md`). Every other setting is aiortc's realtime CBR configuration.

aiortc exposes no way to choose a sender's encoder. It creates one on the first frame unless one is set,
so `encode_quietly` sets its private attribute once negotiation has picked VP8;
`tests/test_encoders.py` fails if an aiortc release renames it.
"""

from __future__ import annotations

import logging

import av
from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import Vp8Encoder, number_of_threads
from av.frame import Frame

from livefuse.threads import usable_cores

log = logging.getLogger("livefuse.web")

SENDER_ENCODER = "_RTCRtpSender__encoder"  # aiortc's RTCRtpSender.__encoder
BITRATE_SLACK = 0.1  # aiortc reopens its encoder when the target bitrate moves by more than this


class QuietVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder, opened with the denoiser off; aiortc's own `encode` does the rest."""

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        codec = self.codec
        rate = codec.bit_rate if codec is not None else None
        if (
            codec is None
            or not rate
            or (frame.width, frame.height) != (codec.width, codec.height)
            or abs(self.target_bitrate - rate) / rate > BITRATE_SLACK
        ):
            self.codec = self._open(frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    def _open(self, width: int, height: int) -> av.video.codeccontext.VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.video.codeccontext.VideoCodecContext)  # a video encoder's
        bitrate = self.target_bitrate
        codec.width, codec.height, codec.bit_rate, codec.pix_fmt = width, height, bitrate, "yuv420p"
        codec.gop_size = 3000  # keyframes when a receiver asks for one (PLI), not by count
        codec.qmin, codec.qmax = 2, 56
        codec.options = {
            "deadline": "realtime",
            "cpu-used": "-6",
            "lag-in-frames": "0",
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),  # CBR, a 1 s buffer
            "undershoot-pct": "100",
            "overshoot-pct": "15",
            "static-thresh": "1",
            "partitions": "0",
            "noise-sensitivity": "0",  # the one change: no temporal denoiser
        }
        codec.thread_count = number_of_threads(width * height, usable_cores())
        return codec


def encode_quietly(pc: RTCPeerConnection) -> None:
    """Give each negotiated VP8 video sender of `pc` a `QuietVp8Encoder` (call after setLocalDescription);
    logged, and left to aiortc's encoder, where this aiortc keeps its encoder elsewhere."""
    for transceiver in pc.getTransceivers():
        sender = transceiver.sender
        codecs = transceiver._codecs  # the negotiated ones, first is what the sender uses
        if transceiver.kind != "video" or sender.track is None or not codecs:
            continue
        if codecs[0].mimeType.lower() != "video/vp8":
            continue
        if SENDER_ENCODER not in vars(sender):
            log.warning("this aiortc keeps its encoder elsewhere: VP8 goes out with aiortc's denoiser")
            return
        if vars(sender)[SENDER_ENCODER] is None:
            setattr(sender, SENDER_ENCODER, QuietVp8Encoder())
