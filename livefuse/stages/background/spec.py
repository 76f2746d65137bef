"""The `background` stage type as presets name it: its parameters, and the implementation it runs.

On a GPU provider the fused graph (graph.py) keeps the frame on the device; on the CPU provider OpenCV
(cpu.py) is faster (`benchmarks/background_paths.py`), so that path is the default there.
"""

from __future__ import annotations

from typing import Any

from livefuse.stage import Param, StageContext, StageSpec, build_implementation
from livefuse.stages.background.common import CHROMA_GREEN, MODELS, BackgroundStage
from livefuse.stages.background.cpu import CpuBackground
from livefuse.stages.background.graph import GraphBackground
from livefuse.stages.registry import register
from livefuse.vision.matting import EDGE_MODES


def make_background(params: dict[str, Any], context: StageContext, path: str = "auto") -> BackgroundStage:
    """The background stage for this engine (see `build_implementation`; benchmarks/background_paths.py)."""
    return build_implementation(
        path, context, lambda: CpuBackground(params, context), lambda: GraphBackground(params, context)
    )


SPEC = register(
    StageSpec(
        type="background",
        summary="Blur, replace or remove the background behind the person (selfie segmentation)",
        params=(
            Param(
                "mode",
                str,
                "blur",
                "blur, replace (image/video) or remove (solid colour)",
                choices=("blur", "replace", "remove"),
            ),
            Param("strength", float, 0.6, "blur: how strong, 0 (barely) to 1 (very)", min=0.0, max=1.0),
            Param(
                "image",
                str,
                "",
                "replace: picture or video file (looped), relative to the preset; fitted by "
                "cover-cropping, never stretched",
                kind="file",
            ),
            Param("colour", str, CHROMA_GREEN, 'remove: the colour as "#rrggbb" (default chroma-key green)'),
            Param(
                "feather",
                float,
                0.5,
                "edge softness, 0 (hard) to 5 (very soft), in % of the frame width",
                min=0.0,
                max=5.0,
            ),
            Param(
                "edge",
                str,
                "off",
                "edge refinement: off, fast or fine (a guided filter fits the mask's edges to "
                "the picture's: sharper hair and shoulders, at a cost; see presets/README.md)",
                choices=EDGE_MODES,
            ),
            Param(
                "smoothing",
                float,
                0.5,
                "how much of the previous mask is kept each frame (steadier edges, a little lag)",
                min=0.0,
                max=0.95,
            ),
            Param(
                "downscale",
                int,
                4,
                "blur and segmentation work on a frame this many times smaller",
                min=1,
                max=8,
                live=False,
            ),
            Param(
                "model",
                str,
                "auto",
                "segmentation model: auto (landscape 256x144 for wide frames), general (256x256) or landscape",
                choices=("auto", "general", "landscape"),
                live=False,
            ),
        ),
        factory=make_background,
        models=tuple(MODELS.values()),
    )
)
