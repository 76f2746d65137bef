"""A chain's steps when its frames stay on the device: the boundary at both ends, and each stage's device
path, or its host path with the copies that costs counted against it.

A stage with a device path (`Stage.device`) reads and writes `Frame.device_image`. One without gets the
frame brought to the host before its first step and sent back after its last, both counted by its
label. A frame a fault left on the host (a privacy cover) is sent up by the next device step, counted
there; the download then finds nothing to bring back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from livefuse.frame import Frame

if TYPE_CHECKING:
    from livefuse.device.boundary import DeviceBoundary
    from livefuse.stage import Stage, Step

StepFn = Callable[[Frame], None]


def upload_step(boundary: DeviceBoundary) -> StepFn:
    """The chain's first step: the captured frame to the device (into the boundary's A/B buffers)."""

    def upload(frame: Frame) -> None:
        frame.device_image = boundary.upload(frame.image)

    return upload


def download_step(boundary: DeviceBoundary) -> StepFn:
    """The chain's last step: the finished frame back to host memory, for the outputs."""

    def download(frame: Frame) -> None:
        if frame.device_image is not None:
            frame.image = boundary.download(frame.device_image)
            frame.device_image = None

    return download


def to_host(frame: Frame, boundary: DeviceBoundary, label: str) -> None:
    """Bring the frame to the host for host code (counted against `label`); nothing if it is there already."""
    if frame.device_image is not None:
        frame.image = boundary.to_host(frame.device_image, label)
        frame.device_image = None


def stage_steps(label: str, stage: Stage, boundary: DeviceBoundary) -> list[Step]:
    """The stage's steps on a device chain: its device path, or its host steps wrapped in counted copies."""
    device = stage.device
    if device is not None:
        run = device.run

        def on_device(frame: Frame) -> None:
            if frame.device_image is None:  # left on the host by a fault before: send it up again
                frame.device_image = boundary.to_device(frame.image, label)
            run(frame)

        return [("", on_device)]
    steps = stage.steps()
    out: list[Step] = []
    for i, (name, fn) in enumerate(steps):
        out.append((name, _host_step(fn, boundary, label, first=i == 0, last=i == len(steps) - 1)))
    return out


def _host_step(fn: StepFn, boundary: DeviceBoundary, label: str, first: bool, last: bool) -> StepFn:
    def step(frame: Frame) -> None:
        if first:
            to_host(frame, boundary, label)
        fn(frame)
        if last:
            frame.device_image = boundary.to_device(frame.image, label)

    return step
