"""The colour stage in OpenCV: the faster path on the CPU provider (`benchmarks/colour_paths.py`).

The ONNX graph is slow on the CPU provider (GridSample alone 70-130 ms a 1280x720 frame on two cores),
so here the sliders are one cv2.transform (a 3x4 affine on uint8, which also clips), and the LUT, with
`lut_strength` mixed in, is baked into a table of every 8-bit BGR colour, looked up by the pixel's bytes
(see `lut_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livefuse.frame import Frame
from livefuse.stage import StageContext
from livefuse.stages.colour.common import ColourStage, affine
from livefuse.stages.colour.cube import identity_cube


def transform_matrix(params: dict[str, Any]) -> np.ndarray:
    """The slider map as a cv2.transform matrix [3, 4] on uint8 BGR pixels (column vectors, 0..255)."""
    matrix, offset = affine(params)
    return np.hstack([matrix.T, offset[:, None] * 255.0]).astype(np.float32)


def lut_table(cube: np.ndarray, strength: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """The LUT mixed by `strength`, evaluated at every 8-bit colour: uint32 [2**24], index and value BGR0.

    A pixel's bytes b, g, r, 0 read as a little-endian uint32 (every platform livefuse runs on) are its
    index, so a frame is graded by one gather. It is exact (trilinear, then rounded) for integer inputs,
    where a 7-bit table would be up to 2 levels off and a 6-bit one 3. Trilinear interpolation is
    separable, so it is built one axis at a time (blue on the lattice, then green and red as weighted
    sums of two rows or planes in OpenCV): 30-50 ms, paid only when the LUT or its strength changes.
    The table takes 64 MiB, reused from one build to the next.
    """
    n = cube.shape[0]
    ident = identity_cube(n)
    bgr0 = np.zeros((n, n, n, 4), np.float32)  # [b, g, r, (b, g, r, 0) out] in 0..255
    bgr0[..., :3] = (ident + (cube - ident) * strength)[..., ::-1] * 255.0  # mixed on the lattice: exact
    pos = np.arange(256) * ((n - 1) / 255.0)
    lower = np.minimum(pos.astype(np.int64), n - 2)
    frac = pos - lower
    weights = np.zeros((256, n), np.float32)
    weights[np.arange(256), lower] = 1.0 - frac
    weights[np.arange(256), lower + 1] += frac
    along_b = np.einsum("Bb,bgrc->rgBc", weights, bgr0)  # [r, g, B, c]: small
    along_gb = np.empty((n, 256, 256, 4), np.float32)  # [r, G, B, c]
    for green in range(256):
        k, f = int(lower[green]), float(frac[green])
        cv2.addWeighted(along_b[:, k], 1.0 - f, along_b[:, k + 1], f, 0.0, dst=along_gb[:, green])
    table = out if out is not None else np.empty(1 << 24, np.uint32)
    planes = table.view(np.uint8).reshape(256, 256, 256, 4)  # [R, G, B, (b, g, r, 0)]
    for red in range(256):  # rounds to uint8 in place: no 200 MB float intermediate
        k, f = int(lower[red]), float(frac[red])
        cv2.addWeighted(along_gb[k], 1.0 - f, along_gb[k + 1], f, 0.0, dst=planes[red], dtype=cv2.CV_8U)
    return table


class CpuColour(ColourStage):
    """Grades with cv2.transform for the sliders and, with a LUT, one gather in the table."""

    path = "cpu"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        super().__init__(params, context)
        self._transform = transform_matrix(self.params)
        self._table: np.ndarray | None = None
        self._table_key: tuple[Path | None, float] | None = None
        self._packed: np.ndarray | None = None  # the frame as BGR0, reused frame to frame
        self.update({})

    def _apply(self, params: dict[str, Any], cube: np.ndarray | None) -> None:
        """Sliders cost nothing; a new LUT or strength rebuilds the table (30-50 ms, once, while the chain
        holds this stage between frames)."""
        self._transform = transform_matrix(params)
        key = (self._lut_path, float(params["lut_strength"]))
        if cube is None:
            self._table, self._table_key = None, None
        elif key != self._table_key:
            self._table = lut_table(cube, params["lut_strength"], out=self._table)
            self._table_key = key

    def process(self, frame: Frame) -> None:
        frame.image = self._grade_cpu(np.ascontiguousarray(frame.image))

    def _grade_cpu(self, image: np.ndarray) -> np.ndarray:
        """cv2.transform for the sliders, then (with a LUT) one gather in the table by the pixel's bytes."""
        graded = cv2.transform(image, self._transform)  # rounds and clips to 0..255, as the graph does
        if self._table is None:
            return graded
        height, width = image.shape[:2]
        if self._packed is None or self._packed.shape[:2] != (height, width):
            self._packed = np.zeros((height, width, 4), np.uint8)  # the fourth byte stays 0
        cv2.mixChannels([graded], [self._packed], [0, 0, 1, 1, 2, 2])
        looked_up = np.take(self._table, self._packed.view(np.uint32)[..., 0])  # faster than take(out=...)
        return cv2.cvtColor(looked_up.view(np.uint8).reshape(height, width, 4), cv2.COLOR_BGRA2BGR)

    def close(self) -> None:
        self._table = self._packed = None
