"""The `swap` stage: replaces faces with a source identity (inswapper_128, FaceFusion-style).

The source is a photo (preset `source_image`, or `set_source_face` from the web API); its ArcFace
embedding is projected through the swapper's emap once. Each selected target face is aligned to the
128-px ArcFace template, swapped, colour-matched to the original crop and pasted back through the
inverse affine with a feathered mask (`mask_blur`, pulled in by `mask_padding`). The parts named in
`keep_regions` (eyes, brows, mouth, nose: FaceMesh contours grown by `keep_grow`, feathered) are then
blended back from the original frame, so the person's own mouth keeps speech looking real. With
`occlusion` = "hands", hands in front of a face (MediaPipe's hand models) keep their original pixels too;
with "parser" (or "both") a face parser limits the paint to the face's own classes, as FaceFusion does,
and takes the kept parts from its classes instead of FaceMesh.
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
from livefuse.faces.models import last_initializer, load_session, load_sessions, resolve_path
from livefuse.faces.occlusion import MODES as OCCLUSION_MODES
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.parser import FaceParser, region_mask
from livefuse.faces.paste import box_mask, footprint, match_colour, paste_back
from livefuse.faces.regions import NAMES, KeepRegion, keep_region, restore
from livefuse.faces.select import MODES, EmbeddingCache, largest, most_similar
from livefuse.faces.swapper import PIXEL_BOOSTS, SIZE, TEMPLATE, InSwapper
from livefuse.frame import Face, Frame
from livefuse.stage import Param, StageContext, StageSpec, TakesSourceFace
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
        self._mask = self._box_mask()
        self._warned: set[str] = set()
        self._engine = engine
        self._hands: HandOcclusion | None = None
        self._parser: FaceParser | None = None
        self._occlusion(params["occlusion"])
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
        keeps = [(region, frame.image[region.box[1]:region.box[3], region.box[0]:region.box[2]].copy())
                 for region in self.keeps(targets, frame.image.shape)
                 + self.occluders(frame.image, targets)]  # taken before any face is pasted
        masks = [self.face_mask(frame.image, face) for face in targets]  # the parser sees no pasted face
        for face, mask in zip(targets, masks, strict=True):
            swapped, crop, matrix = self.swapper.swap(frame.image, face.landmarks5, latent, self.params["pixel_boost"])
            if self.params["colour_match"]:
                swapped = match_colour(swapped, crop, self._mask)
            paste_back(frame.image, swapped, mask, matrix, strength)
        for region, original in keeps:
            restore(frame.image, original, region)

    def regions(self, frame: Frame, shape: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """The device path's regions: every face's crop footprint (the selection reads inside them too) and,
        with keep_regions, the parts kept from the original frame, and with occlusion, where it looks for them."""
        with self._lock:
            latent = self._latent
        if latent is None or self.params["strength"] <= 0 or not frame.faces:
            return []
        faces = [f for f in frame.faces if f.landmarks5 is not None]
        boxes: list[tuple[float, float, float, float]] = [
            footprint(estimate_affine(f.landmarks5, TEMPLATE, SIZE), SIZE) for f in faces]
        boxes += [tuple(float(v) for v in region.box) for region in self.keeps(faces, shape)]  # type: ignore[misc]
        boxes += [tuple(float(v) for v in box) for box in self.search_boxes(faces, shape)]  # type: ignore[misc]
        return boxes

    def face_mask(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The crop-space paste mask of one face: the box mask, less what the parser says is not face (and
        the kept parts) when `occlusion` uses it. `image` is the frame before any face is pasted."""
        parser = self._parser
        if parser is None:
            return self._mask
        classes = parser.classes(image, face.landmarks5, TEMPLATE)
        return np.minimum(self._mask, region_mask(classes, self.params["keep_regions"], self.params["pixel_boost"]))

    def uses_parser(self) -> bool:
        return self._parser is not None

    def _occlusion(self, mode: str) -> None:
        """Load what `mode` needs before it applies: a missing parser model fails here, nothing changed."""
        hands = (self._hands or HandOcclusion(self._engine)) if mode in ("hands", "both") else None
        parser = self._parser
        if mode in ("parser", "both") and parser is None:
            parser = FaceParser(load_session(self._engine, self.params["parser_model"], stage="swap",
                                             field="parser_model", base=self.base))
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
                self._warn_once("mesh", "swap: keep_regions needs FaceMesh points; set landmarks = true on the "
                                "face stage (faces without a mesh keep the swapped parts)")
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
            self._mask = self._box_mask()
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
        Param("pixel_boost", int, 128, "swap at 256 or 512 px: the face aligned at that size, swapped in 128-px "
              "interleaved tiles (4 or 16 model runs a face) and put back together, as FaceFusion does: more "
              "detail on large faces", choices=PIXEL_BOOSTS),
        Param("colour_match", bool, True, "match the swapped face's colour and lighting to the original"),
        Param("mask_padding", list, [0, 0, 0, 0], "pull the pasted crop's edge in: top, right, bottom, left, in "
              "percent of the crop (e.g. [10, 0, 0, 0] keeps a swapped forehead off the hair)",
              min=0.0, max=50.0, length=4),
        Param("keep_regions", list, [], "parts of the person's own face kept from the original: any of "
              "\"eyes\", \"brows\", \"mouth\", \"nose\" (needs landmarks = true on the face stage)", items=NAMES),
        Param("occlusion", str, "off", "keep what is in front of a face: \"hands\" (MediaPipe's palm detector "
              "and hand landmarker, bundled) keeps the hands' original pixels where they cover the face; "
              "\"parser\" paints only the face parser's face classes (hair, hats, hands and objects keep theirs); "
              "\"both\"", choices=OCCLUSION_MODES),
        Param("parser_model", str, "bisenet_resnet_34", "occlusion = \"parser\" or \"both\": the face parser, "
              "bisenet_resnet_34 (BiSeNet, MIT; pulled, SHA-256 pinned) or an .onnx path", live=False),
        Param("keep_grow", float, 0.2, "keep_regions: each part grown about its centre, up to 1 = twice its size",
              min=0.0, max=1.0),
        Param("keep_feather", float, 0.5, "keep_regions: width of the soft edge around each kept part",
              min=0.0, max=1.0),
    ),
    factory=SwapStage,
    models=("inswapper_128", "inswapper_128_fp16", "w600k_r50", "arcface_w600k_r50", "bisenet_resnet_34"),
))
