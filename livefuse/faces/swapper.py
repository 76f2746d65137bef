"""inswapper_128: paints a source identity (an ArcFace embedding) onto an aligned target face.

The model takes the target crop aligned to its template at its size, normalised by its mean and std (all
from models/manifest.toml: the 128-px ArcFace template, RGB in [0, 1]), and the source embedding projected
through its own `emap` matrix (the graph's last initializer) and L2-normalised, as InsightFace's reference
code does. It returns the swapped crop, RGB in [0, 1]. Pixel boost swaps a larger aligned face in tiles of
the model's size (`InSwapper.swap`'s `size`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from livefuse.errors import ModelError
from livefuse.faces.align import warp_face
from livefuse.faces.facts import facts_of

if TYPE_CHECKING:
    from livefuse.engine.session import Session

MODEL = "inswapper_128"  # whose manifest facts a swapper given as a file takes
PIXEL_BOOSTS = (128, 256, 512)  # multiples of the model's 128 px


class InSwapper:
    """One inswapper session (FP32 or FP16 weights; inputs are cast to what the graph declares)."""

    def __init__(self, session: Session, emap: np.ndarray) -> None:
        if emap.shape != (512, 512):
            raise ModelError(
                f"{session.source.label}: the last initializer has shape {list(emap.shape)}, expected "
                f"[512, 512] (the emap matrix); is it an inswapper_128 model?"
            )
        missing = {"target", "source"} - set(session.input_names)
        if missing:
            raise ModelError(
                f"{session.source.label} has inputs {session.input_names}; an inswapper model takes "
                f"'target' and 'source'"
            )
        self.session = session
        self.emap = emap
        self.facts = facts_of(session, MODEL)
        self.size = self.facts.size
        self.template = self.facts.template or ""
        self.output_name = "output" if "output" in session.output_names else session.output_names[0]
        self._dtypes = {name: session.inputs[name][1] for name in ("target", "source")}

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """The model's `source` input [1, 512]: the normalised embedding times emap, normalised again."""
        v = np.asarray(embedding, np.float32).reshape(1, -1)
        latent = (v / max(float(np.linalg.norm(v)), 1e-12)) @ self.emap
        return latent / max(float(np.linalg.norm(latent)), 1e-12)

    def swap(
        self, image_bgr: np.ndarray, landmarks5: np.ndarray, latent: np.ndarray, size: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(swapped crop BGR uint8, original crop, frame-to-crop matrix) for the face at `landmarks5`.

        `size` (0: the model's, 128) above the model's is pixel boost (FaceFusion's): the face is aligned at
        `size` px and swapped as (size / 128)^2 interleaved 128-px tiles (tile i, j takes every k-th pixel
        from row i, column j), each a whole face half a pixel (or less) from the others, with the same
        identity; the outputs are interleaved back. The model runs once per tile.
        """
        tile = self.size
        size = size or tile
        crop, matrix = warp_face(image_bgr, landmarks5, self.template, size)
        tiles = implode(crop, size // tile)
        x = cv2.cvtColor(tiles.reshape(-1, tile, 3), cv2.COLOR_BGR2RGB).reshape(tiles.shape).astype(np.float32)
        x = (x - self.facts.mean_rgb) * self.facts.inv_std
        source = np.ascontiguousarray(latent, dtype=self._dtypes["source"])
        out = np.empty(tiles.shape, np.float32)
        for i, one in enumerate(x):
            feeds = {
                "target": np.ascontiguousarray(one.transpose(2, 0, 1)[None], dtype=self._dtypes["target"]),
                "source": source,
            }
            out[i] = np.asarray(self.session.run(feeds)[self.output_name], np.float32)[0].transpose(1, 2, 0)
        rgb = np.clip(explode(out, size // tile) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), crop, matrix


def implode(crop: np.ndarray, k: int) -> np.ndarray:
    """A [k*n, k*n, C] crop as k*k interleaved tiles [k*k, n, n, C]: tile i*k + j is crop[i::k, j::k]."""
    n = crop.shape[0] // k
    return crop.reshape(n, k, n, k, -1).transpose(1, 3, 0, 2, 4).reshape(k * k, n, n, -1)


def explode(tiles: np.ndarray, k: int) -> np.ndarray:
    """`implode`'s inverse: k*k tiles [k*k, n, n, C] back into one [k*n, k*n, C] crop."""
    n = tiles.shape[1]
    return tiles.reshape(k, k, n, n, -1).transpose(2, 0, 3, 1, 4).reshape(k * n, k * n, -1)
