"""The `enhance` stage on frames in host memory: the restorer in line, or carried between its runs.

Its device path (device.py) reads the same state through `EnhanceView`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from livefuse.engine.loader import is_model_file
from livefuse.faces.align import TEMPLATES, estimate_affine, warp_face
from livefuse.faces.carry import Carrier, Job, aligned_points, every_for, key_of
from livefuse.faces.enhancer import FaceEnhancer
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.paste import box_mask, footprint, paste_back
from livefuse.faces.regions import restore
from livefuse.faces.select import largest
from livefuse.frame import Face, Frame
from livefuse.stage import Stage, StageContext

if TYPE_CHECKING:
    from livefuse.engine import Engine

DEFAULT_TEMPLATE = "ffhq_512"


def model_template(engine: Engine, model: str, choice: str) -> str:
    """The crop template: the preset's choice, else the manifest entry's, else FFHQ 512."""
    if choice != "auto":
        return choice
    if not is_model_file(model):
        try:
            template = engine.registry.entry(model).template
        except Exception:  # noqa: BLE001 - no manifest entry: the default template
            template = None
        if template in TEMPLATES:
            return str(template)
    return DEFAULT_TEMPLATE


class EnhanceStage(Stage):
    """Restore the selected faces of every frame."""

    name = "enhance"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        session = context.model(params["model"], where="stage 'enhance': model")
        template = model_template(context.engine, params["model"], params["template"])
        self.enhancer = FaceEnhancer(session, template=template, fidelity=params["fidelity"])
        self.mask = box_mask(self.enhancer.size, params["mask_blur"])
        self.fps = context.fps
        self._engine = context.engine
        self._hands = HandOcclusion(context.engine) if params["occlusion"] == "hands" else None
        self._carrier: Carrier | None = None
        self._since = 0  # frames since the last run was asked for
        self._inline_cost: float | None = None  # seconds the in-line runs take a frame (running mean)

    def faces(self, frame: Frame) -> list[Face]:
        """The faces of this frame the restorer runs on (none at strength 0)."""
        if self.params["strength"] <= 0 or not frame.faces:
            return []
        return largest(frame.faces) if self.params["faces"] == "largest" else frame.faces

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """Each restored face's crop footprint: all `process` reads and writes."""
        size = self.enhancer.size
        faces = self.faces(frame)
        boxes = [footprint(estimate_affine(f.landmarks5, self.enhancer.template, size), size) for f in faces]
        if self._hands is not None:
            for face in faces:
                box = self._hands.search_box(face, shape)
                if box is not None:
                    boxes.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        return boxes

    def every(self) -> int:
        """The frames per restorer run now: the preset's, or auto's from the measured run time."""
        every = int(self.params["every"])
        if every:
            return every
        carried = self._carrier.cost if self._carrier is not None else None
        return every_for(carried if carried is not None else self._inline_cost, self.fps)

    def process(self, frame: Frame) -> None:
        hands = self._hands
        faces = self.faces(frame)
        if hands is None or not faces:
            self._restore(frame)
            return
        image = frame.image
        kept = [
            (region, image[region.box[1] : region.box[3], region.box[0] : region.box[2]].copy())
            for region in hands.regions(image, faces)
        ]  # before any face is restored
        self._restore(frame)
        for region, original in kept:
            restore(image, original, region)

    def _restore(self, frame: Frame) -> None:
        strength = self.params["strength"]
        every = self.every()
        if every > 1:
            self._carried(frame, every)
            return
        start = time.perf_counter()
        faces = self.faces(frame)
        for face in faces:
            restored, matrix = self.enhancer.enhance(frame.image, face.landmarks5)
            paste_back(frame.image, restored, self.mask, matrix, strength)
        if faces:  # what auto decides by: the in-line runs' time
            took = time.perf_counter() - start
            self._inline_cost = took if self._inline_cost is None else 0.7 * self._inline_cost + 0.3 * took

    def _carried(self, frame: Frame, every: int) -> None:
        """Paste each face's carried detail layer; ask for a run every `every` frames or when one is stale."""
        if self._carrier is None:
            self._carrier = Carrier(self.enhancer.restore, self.enhancer.size)
        carrier = self._carrier
        size, template, strength = self.enhancer.size, self.enhancer.template, self.params["strength"]
        crops, points, boxes = {}, {}, {}
        stale = False
        for index, face in enumerate(self.faces(frame)):
            key = key_of(face, index)
            crop, matrix = warp_face(frame.image, face.landmarks5, template, size)
            crops[key], points[key], boxes[key] = crop, aligned_points(face, matrix), np.asarray(face.box)
            layer = carrier.layer(key, points[key], boxes[key])
            if layer is None:
                stale = True
                continue
            restored = np.clip(crop.astype(np.float32) + layer.detail + 0.5, 0, 255).astype(np.uint8)
            paste_back(frame.image, restored, self.mask, matrix, strength)
        carrier.forget(set(crops))
        self._since += 1
        if crops and (stale or self._since >= every) and (carrier.idle() or stale):
            carrier.submit(Job(crops, points, boxes))
            self._since = 0

    def update(self, params: dict[str, Any]) -> None:
        if "occlusion" in params:
            self._hands = (self._hands or HandOcclusion(self._engine)) if params["occlusion"] == "hands" else None
        self.params.update(params)
        self.enhancer.fidelity = self.params["fidelity"]
        if "mask_blur" in params:
            self.mask = box_mask(self.enhancer.size, self.params["mask_blur"])

    def close(self) -> None:
        if self._carrier is not None:
            self._carrier.close()
            self._carrier = None
