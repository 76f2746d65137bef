"""The `swap` stage: replaces faces with a source identity (inswapper_128, FaceFusion-style).

The source is a photo (preset `source_image`, or `set_source_face` from the web API); its ArcFace
embedding is projected through the swapper's emap once. Each selected target face is aligned to the
128-px ArcFace template, swapped, colour-matched to the original crop and pasted back through the
inverse affine with a feathered mask. With `mouth_mask` > 0 the person's own mouth (FaceMesh lips,
grown by the setting, feathered) is then blended back from the original frame, so speech looks real.
Until a source face is set the stage passes frames through.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from livefuse.errors import UserError
from livefuse.faces.align import estimate_affine
from livefuse.faces.detect import StillFaceFinder, read_image
from livefuse.faces.embedding import ArcFace, normalise
from livefuse.faces.models import last_initializer, load_sessions, resolve_path
from livefuse.faces.mouth import MouthRegion, mouth_region, restore_mouth
from livefuse.faces.paste import box_mask, footprint, match_colour, paste_back
from livefuse.faces.select import MODES, EmbeddingCache, largest, most_similar
from livefuse.faces.swapper import SIZE, TEMPLATE, InSwapper
from livefuse.frame import Face, Frame
from livefuse.stages.base import Param, StageContext, StageSpec, TakesSourceFace
from livefuse.stages.registry import register

log = logging.getLogger("livefuse.stages.swap")


class SwapStage(TakesSourceFace):
    """Swap the selected faces of every frame to the source identity."""

    name = "swap"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self.base = context.preset_dir
        engine = context.engine
        sessions = load_sessions(engine, {"model": params["model"], "arcface_model": params["arcface_model"]},
                                 stage="swap", base=self.base)
        self.swapper = InSwapper(sessions["model"], last_initializer(sessions["model"]))
        self.arcface = ArcFace(sessions["arcface_model"])
        self.finder = StillFaceFinder(engine)
        self.cache = EmbeddingCache()
        self._lock = threading.Lock()
        self._latent: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._mask = box_mask(SIZE, params["mask_blur"])
        self._warned: set[str] = set()
        if params["source_image"]:
            self._load_image("source_image")
        if params["reference_image"]:
            self._load_image("reference_image")
        if context.transfers is not None:
            from livefuse.device.regions import OnRegions
            from livefuse.stages.face_graphs import SwapOnDevice, runs_on_device

            on_device = runs_on_device(self.swapper.session)
            self.device = (SwapOnDevice(self, engine, context.transfers) if on_device
                           else OnRegions(self, engine, context.transfers))

    # -- identities (callable from the web API thread) ---------------------------------------------

    def _embed_still(self, image_bgr: np.ndarray, what: str) -> np.ndarray:
        face = self.finder.largest(image_bgr)
        if face is None:
            raise UserError(f"swap: no face found in the {what}; use a well-lit, frontal photo where the face "
                            f"is at least ~80 px wide")
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
        image = read_image(resolve_path(self.params[field], self.base), f"swap: {field}")
        (self.set_source_face if field == "source_image" else self.set_reference_face)(image)

    # -- per frame ---------------------------------------------------------------------------------

    def _targets(self, frame: Frame) -> list[Face]:
        faces = [f for f in frame.faces if f.landmarks5 is not None]
        mode = self.params["faces"]
        if mode == "largest":
            return largest(faces)
        if mode == "similar":
            with self._lock:
                reference = self._reference
            if reference is None:
                self._warn_once("reference", "swap: faces = \"similar\" but no reference face is set "
                                "(reference_image); nothing is swapped")
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
        with self._lock:
            latent = self._latent
        if latent is None:
            self._warn_once("source", "swap: no source face yet (set source_image, or pick one in the web UI); "
                            "frames pass through")
            return
        strength = self.params["strength"]
        if strength <= 0 or not frame.faces:
            return
        targets = self._targets(frame)
        mouths = self._mouths(frame, targets)
        for face in targets:
            swapped, crop, matrix = self.swapper.swap(frame.image, face.landmarks5, latent)
            if self.params["colour_match"]:
                swapped = match_colour(swapped, crop, self._mask)
            paste_back(frame.image, swapped, self._mask, matrix, strength)
        for region, original in mouths:
            restore_mouth(frame.image, original, region)

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """The device path's regions: every face's crop footprint (the selection reads inside them too) and,
        with mouth_mask, the mouths kept from the original frame."""
        with self._lock:
            latent = self._latent
        if latent is None or self.params["strength"] <= 0 or not frame.faces:
            return []
        faces = [f for f in frame.faces if f.landmarks5 is not None]
        boxes: list[tuple[float, float, float, float]] = [
            footprint(estimate_affine(f.landmarks5, TEMPLATE, SIZE), SIZE) for f in faces]
        if self.params["mouth_mask"] > 0:
            for face in faces:
                region = mouth_region(face.mesh, self.params["mouth_mask"], self.params["mouth_feather"],
                                      shape) if face.mesh is not None else None
                if region is not None:
                    boxes.append(tuple(float(v) for v in region.box))  # type: ignore[arg-type]
        return boxes

    def _mouths(self, frame: Frame, faces: list[Face]) -> list[tuple[MouthRegion, np.ndarray]]:
        """The mouth regions to keep and their original pixels, taken before any face is pasted."""
        amount = self.params["mouth_mask"]
        if amount <= 0 or not faces:
            return []
        found = []
        for face in faces:
            if face.mesh is None:
                self._warn_once("mesh", "swap: mouth_mask needs FaceMesh points; set landmarks = true on the "
                                "face stage (faces without a mesh keep the swapped mouth)")
                continue
            region = mouth_region(face.mesh, amount, self.params["mouth_feather"], frame.image.shape)
            if region is not None:
                x1, y1, x2, y2 = region.box
                found.append((region, frame.image[y1:y2, x1:x2].copy()))
        return found

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        if "mask_blur" in params:
            self._mask = box_mask(SIZE, self.params["mask_blur"])
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


SPEC = register(StageSpec(
    type="swap",
    summary="Replace faces with the identity of a source photo (inswapper_128; needs a `face` stage before "
            "it and pulled, non-commercial models)",
    params=(
        Param("model", str, "inswapper_128", "inswapper_128, inswapper_128_fp16, or the path of an .onnx file",
              live=False),
        Param("arcface_model", str, "w600k_r50", "face recognition model for the identities: w600k_r50 "
              "(InsightFace's, SHA-256 verified), arcface_w600k_r50 (FaceFusion's copy) or an .onnx path",
              live=False),
        Param("source_image", str, "", "photo whose face is painted on (relative to the preset); empty: set it "
              "in the web UI", kind="file"),
        Param("faces", str, "all", "which faces to swap", choices=MODES),
        Param("reference_image", str, "", "faces = \"similar\": photo of the person to swap", kind="file"),
        Param("min_similarity", float, 0.2, "faces = \"similar\": lowest cosine similarity that still counts",
              min=-1.0, max=1.0),
        Param("strength", float, 1.0, "blend of the swapped face over the original", min=0.0, max=1.0),
        Param("mask_blur", float, 0.3, "feather of the pasted crop's edge (fraction of half the crop)",
              min=0.0, max=1.0),
        Param("colour_match", bool, True, "match the swapped face's colour and lighting to the original"),
        Param("mouth_mask", float, 0.0, "keep the person's own mouth: 0 = off, up to 1 = the lips grown to twice "
              "their size (needs landmarks = true on the face stage)", min=0.0, max=1.0),
        Param("mouth_feather", float, 0.5, "mouth_mask: width of the soft edge around the kept mouth",
              min=0.0, max=1.0),
    ),
    factory=SwapStage,
    models=("inswapper_128", "inswapper_128_fp16", "w600k_r50", "arcface_w600k_r50"),
))
