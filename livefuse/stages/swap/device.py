"""The swap on a frame that stays on the device: crop, model and paste-back all there.

Each face's model input is cut from the device frame (`device.crops`) and bound to the model as it is;
the model's output goes back into the frame the same way, with the stage's own feathered mask.
The colour matching (Reinhard, in Lab) works on the two 128 px crops on the host, the only pixels
that leave the device (pixel boost: its tiles are 128-px crops cut at shifted matrices, swapped and
interleaved on the device, then matched and pasted at the boosted size); the kept parts (keep_regions)
and the boxes searched for hands (occlusion) come to the host as their regions alone.

Against the CPU path: the same bicubic warps in float instead of OpenCV's fixed point, and no rounding
of the crops to uint8 in between; within a few levels inside the face, the same everywhere else.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from livefuse.device.crops import FaceCrops, local
from livefuse.device.graphs import interleave_tiles
from livefuse.device.regions import OnRegions, RegionIO, RegionLocal
from livefuse.device.runner import DeviceGraph
from livefuse.engine.core import Engine
from livefuse.faces.align import estimate_affine
from livefuse.faces.paste import match_colour
from livefuse.faces.regions import KeepRegion, restore
from livefuse.faces.swapper import InSwapper
from livefuse.frame import Face, Frame
from livefuse.stage import DevicePath
from livefuse.transfers import TransferCounter


class SwapView(RegionLocal, Protocol):
    """What the device path reads of the swap stage (cpu.py's `SwapStage`)."""

    params: dict[str, Any]
    swapper: InSwapper
    mask: np.ndarray  # the crop-space paste mask

    def latent(self) -> np.ndarray | None: ...

    def targets(self, frame: Frame) -> list[Face]: ...

    def uses_parser(self) -> bool: ...

    def keeps(self, faces: list[Face], shape: tuple[int, ...]) -> list[KeepRegion]: ...

    def search_boxes(self, faces: list[Face], shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]: ...

    def occluders(self, image: np.ndarray, faces: list[Face]) -> list[KeepRegion]: ...


class SwapOnDevice(DevicePath):
    """inswapper on crops cut from the device frame, pasted back there; "similar" uses the region path."""

    def __init__(self, stage: SwapView, engine: Engine, counter: TransferCounter) -> None:
        self.stage = stage
        self.size, self.template = stage.swapper.size, stage.swapper.template
        self.normalise = stage.swapper.facts.scalar()  # (mean, std) from the manifest: RGB in 0..1
        self.crops = FaceCrops(engine, self.size, *self.normalise)
        self.regions = OnRegions(stage, engine, counter)
        self.kept = RegionIO(engine, counter, stage.name)
        self.engine = engine
        self._sized: dict[int, FaceCrops] = {}  # pixel boost's crops of the boosted size
        self._interleave: dict[int, DeviceGraph] = {}

    def run(self, frame: Frame) -> None:
        stage = self.stage
        # picking by similarity embeds every face, the parser parses it: their regions on the host
        if stage.params["faces"] == "similar" or stage.uses_parser():
            self.regions.run(frame)
            return
        latent = stage.latent()
        strength = stage.params["strength"]
        if latent is None or strength <= 0 or not frame.faces:
            stage.process(frame)  # warns once, touches nothing
            return
        height, width = (int(d) for d in frame.device_image.shape()[:2])
        targets = stage.targets(frame)
        keeps = self._keeps(frame, targets, (height, width))
        image = frame.device_image
        session = local(stage.swapper.session)
        boost = int(stage.params["pixel_boost"])
        crops = self.crops if boost == self.size else self._crops(boost)
        for face in targets:
            matrix = estimate_affine(face.landmarks5, self.template, boost)
            if boost == self.size:
                target = self.crops.cut(image, matrix)
                swapped: Any = session.run_device({"target": target, "source": latent})[stage.swapper.output_name]
            else:
                target, swapped = crops.cut(image, matrix), self._boosted(image, matrix, latent, boost // self.size)
            if stage.params["colour_match"]:
                swapped = self._matched(swapped, target, stage.mask)
                self.kept.counter.region(stage.name, 3 * swapped.nbytes)  # two crops down, one up
            image = crops.put(image, swapped, matrix, stage.mask * strength)
        if keeps:
            boxes = [region.box for region, _ in keeps]
            canvas = self.kept.fetch(image, boxes)
            for region, original in keeps:
                restore(canvas, original, region)
            image = self.kept.store(image, canvas, boxes)
        frame.device_image = image

    def _crops(self, size: int) -> FaceCrops:
        if size not in self._sized:
            self._sized[size] = FaceCrops(self.engine, size, *self.normalise)
        return self._sized[size]

    def _boosted(self, image: Any, matrix: np.ndarray, latent: np.ndarray, k: int) -> Any:
        """Pixel boost on the device: each of the k*k tiles is a 128-px crop of its own (the boosted crop's
        every k-th pixel from row i, column j is the crop at (M - offset) / k), swapped, then interleaved."""
        stage = self.stage
        if k not in self._interleave:
            self._interleave[k] = DeviceGraph(self.engine, interleave_tiles(k, self.size))
        feeds = {}
        for i in range(k):
            for j in range(k):
                tile = np.asarray(matrix, np.float64).copy()
                tile[:, 2] -= (j, i)
                target = self.crops.cut(image, tile / k)
                feeds[f"tile_{i * k + j}"] = local(stage.swapper.session).run_device(
                    {"target": target, "source": latent}
                )[stage.swapper.output_name]
        return self._interleave[k].run(feeds)["crop"]

    @staticmethod
    def _matched(swapped: Any, target: Any, mask: np.ndarray) -> np.ndarray:
        """The swapped crop colour-matched to the original one (both 128 px crops, on the host)."""

        def bgr(value: Any) -> np.ndarray:
            rgb = np.clip(np.asarray(value.numpy(), np.float32)[0].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255)
            return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2BGR)

        matched = match_colour(bgr(swapped), bgr(target), mask)
        rgb = cv2.cvtColor(matched, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])

    def _keeps(self, frame: Frame, targets: list[Face], shape: tuple[int, int]) -> list[tuple[KeepRegion, Any]]:
        """The kept regions and their original pixels (from the device frame, before any paste)."""
        stage = self.stage
        found = stage.keeps(targets, shape)
        searched = stage.search_boxes(targets, shape)
        if searched:  # the hands are looked for in the search boxes' pixels, brought to the host
            found += stage.occluders(self.kept.fetch(frame.device_image, searched), targets)
        if not found:
            return []
        canvas = self.kept.fetch(frame.device_image, [region.box for region in found])
        return [
            (region, canvas[region.box[1] : region.box[3], region.box[0] : region.box[2]].copy()) for region in found
        ]
