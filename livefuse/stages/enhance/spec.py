"""The `enhance` stage type as presets name it: its parameters, and the stage with its device path.

On a chain whose frames stay on the device a local float32 restorer runs on crops cut there (device.py);
a remote or FP16 one works on the faces' regions brought to the host.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from livefuse.device.crops import crops_or_regions
from livefuse.stage import Param, StageContext, StageSpec
from livefuse.stages.enhance.cpu import EnhanceStage
from livefuse.stages.enhance.device import EnhanceOnDevice
from livefuse.stages.registry import register


def make_enhance(params: dict[str, Any], context: StageContext) -> EnhanceStage:
    """The enhance stage, with its device path when the chain keeps its frames on the device."""
    stage = EnhanceStage(params, context)
    if context.transfers is not None:
        on_crops = partial(EnhanceOnDevice, stage)
        stage.device = crops_or_regions(stage, stage.enhancer.session, context.engine, context.transfers, on_crops)
    return stage


SPEC = register(
    StageSpec(
        type="enhance",
        summary="Restore face detail (GFPGAN 1.4, GPEN-BFR 256/512 or CodeFormer; pulled models), blended by "
        "strength; needs a `face` stage before it",
        params=(
            Param(
                "model",
                str,
                "gfpgan_1.4",
                "gfpgan_1.4, gpen_bfr_256, gpen_bfr_512, codeformer, or the path of an .onnx file",
                live=False,
            ),
            Param("strength", float, 0.8, "blend of the restored face over the original (0 = off)", min=0.0, max=1.0),
            Param(
                "fidelity",
                float,
                0.5,
                "CodeFormer only: 0 = strongest restoration, 1 = closest to the input",
                min=0.0,
                max=1.0,
            ),
            Param("faces", str, "all", "which faces to restore", choices=("all", "largest")),
            Param(
                "template",
                str,
                "auto",
                "crop alignment: auto (the model's), ffhq_512 or arcface_128",
                choices=("auto", "ffhq_512", "arcface_128"),
                live=False,
            ),
            Param(
                "mask_blur",
                float,
                0.3,
                "feather of the pasted crop's edge (fraction of half the crop)",
                min=0.0,
                max=1.0,
            ),
            Param(
                "occlusion",
                str,
                "off",
                '"hands": hands in front of a face keep their pixels (MediaPipe\'s hand models, bundled)',
                choices=("off", "hands"),
            ),
            Param(
                "every",
                int,
                0,
                "run the restorer on one frame in N, off the critical path, carrying its detail "
                "to the frames between (1 = every frame, in line; 0 = auto: 1 while a run fits half the frame "
                "budget, else from its measured time)",
                min=0,
                max=30,
            ),
        ),
        factory=make_enhance,
        models=("gfpgan_1.4", "gpen_bfr_256", "gpen_bfr_512", "codeformer"),
    )
)
