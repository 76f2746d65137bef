"""Which of a frame's faces an effect applies to: all, the largest, or the one most like a reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from livefuse.faces.embedding import cosine
from livefuse.frame import Face

MODES = ("all", "largest", "similar")


def area(face: Face) -> float:
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def largest(faces: list[Face]) -> list[Face]:
    return [max(faces, key=area)] if faces else []


def most_similar(
    faces: list[Face], reference: np.ndarray, embed: Callable[[Face], np.ndarray], min_similarity: float = 0.0
) -> list[Face]:
    """The face whose embedding is closest (cosine) to `reference`, if at least `min_similarity`."""
    if not faces:
        return []
    scores = [cosine(embed(f), reference) for f in faces]
    best = int(np.argmax(scores))
    return [faces[best]] if scores[best] >= min_similarity else []


class EmbeddingCache:
    """Per-track embeddings, recomputed every `refresh` frames: identity does not change frame to frame.

    Faces without a track id (-1) are embedded every time.
    """

    def __init__(self, refresh: int = 15) -> None:
        self.refresh = refresh
        self._store: dict[int, tuple[int, np.ndarray]] = {}
        self._frame = 0

    def tick(self, faces: list[Face]) -> None:
        """Call once per frame: advances the clock and forgets tracks that are gone."""
        self._frame += 1
        live = {f.track_id for f in faces}
        for tid in [t for t in self._store if t not in live]:
            del self._store[tid]

    def get(self, face: Face, compute: Callable[[Face], np.ndarray]) -> np.ndarray:
        if face.track_id < 0:
            return compute(face)
        hit = self._store.get(face.track_id)
        if hit is None or self._frame - hit[0] >= self.refresh:
            hit = (self._frame, compute(face))
            self._store[face.track_id] = hit
        return hit[1]

    def clear(self) -> None:
        self._store.clear()
