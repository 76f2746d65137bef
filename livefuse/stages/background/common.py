"""What the background stage's two implementations share: settings, the model choice, backdrop and colour.

The blur is mask-weighted ("normalised convolution"): the person is cut out before blurring, so no
halo of the person bleeds into the blurred room around them. `blur_geometry` is the one choice of blur
size both implementations make, so they blur alike.

`remove` paints a solid colour; the default is chroma-key green (#00b140) so a downstream tool (OBS)
can key it out. True transparency needs an output with alpha, which the virtual camera is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livefuse.errors import PresetError
from livefuse.paths import preset_file
from livefuse.stage import Stage, StageContext
from livefuse.stages.background.backdrop import Backdrop
from livefuse.vision.segmentation import GENERAL_SIZE, LANDSCAPE_SIZE

MODELS = {"general": "selfie_segmentation", "landscape": "selfie_segmentation_landscape"}
CHROMA_GREEN = "#00b140"


def parse_colour(text: str, where: str) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb') -> BGR."""
    value = text.strip().removeprefix("#")
    if len(value) != 6 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise PresetError(
            f'{where}: colour = {text!r} is not a colour; write it as "#rrggbb", '
            f'e.g. "{CHROMA_GREEN}" (chroma-key green)'
        )
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def blur_geometry(width: int, small: tuple[int, int], strength: float) -> tuple[tuple[int, int], float]:
    """(blur image size, sigma there): shrink until the blur is ~3 pixels wide; shared so both paths blur alike."""
    sigma_full = 1.0 + strength * 0.012 * width  # in full-frame pixels
    scale = min(1.0, 3.0 / (sigma_full * small[0] / width))
    bw, bh = max(8, round(small[0] * scale)), max(8, round(small[1] * scale))
    return (bw, bh), sigma_full * bw / width


class BackgroundStage(Stage):
    """Segment the person, then blur, replace or recolour the rest (see cpu.py and graph.py for how)."""

    name = "background"
    path: str  # "cpu" or "graph": which implementation this is

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)
        self.engine = context.engine
        self.size = context.size
        self.fps = context.fps or 30.0
        self.preset_dir = Path(context.preset_dir) if context.preset_dir is not None else None
        width, height = context.size
        kind = params["model"]
        if kind == "auto":
            kind = "landscape" if width >= 1.4 * height else "general"
        self.model_name = MODELS[kind]
        self.model_size = LANDSCAPE_SIZE if kind == "landscape" else GENERAL_SIZE
        self._backdrop: Backdrop | None = None
        self._colour_bgr: tuple[int, int, int] = (0, 0, 0)  # set by _configure, which each implementation calls

    def _configure(self) -> None:
        """Check the settings and open the backdrop they name; each implementation adds its own part."""
        p = self.params
        if p["mode"] == "replace":
            if not p["image"]:
                raise PresetError(
                    "background stage: mode = 'replace' needs image = \"PATH\" (a picture or a "
                    "video, relative to the preset file)"
                )
            path = preset_file(p["image"], self.preset_dir)
            if self._backdrop is None or self._backdrop.path != path:
                if self._backdrop is not None:
                    self._backdrop.close()
                self._backdrop = Backdrop(path, self.size, self.fps)
        self._colour_bgr = parse_colour(p["colour"], "background stage")

    def update(self, params: dict[str, Any]) -> None:
        old = dict(self.params)
        self.params.update(params)
        try:
            self._configure()
        except Exception:
            self.params = old
            raise

    def small_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the frame is shrunk to once, for segmentation and the blur."""
        d = self.params["downscale"]
        return max(16, width // d), max(16, height // d)

    def close(self) -> None:
        if self._backdrop is not None:
            self._backdrop.close()
            self._backdrop = None
