"""The naive loop everyone writes first: read a frame, run every stage, write it, repeat, on one thread.

It reads the same released-in-real-time camera as the pipelined mode, so while it is busy the
camera moves on: frames released meanwhile are never read (dropped), and every latency counts
from the frame's release. The stages run through `Chain.run` (in ticket order, on this thread
only), so both modes execute exactly the same filter code and time it the same way.
"""

from __future__ import annotations

import time

from livefuse.bench.camera import ReleasedCamera
from livefuse.chain import Chain
from livefuse.frame import Frame
from livefuse.sinks.base import Sink


def run_sequential(camera: ReleasedCamera, chain: Chain, sink: Sink) -> int:
    """Run until the camera ends; returns the number of frames written."""
    seq = 0
    while True:
        image = camera.read()
        if image is None:
            return seq
        frame = Frame(seq=seq, capture_ns=time.monotonic_ns(), image=image)
        chain.run(frame, chain.admit())
        sink.write(frame)
        seq += 1
