"""What the colour stage's two implementations share: the slider map and the LUT file.

Temperature gains, brightness, contrast about mid-grey and saturation about luma are all affine, so
together they are one 3x3 matrix and an offset (`affine`); each implementation applies it its own way.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from livefuse.errors import PresetError
from livefuse.paths import preset_file
from livefuse.stage import Stage, StageContext
from livefuse.stages.colour.cube import load_cube

LUMA_BGR = (0.114, 0.587, 0.299)
TEMPERATURE_GAIN = 0.15  # temperature 1.0 = red x1.15, blue x0.85
BRIGHTNESS_RANGE = 0.3  # brightness 1.0 adds 0.3 (of full scale)


def affine(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The slider adjustments as one affine map on BGR row vectors in 0..1: y = x @ matrix + offset.

    Temperature gains, brightness, contrast about mid-grey and saturation about luma are all affine,
    so their composition is one 3x3 matrix and an offset: one MatMul per pixel instead of ten ops.
    """
    t, b, c, s = params["temperature"], params["brightness"], params["contrast"], params["saturation"]
    gains = np.diag([1.0 - TEMPERATURE_GAIN * t, 1.0, 1.0 + TEMPERATURE_GAIN * t])
    luma = np.array(LUMA_BGR)[:, None]
    sat = s * np.eye(3) + (1.0 - s) * luma @ np.ones((1, 3))  # x -> luma + (x - luma) * s
    matrix = gains * c @ sat
    offset = ((BRIGHTNESS_RANGE * b - 0.5) * c + 0.5) * np.ones((1, 3)) @ sat
    return matrix.astype(np.float32), offset.reshape(3).astype(np.float32)


class ColourStage(Stage):
    """Grades every frame (see cpu.py and graph.py for how); a new LUT file is read here, once."""

    name = "colour"
    path: str  # "cpu" or "graph": which implementation this is

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self.engine = context.engine
        self.preset_dir = Path(context.preset_dir) if context.preset_dir is not None else None
        self._lut_path: Path | None = None
        self._cube: np.ndarray | None = None

    def update(self, params: dict[str, Any]) -> None:
        """Apply parameters: a LUT file that does not exist changes nothing; the rest is the implementation's."""
        merged = {**self.params, **params}
        if merged["lut"]:
            lut_path = preset_file(merged["lut"], self.preset_dir)
            if lut_path != self._lut_path:
                if not lut_path.is_file():
                    raise PresetError(
                        f"colour stage: lut = {merged['lut']!r}: no such file ({lut_path}); give a "
                        f".cube file, relative to the preset"
                    )
                self._cube, self._lut_path = load_cube(lut_path), lut_path
        else:
            self._cube, self._lut_path = None, None
        self.params = merged
        self._apply(merged, self._cube if merged["lut_strength"] > 0 else None)

    @abstractmethod
    def _apply(self, params: dict[str, Any], cube: np.ndarray | None) -> None:
        """Make ready to grade with these (merged) parameters and this LUT (None: none, or strength 0)."""
