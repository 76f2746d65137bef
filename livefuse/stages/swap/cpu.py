"""The `swap` stage on frames in host memory: identities, face selection, masks and kept parts, the swap.

Its device path (device.py) reads the same state through `SwapView`.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any

import numpy as np

from livefuse.engine.loader import all_models
from livefuse.errors import UserError
from livefuse.faces.align import estimate_affine
from livefuse.faces.detect import StillFaceFinder, read_image
from livefuse.faces.embedding import ArcFace, normalise
from livefuse.faces.models import last_initializer
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.parser import FaceParser, region_mask
from livefuse.faces.paste import box_mask, footprint, match_colour, paste_back
from livefuse.faces.regions import KeepRegion, keep_region, restore
from livefuse.faces.select import EmbeddingCache, largest, most_similar
from livefuse.faces.swapper import InSwapper
from livefuse.frame import Face, Frame
from livefuse.stage import StageContext, TakesSourceFace

log = logging.getLogger("livefuse.stages.swap")


class SwapStage(TakesSourceFace):
    """Swap the selected faces of every frame to the source identity."""

    name = "swap"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self.context = context
        engine = context.engine
        sessions = all_models(
            {
                field: partial(context.model, params[field], where=f"stage 'swap': {field}")
                for field in ("model", "arcface_model")
            }
        )
        self.swapper = InSwapper(sessions["model"], last_initializer(sessions["model"]))
        self.arcface = ArcFace(sessions["arcface_model"])
        self.finder = StillFaceFinder(engine)
        self.cache = EmbeddingCache()
        self._lock = threading.Lock()
        self._latent: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self.mask = self._box_mask()
        self._warned: set[str] = set()
        self._hands: HandOcclusion | None = None
        self._parser: FaceParser | None = None
        self._occlusion(params["occlusion"])
        if params["source_image"]:
            self._load_image("source_image")
        if params["reference_image"]:
            self._load_image("reference_image")

    # -- identities (callable from the web API thread) ---------------------------------------------

    def latent(self) -> np.ndarray | None:
        """The source identity the swapper paints (None until a source face is set)."""
        with self._lock:
            return self._latent

    def _embed_still(self, image_bgr: np.ndarray, what: str) -> np.ndarray:
        face = self.finder.largest(image_bgr)
        if face is None:
            raise UserError(
                f"swap: no face found in the {what}; use a well-lit, frontal photo where the face "
                f"is at least ~80 px wide"
            )
        return self.arcface.embed(image_bgr, face.landmarks5)

    def set_source_face(self, image_bgr: np.ndarray) -> None:
        """Use the largest face of this BGR image as the identity painted onto the targets."""
        latent = self.swapper.latent(self._embed_still(image_bgr, "source image"))
        with self._lock:
            self._latent = latent

    def set_reference_face(self, image_bgr: np.ndarray) -> None:
        """With faces = "similar": swap only the frame face most like the largest face of this image."""
        reference = normalise(self._embed_still(image_bgr, "reference image"))
        with self._lock:
            self._reference = reference

    def _load_image(self, field: str) -> None:
        image = read_image(self.context.file(self.params[field]), f"swap: {field}")
        (self.set_source_face if field == "source_image" else self.set_reference_face)(image)

    # -- per frame ---------------------------------------------------------------------------------

    def targets(self, frame: Frame) -> list[Face]:
        """The faces of this frame the swap paints (`faces`: all, the largest, or the one like the reference)."""
        faces = [f for f in frame.faces if f.landmarks5 is not None]
        mode = self.params["faces"]
        if mode == "largest":
            return largest(faces)
        if mode == "similar":
            with self._lock:
                reference = self._reference
            if reference is None:
                self._warn_once(
                    "reference",
                    'swap: faces = "similar" but no reference face is set (reference_image); nothing is swapped',
                )
                return []
            self.cache.tick(faces)

            def embed(face: Face) -> np.ndarray:
                return self.cache.get(face, lambda f: self.arcface.embed(frame.image, f.landmarks5))

            return most_similar(faces, reference, embed, self.params["min_similarity"])
        return faces

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def process(self, frame: Frame) -> None:
        latent = self.latent()
        if latent is None:
            self._warn_once(
                "source", "swap: no source face yet (set source_image, or pick one in the web UI); frames pass through"
            )
            return
        strength = self.params["strength"]
        if strength <= 0 or not frame.faces:
            return
        targets = self.targets(frame)
        keeps = [
            (region, frame.image[region.box[1] : region.box[3], region.box[0] : region.box[2]].copy())
            for region in self.keeps(targets, frame.image.shape) + self.occluders(frame.image, targets)
        ]  # taken before any face is pasted
        masks = [self.face_mask(frame.image, face) for face in targets]  # the parser sees no pasted face
        for face, mask in zip(targets, masks, strict=True):
            swapped, crop, matrix = self.swapper.swap(frame.image, face.landmarks5, latent, self.params["pixel_boost"])
            if self.params["colour_match"]:
                swapped = match_colour(swapped, crop, self.mask)
            paste_back(frame.image, swapped, mask, matrix, strength)
        for region, original in keeps:
            restore(frame.image, original, region)

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """The device path's regions: every face's crop footprint (the selection reads inside them too) and,
        with keep_regions, the parts kept from the original frame, and with occlusion, where it looks for them."""
        latent = self.latent()
        if latent is None or self.params["strength"] <= 0 or not frame.faces:
            return []
        faces = [f for f in frame.faces if f.landmarks5 is not None]
        size = self.swapper.size
        boxes: list[tuple[float, float, float, float]] = [
            footprint(estimate_affine(f.landmarks5, self.swapper.template, size), size) for f in faces
        ]
        boxes += [tuple(float(v) for v in region.box) for region in self.keeps(faces, shape)]  # type: ignore[misc]
        boxes += [tuple(float(v) for v in box) for box in self.search_boxes(faces, shape)]  # type: ignore[misc]
        return boxes

    def face_mask(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The crop-space paste mask of one face: the box mask, less what the parser says is not face (and
        the kept parts) when `occlusion` uses it. `image` is the frame before any face is pasted."""
        parser = self._parser
        if parser is None:
            return self.mask
        classes = parser.classes(image, face.landmarks5, self.swapper.template)
        return np.minimum(self.mask, region_mask(classes, self.params["keep_regions"], self.params["pixel_boost"]))

    def uses_parser(self) -> bool:
        return self._parser is not None

    def _occlusion(self, mode: str) -> None:
        """Load what `mode` needs before it applies: a missing parser model fails here, nothing changed."""
        hands = (self._hands or HandOcclusion(self.context.engine)) if mode in ("hands", "both") else None
        parser = self._parser
        if mode in ("parser", "both") and parser is None:
            parser = FaceParser(self.context.model(self.params["parser_model"], where="stage 'swap': parser_model"))
        self._hands, self._parser = hands, parser if mode in ("parser", "both") else None

    def occluders(self, image: np.ndarray, faces: list[Face]) -> list[KeepRegion]:
        """The regions of what is in front of these faces (`occlusion`), from the frame before the paste:
        `image` needs only the faces' `search_boxes` filled."""
        hands = self._hands
        return hands.regions(image, faces) if hands is not None and faces else []

    def search_boxes(self, faces: list[Face], shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """The frame boxes `occluders` reads."""
        hands = self._hands
        if hands is None:
            return []
        return [box for face in faces if (box := hands.search_box(face, shape)) is not None]

    def keeps(self, faces: list[Face], shape: tuple[int, ...]) -> list[KeepRegion]:
        """The regions of these faces whose original pixels are blended back after the paste."""
        parts = self.params["keep_regions"]
        if not parts or not faces or self._parser is not None:  # the parser keeps them (face_mask)
            return []
        found = []
        for face in faces:
            if face.mesh is None:
                self._warn_once(
                    "mesh",
                    "swap: keep_regions needs FaceMesh points; set landmarks = true on the "
                    "face stage (faces without a mesh keep the swapped parts)",
                )
                continue
            region = keep_region(face.mesh, parts, self.params["keep_grow"], self.params["keep_feather"], shape)
            if region is not None:
                found.append(region)
        return found

    def _box_mask(self) -> np.ndarray:
        padding = tuple(float(p) for p in self.params["mask_padding"])
        return box_mask(self.params["pixel_boost"], self.params["mask_blur"], padding)  # type: ignore[arg-type]

    def update(self, params: dict[str, Any]) -> None:
        if "occlusion" in params:
            self._occlusion(params["occlusion"])
        self.params.update(params)
        if {"mask_blur", "mask_padding", "pixel_boost"} & set(params):
            self.mask = self._box_mask()
        for field in ("source_image", "reference_image"):
            if params.get(field):
                self._load_image(field)
        if "faces" in params:
            self.cache.clear()

    def on_source_reopened(self) -> None:
        """The old scene's faces are gone: so are the embeddings cached for them."""
        self.cache.clear()

    def close(self) -> None:
        self.cache.clear()
