"""The `enhance` stage: face restoration (GFPGAN 1.4, GPEN-BFR 256/512, CodeFormer) blended by strength.

Each selected face is aligned to the model's template (FFHQ 512, scaled to the model's size; GPEN-BFR
256 uses the 128-px ArcFace template as FaceFusion does), restored, and pasted back with a feathered
mask at `strength`. Runs after `swap` to sharpen inswapper's 128-px output. With `every` = N > 1 (or
auto, when a run does not fit the frame budget) the restorer runs on one frame in N off the critical
path and the frames between carry its detail layer (faces/carry.py). With `occlusion` = "hands", hands in
front of a face keep their original pixels (as swap's).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from livefuse.faces.align import TEMPLATES, estimate_affine, warp_face
from livefuse.faces.carry import Carrier, Job, aligned_points, every_for, key_of
from livefuse.faces.enhancer import FaceEnhancer
from livefuse.faces.models import is_path, load_session
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.paste import box_mask, footprint, paste_back
from livefuse.faces.regions import restore
from livefuse.faces.select import largest
from livefuse.frame import Face, Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import register

DEFAULT_TEMPLATE = "ffhq_512"


def model_template(engine: Any, model: str, choice: str) -> str:
    """The crop template: the preset's choice, else the manifest entry's, else FFHQ 512."""
    if choice != "auto":
        return choice
    if not is_path(model):
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
        session = load_session(context.engine, params["model"], stage="enhance", field="model",
                               base=context.preset_dir)
        template = model_template(context.engine, params["model"], params["template"])
        self.enhancer = FaceEnhancer(session, template=template, fidelity=params["fidelity"])
        self._mask = box_mask(self.enhancer.size, params["mask_blur"])
        self.fps = context.fps
        self._engine = context.engine
        self._hands = HandOcclusion(context.engine) if params["occlusion"] == "hands" else None
        self._carrier: Carrier | None = None
        self._since = 0  # frames since the last run was asked for
        self._inline_cost: float | None = None  # seconds the in-line runs take a frame (running mean)
        if context.transfers is not None:
            from livefuse.device.regions import OnRegions
            from livefuse.stages.face_graphs import EnhanceOnDevice, runs_on_device

            self.device = (EnhanceOnDevice(self, context.engine, context.transfers) if runs_on_device(session)
                           else OnRegions(self, context.engine, context.transfers))

    def _faces(self, frame: Frame) -> list[Face]:
        if self.params["strength"] <= 0 or not frame.faces:
            return []
        return largest(frame.faces) if self.params["faces"] == "largest" else frame.faces

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """Each restored face's crop footprint: all `process` reads and writes."""
        size = self.enhancer.size
        faces = self._faces(frame)
        boxes = [footprint(estimate_affine(f.landmarks5, self.enhancer.template, size), size) for f in faces]
        if self._hands is not None:
            boxes += [tuple(float(v) for v in box) for f in faces  # type: ignore[misc]
                      if (box := self._hands.search_box(f, shape)) is not None]
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
        faces = self._faces(frame)
        if hands is None or not faces:
            self._restore(frame)
            return
        image = frame.image
        kept = [(region, image[region.box[1]:region.box[3], region.box[0]:region.box[2]].copy())
                for region in hands.regions(image, faces)]  # before any face is restored
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
        faces = self._faces(frame)
        for face in faces:
            restored, matrix = self.enhancer.enhance(frame.image, face.landmarks5)
            paste_back(frame.image, restored, self._mask, matrix, strength)
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
        for index, face in enumerate(self._faces(frame)):
            key = key_of(face, index)
            crop, matrix = warp_face(frame.image, face.landmarks5, template, size)
            crops[key], points[key], boxes[key] = crop, aligned_points(face, matrix), np.asarray(face.box)
            layer = carrier.layer(key, points[key], boxes[key])
            if layer is None:
                stale = True
                continue
            restored = np.clip(crop.astype(np.float32) + layer.detail + 0.5, 0, 255).astype(np.uint8)
            paste_back(frame.image, restored, self._mask, matrix, strength)
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
            self._mask = box_mask(self.enhancer.size, self.params["mask_blur"])

    def close(self) -> None:
        if self._carrier is not None:
            self._carrier.close()
            self._carrier = None


SPEC = register(StageSpec(
    type="enhance",
    summary="Restore face detail (GFPGAN 1.4, GPEN-BFR 256/512 or CodeFormer; pulled models), blended by "
            "strength; needs a `face` stage before it",
    params=(
        Param("model", str, "gfpgan_1.4", "gfpgan_1.4, gpen_bfr_256, gpen_bfr_512, codeformer, or the path of "
              "an .onnx file", live=False),
        Param("strength", float, 0.8, "blend of the restored face over the original (0 = off)", min=0.0, max=1.0),
        Param("fidelity", float, 0.5, "CodeFormer only: 0 = strongest restoration, 1 = closest to the input",
              min=0.0, max=1.0),
        Param("faces", str, "all", "which faces to restore", choices=("all", "largest")),
        Param("template", str, "auto", "crop alignment: auto (the model's), ffhq_512 or arcface_128",
              choices=("auto", "ffhq_512", "arcface_128"), live=False),
        Param("mask_blur", float, 0.3, "feather of the pasted crop's edge (fraction of half the crop)",
              min=0.0, max=1.0),
        Param("occlusion", str, "off", "\"hands\": hands in front of a face keep their pixels (MediaPipe's "
              "hand models, bundled)", choices=("off", "hands")),
        Param("every", int, 0, "run the restorer on one frame in N, off the critical path, carrying its detail "
              "to the frames between (1 = every frame, in line; 0 = auto: 1 while a run fits half the frame "
              "budget, else from its measured time)", min=0, max=30),
    ),
    factory=EnhanceStage,
    models=("gfpgan_1.4", "gpen_bfr_256", "gpen_bfr_512", "codeformer"),
))
