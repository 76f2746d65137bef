"""The face stage on a frame that stays on the device: only the detectors' shrunk inputs and FaceMesh's
crops, made there (`livefuse.device.pixels`), come to the host."""

from __future__ import annotations

from typing import Protocol

from livefuse.device.pixels import DeviceReads
from livefuse.frame import Frame
from livefuse.stage import DevicePath
from livefuse.vision.pixels import FramePixels


class FaceView(Protocol):
    """What the device path asks of the face stage (cpu.py's `FaceStage`)."""

    def find_faces(self, frame: Frame, image: FramePixels) -> None: ...


class FaceOnDevice(DevicePath):
    """The face stage on a device frame: the detectors' shrunk inputs and FaceMesh's crops are made on the
    device (`livefuse.device.pixels`), and only they come to the host."""

    def __init__(self, stage: FaceView, reads: DeviceReads) -> None:
        self.stage = stage
        self.reads = reads

    def run(self, frame: Frame) -> None:
        self.stage.find_faces(frame, self.reads.pixels(frame.device_image))
