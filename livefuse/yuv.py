"""BGR images to the encoders' yuv420p, converted by OpenCV.

Every encoder livefuse feeds (VP8 for WebRTC, H.264 and others for files and pushes) takes yuv420p.
PyAV's `reformat` does that conversion with the GIL held, so an output thread converting a frame
stalls the asyncio loop (aiortc's packets) for as long as it takes; OpenCV's conversion releases the
GIL and, at 640x360, takes half the time. Both use BT.601 limited range, the encoders' default.
"""

from __future__ import annotations

import av
import cv2
import numpy as np


def yuv420p_frame(image: np.ndarray) -> av.VideoFrame:
    """A yuv420p video frame of a BGR image (HxWx3 uint8); odd sizes, which 4:2:0 cannot halve, go through PyAV."""
    height, width = image.shape[:2]
    if width % 2 or height % 2:
        return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    planes: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)  # (H * 3/2) x W: Y, then U, then V
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")
