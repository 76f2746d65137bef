"""The virtual camera OBS, Zoom or Meet can pick, through pyvirtualcam."""

from __future__ import annotations

import sys

import pyvirtualcam

from livefuse.errors import OutputError
from livefuse.frame import Frame
from livefuse.sinks.base import Sink
from livefuse.sinks.readers import readers


def virtualcam_fix() -> str:
    """What the user must install or load for a virtual camera on this OS."""
    if sys.platform.startswith("linux"):
        return (
            "load v4l2loopback: sudo modprobe v4l2loopback exclusive_caps=1 card_label=livefuse "
            "(Debian/Ubuntu package v4l2loopback-dkms)"
        )
    if sys.platform == "darwin":
        return "install OBS Studio 26.1+ and start its Virtual Camera once"
    return "install OBS Studio 26.1+ (its virtual camera) or Unity Capture"


class VirtualCamSink(Sink):
    """Sends BGR frames to pyvirtualcam's camera (v4l2loopback, OBS or Unity Capture backend)."""

    repeat_when_idle = True

    def __init__(
        self, size: tuple[int, int], fps: float, device: str | None = None, backend: str | None = None
    ) -> None:
        try:
            self._camera = pyvirtualcam.Camera(
                width=size[0], height=size[1], fps=fps, fmt=pyvirtualcam.PixelFormat.BGR, device=device, backend=backend
            )
        except (RuntimeError, ValueError) as exc:
            raise OutputError(f"no virtual camera is usable ({exc}). To fix: {virtualcam_fix()}") from exc
        self.name = f"virtualcam:{self._camera.device}"
        self.device = self._camera.device

    def write(self, frame: Frame) -> None:
        self._camera.send(frame.image)

    def watched(self) -> bool:
        """An application has the camera open (v4l2loopback: another process holds the device), or the OS
        cannot tell (OBS's and Unity Capture's cameras), which counts as watched."""
        count = readers(self.device)
        return count is None or count > 0

    def close(self) -> None:
        self._camera.close()


def virtualcam_usable() -> bool:
    """Whether a virtual camera can be opened here (used to pick the default outputs)."""
    try:
        VirtualCamSink((64, 64), 30.0).close()
    except OutputError:
        return False
    return True
