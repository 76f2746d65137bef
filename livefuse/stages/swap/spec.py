"""The `swap` stage type as presets name it: its parameters, and the stage with its device path.

On a chain whose frames stay on the device a local float32 swapper runs on crops cut there (device.py);
a remote or FP16 one, and "similar" or the parser, work on the faces' regions brought to the host.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from livefuse.device.crops import crops_or_regions
from livefuse.faces.occlusion import MODES as OCCLUSION_MODES
from livefuse.faces.regions import NAMES
from livefuse.faces.select import MODES
from livefuse.faces.swapper import PIXEL_BOOSTS
from livefuse.stage import Param, StageContext, StageSpec
from livefuse.stages.registry import register
from livefuse.stages.swap.cpu import SwapStage
from livefuse.stages.swap.device import SwapOnDevice


def former_mouth_mask(given: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Presets from before keep_regions: `mouth_mask` (0 = off, up to 1 = the lips grown to twice their size)
    is keep_regions' "mouth" with that keep_grow, and `mouth_feather` is keep_feather."""
    if "mouth_mask" not in given and "mouth_feather" not in given:
        return None
    out = dict(given)
    amount = out.pop("mouth_mask", 0.0)
    said = []
    if amount != 0:  # a value of the wrong type goes on to keep_grow's check, which names what is allowed
        regions = out.get("keep_regions", [])
        if isinstance(regions, list) and "mouth" not in regions:
            out["keep_regions"] = [*regions, "mouth"]
        out.setdefault("keep_grow", amount)
        grow = out["keep_grow"]
        said.append(f'mouth_mask = {amount!r} is read as keep_regions with "mouth" and keep_grow = {grow!r}')
    if "mouth_feather" in out:
        out.setdefault("keep_feather", out.pop("mouth_feather"))
        said.append(f"mouth_feather is read as keep_feather = {out['keep_feather']!r}")
    return out, "; ".join(said) or 'mouth_mask = 0 is off, as keep_regions without "mouth" is'


def make_swap(params: dict[str, Any], context: StageContext) -> SwapStage:
    """The swap stage, with its device path when the chain keeps its frames on the device."""
    stage = SwapStage(params, context)
    if context.transfers is not None:
        on_crops = partial(SwapOnDevice, stage)
        stage.device = crops_or_regions(stage, stage.swapper.session, context.engine, context.transfers, on_crops)
    return stage


SPEC = register(
    StageSpec(
        type="swap",
        summary="Replace faces with the identity of a source photo (inswapper_128; needs a `face` stage before "
        "it and pulled, non-commercial models)",
        params=(
            Param(
                "model",
                str,
                "inswapper_128",
                "inswapper_128, inswapper_128_fp16, or the path of an .onnx file",
                live=False,
            ),
            Param(
                "arcface_model",
                str,
                "w600k_r50",
                "face recognition model for the identities: w600k_r50 "
                "(InsightFace's, SHA-256 verified), arcface_w600k_r50 (FaceFusion's copy) or an .onnx path",
                live=False,
            ),
            Param(
                "source_image",
                str,
                "",
                "photo whose face is painted on (relative to the preset); empty: set it in the web UI",
                kind="file",
            ),
            Param("faces", str, "all", "which faces to swap", choices=MODES),
            Param("reference_image", str, "", 'faces = "similar": photo of the person to swap', kind="file"),
            Param(
                "min_similarity",
                float,
                0.2,
                'faces = "similar": lowest cosine similarity that still counts',
                min=-1.0,
                max=1.0,
            ),
            Param("strength", float, 1.0, "blend of the swapped face over the original", min=0.0, max=1.0),
            Param(
                "mask_blur",
                float,
                0.3,
                "feather of the pasted crop's edge (fraction of half the crop)",
                min=0.0,
                max=1.0,
            ),
            Param(
                "pixel_boost",
                int,
                128,
                "swap at 256 or 512 px: the face aligned at that size, swapped in 128-px "
                "interleaved tiles (4 or 16 model runs a face) and put back together, as FaceFusion does: more "
                "detail on large faces",
                choices=PIXEL_BOOSTS,
            ),
            Param("colour_match", bool, True, "match the swapped face's colour and lighting to the original"),
            Param(
                "mask_padding",
                list,
                [0, 0, 0, 0],
                "pull the pasted crop's edge in: top, right, bottom, left, in "
                "percent of the crop (e.g. [10, 0, 0, 0] keeps a swapped forehead off the hair)",
                min=0.0,
                max=50.0,
                length=4,
            ),
            Param(
                "keep_regions",
                list,
                [],
                "parts of the person's own face kept from the original: any of "
                '"eyes", "brows", "mouth", "nose" (needs landmarks = true on the face stage)',
                items=NAMES,
            ),
            Param(
                "occlusion",
                str,
                "off",
                'keep what is in front of a face: "hands" (MediaPipe\'s palm detector '
                "and hand landmarker, bundled) keeps the hands' original pixels where they cover the face; "
                '"parser" paints only the face parser\'s face classes (hair, hats, hands and objects keep theirs); '
                '"both"',
                choices=OCCLUSION_MODES,
            ),
            Param(
                "parser_model",
                str,
                "bisenet_resnet_34",
                'occlusion = "parser" or "both": the face parser, '
                "bisenet_resnet_34 (BiSeNet, MIT; pulled, SHA-256 pinned) or an .onnx path",
                live=False,
            ),
            Param(
                "keep_grow",
                float,
                0.2,
                "keep_regions: each part grown about its centre, up to 1 = twice its size",
                min=0.0,
                max=1.0,
            ),
            Param(
                "keep_feather",
                float,
                0.5,
                "keep_regions: width of the soft edge around each kept part",
                min=0.0,
                max=1.0,
            ),
        ),
        factory=make_swap,
        models=("inswapper_128", "inswapper_128_fp16", "w600k_r50", "arcface_w600k_r50", "bisenet_resnet_34"),
        upgrade=former_mouth_mask,
    )
)
