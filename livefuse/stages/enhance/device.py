"""The restorer on a frame that stays on the device: crop, model and paste-back all there.

Each face's model input is cut from the device frame (`device.crops`) and bound to the model as it is;
the restored crop goes back into the frame the same way, with the stage's own feathered mask, so nothing
leaves the device. Carried detail (`every` > 1) and hands (occlusion) work on the faces' regions on the host.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from livefuse.device.crops import FaceCrops, local
from livefuse.device.regions import OnRegions, RegionLocal
from livefuse.engine.core import Engine
from livefuse.faces.align import estimate_affine
from livefuse.faces.enhancer import FaceEnhancer
from livefuse.frame import Face, Frame
from livefuse.stage import DevicePath
from livefuse.transfers import TransferCounter


class EnhanceView(RegionLocal, Protocol):
    """What the device path reads of the enhance stage (cpu.py's `EnhanceStage`)."""

    params: dict[str, Any]
    enhancer: FaceEnhancer
    mask: np.ndarray  # the crop-space paste mask

    def every(self) -> int: ...

    def faces(self, frame: Frame) -> list[Face]: ...


class EnhanceOnDevice(DevicePath):
    """The restorer on crops cut from the device frame, pasted back there: nothing leaves the device."""

    def __init__(self, stage: EnhanceView, engine: Engine, counter: TransferCounter) -> None:
        self.stage = stage
        self.crops = FaceCrops(engine, stage.enhancer.size, *stage.enhancer.facts.scalar())
        self.regions = OnRegions(stage, engine, counter)

    def run(self, frame: Frame) -> None:
        stage = self.stage
        if stage.every() > 1 or stage.params["occlusion"] != "off":  # carried detail, hands: regions on the host
            self.regions.run(frame)
            return
        enhancer = stage.enhancer
        image = frame.device_image
        for face in stage.faces(frame):
            matrix = estimate_affine(face.landmarks5, enhancer.template, enhancer.size)
            feeds: dict[str, Any] = {enhancer.input_name: self.crops.cut(image, matrix)}
            if enhancer.weight is not None:
                feeds["weight"] = enhancer.weight_feed()
            restored = local(enhancer.session).run_device(feeds)[enhancer.output_name]
            image = self.crops.put(image, restored, matrix, stage.mask * stage.params["strength"])
        frame.device_image = image
