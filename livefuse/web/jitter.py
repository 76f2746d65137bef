"""A video jitter buffer that hands a frame to the decoder as soon as its last packet is in.

aiortc's `JitterBuffer` takes a frame as complete only when a packet of the next frame arrives (a new
RTP timestamp), so every video frame a peer sends waits one frame interval, 33 ms at 30 fps, before it
is even decoded: a third of livefuse's glass-to-glass time on a WebRTC camera. Video senders (browsers,
OBS, aiortc) set the RTP marker bit on a frame's last packet (RFC 6184 and RFC 7741 for H.264 and VP8),
so the frame is whole when the packets from the buffer's start up to a marked one are all there. A
frame whose marked packet is lost is still handed on when the next frame begins, as aiortc does.

The daemon's receivers get it through `hand_on_at_marker` on their `track` event, before any media
arrives. aiortc exposes no way to choose a receiver's buffer, so that sets its private attribute;
`tests/test_jitter.py` fails if an aiortc release renames it.
"""

from __future__ import annotations

import logging

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

log = logging.getLogger("livefuse.web")

VIDEO_CAPACITY = 512  # packets, as aiortc's own video buffer
RECEIVER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc's RTCRtpReceiver.__jitter_buffer


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame leaves as soon as its marked last packet is in."""

    def __init__(self, capacity: int = VIDEO_CAPACITY) -> None:
        super().__init__(capacity=capacity, is_video=True)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None  # a gap: wait for the missing packet (or for the buffer to give up on it)
            if packets and packet.timestamp != packets[0].timestamp:
                self.remove(count)  # the next frame began: this one ended without a marker (or it was lost)
                return _frame(packets)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return _frame(packets)
        return None


def _frame(packets: list[RtpPacket]) -> JitterFrame:
    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packets[0].timestamp)  # type: ignore[attr-defined]


def hand_on_at_marker(pc: RTCPeerConnection, track: MediaStreamTrack) -> bool:
    """Give the receiver of a video `track` the marker-aware buffer; False (logged) where it cannot."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track and track.kind == "video":
            if RECEIVER_BUFFER not in vars(receiver):
                log.warning("this aiortc keeps its jitter buffer elsewhere: received video waits a frame longer")
                return False
            setattr(receiver, RECEIVER_BUFFER, MarkerJitterBuffer())
            return True
    return False
