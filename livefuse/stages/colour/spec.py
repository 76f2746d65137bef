"""The `colour` stage type as presets name it: its parameters, and the implementation it runs.

On a GPU provider the graph (graph.py) keeps the frame on the device; on the CPU provider OpenCV and a
table (cpu.py) are far faster (`benchmarks/colour_paths.py`), so that path is the default there.
"""

from __future__ import annotations

from typing import Any

from livefuse.stage import Param, StageContext, StageSpec, build_implementation
from livefuse.stages.colour.common import ColourStage
from livefuse.stages.colour.cpu import CpuColour
from livefuse.stages.colour.graph import GraphColour
from livefuse.stages.registry import register


def make_colour(params: dict[str, Any], context: StageContext, path: str = "auto") -> ColourStage:
    """The colour stage for this engine (see `build_implementation`; benchmarks/colour_paths.py)."""
    return build_implementation(path, context, lambda: CpuColour(params, context), lambda: GraphColour(params, context))


SPEC = register(
    StageSpec(
        type="colour",
        summary="Colour grade: brightness, contrast, saturation, temperature and a .cube 3D LUT (an ONNX graph on "
        "a GPU, OpenCV and a lookup table on the CPU)",
        params=(
            Param("brightness", float, 0.0, "-1 (darker) to 1 (brighter)", min=-1.0, max=1.0),
            Param("contrast", float, 1.0, "1 unchanged; 0 flat grey to 2", min=0.0, max=2.0),
            Param("saturation", float, 1.0, "1 unchanged; 0 black and white to 2", min=0.0, max=2.0),
            Param("temperature", float, 0.0, "-1 (cooler, bluer) to 1 (warmer, redder)", min=-1.0, max=1.0),
            Param("lut", str, "", ".cube 3D LUT file, relative to the preset (empty: none)", kind="file"),
            Param("lut_strength", float, 1.0, "how much of the LUT to apply, 0 to 1", min=0.0, max=1.0),
        ),
        factory=make_colour,
    )
)
