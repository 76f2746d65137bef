"""Face tracks across frames: stable ids by IoU matching, One Euro smoothing, holding through misses.

A detector looks at each frame afresh, so its boxes jitter by a few pixels and it sometimes misses a
frame. The tracker matches each detection to the track it overlaps most, smooths every coordinate of
the track, and keeps a missed track alive for `hold_frames` frames as a `held` face whose box grows a
little each frame (a face that moved while unseen is still covered). A face followed by FaceMesh
comes in already carrying its track's id and is matched by it. Times are capture times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from livefuse.frame import Face
from livefuse.vision.geometry import iou_matrix
from livefuse.vision.smoothing import OneEuro


def grow_box(box: np.ndarray, factor: float) -> np.ndarray:
    """The box scaled about its centre by `factor`."""
    centre = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


@dataclass
class Track:
    id: int
    face: Face  # the latest smoothed face
    filter: OneEuro  # over box, five points and mesh at once: one filter run a face a frame
    raw: Face  # the latest face as found, before smoothing (FaceMesh looks for it there next)
    misses: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box px per second


class FaceTracker:
    """Matches detections to tracks frame by frame and returns smoothed, id-stamped faces."""

    def __init__(
        self,
        *,
        min_cutoff: float = 1.0,
        beta: float = 5.0,
        smooth: bool = True,
        iou: float = 0.25,
        hold_frames: int = 2,
        hold_growth: float = 0.1,
        max_tracks: int = 0,
    ) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.smooth = smooth
        self.iou = iou
        self.hold_frames = hold_frames
        self.hold_growth = hold_growth
        self.max_tracks = max_tracks
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_t: float | None = None

    def _filter(self) -> OneEuro:
        return OneEuro(self.min_cutoff, self.beta)

    def update(self, detections: list[Face], t: float) -> list[Face]:
        """Fold one frame's detections (taken at time t seconds) into the tracks; returns the faces to show."""
        matches, new = self._match(detections, t)
        for track in self.tracks:
            det = matches.get(track.id)
            if det is None:
                track.misses += 1
            else:
                self._absorb(track, det, t)
        for det in new:
            if self.max_tracks and sum(tr.misses == 0 for tr in self.tracks) >= self.max_tracks:
                break
            self._start(det, t)
        self.tracks = [tr for tr in self.tracks if tr.misses <= self.hold_frames]
        self._last_t = t
        return self.faces()

    def predict(self, t: float) -> list[Face]:
        """Faces for a frame that was not run through the detector: tracks moved on by their velocity."""
        return [self._held(track) if track.misses else self._moved(track, t) for track in self.tracks]

    def faces(self) -> list[Face]:
        return [self._held(tr) if tr.misses else tr.face for tr in self.tracks]

    def reset(self) -> None:
        self.tracks = []
        self._last_t = None

    # -- internals -------------------------------------------------------------------------------

    def _moved(self, track: Track, t: float) -> Face:
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        shift = track.velocity * dt
        face = track.face
        delta = (shift[:2] + shift[2:]) / 2
        mesh = None if face.mesh is None else face.mesh + np.array([delta[0], delta[1], 0], np.float32)
        return Face(
            box=(face.box + shift).astype(np.float32),
            score=face.score,
            landmarks5=(face.landmarks5 + delta).astype(np.float32),
            track_id=track.id,
            mesh=mesh,
        )

    def _held(self, track: Track) -> Face:
        f = track.face
        factor = 1.0 + self.hold_growth * track.misses
        return Face(
            box=grow_box(f.box, factor),
            score=f.score,
            landmarks5=f.landmarks5.copy(),
            track_id=track.id,
            mesh=None if f.mesh is None else f.mesh.copy(),
            held=True,
        )

    def _match(self, detections: list[Face], t: float) -> tuple[dict[int, Face], list[Face]]:
        """Faces carrying a live track's id go to it; the rest by greedy best IoU (optimal in practice for a
        handful of faces, and no scipy needed). A live track is matched where its last detection moved on
        by its velocity: the smoothed box lags a fast face by up to half its width."""
        ids = {tr.id for tr in self.tracks}
        matches = {d.track_id: d for d in detections if d.track_id in ids}
        detections = [d for d in detections if d.track_id not in matches]
        if not self.tracks or not detections:
            return matches, list(detections)
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        tb = np.stack([self._held(tr).box if tr.misses else tr.raw.box + tr.velocity * dt for tr in self.tracks])
        db = np.stack([d.box for d in detections])
        ious = iou_matrix(tb, db)
        used: set[int] = set()
        for flat in np.argsort(-ious, axis=None):
            ti, di = np.unravel_index(flat, ious.shape)
            if ious[ti, di] < self.iou:
                break
            tid = self.tracks[int(ti)].id
            if tid in matches or int(di) in used:
                continue
            matches[tid] = detections[int(di)]
            used.add(int(di))
        return matches, [d for i, d in enumerate(detections) if i not in used]

    def _start(self, det: Face, t: float) -> None:
        track = Track(self._next_id, det, self._filter(), raw=det)
        self._next_id += 1
        self._absorb(track, det, t, fresh=True)
        self.tracks.append(track)

    def _absorb(self, track: Track, det: Face, t: float, fresh: bool = False) -> None:
        scale = float(max(det.box[2] - det.box[0], det.box[3] - det.box[1], 1.0))
        if track.misses:  # back after a miss: the face may have jumped; do not drag the old position in
            track.filter.reset()
        if self.smooth:
            # One vector, so one filter run: the box (4), the five points (10), the mesh (1404) when there is
            # one. The filter is elementwise, so this is three filters at once; a face gaining or losing its
            # mesh changes the vector's length, which restarts the filter.
            parts = [det.box, det.landmarks5.ravel()] + ([] if det.mesh is None else [det.mesh.ravel()])
            smoothed = track.filter(np.concatenate(parts), t, scale).copy()
            box, points = smoothed[:4], smoothed[4:14].reshape(5, 2)
            mesh = None if det.mesh is None else smoothed[14:].reshape(-1, 3)
            vel = track.filter.velocity()
            track.velocity = np.zeros(4, np.float32) if vel is None else vel[:4].copy()
        else:
            box, points, mesh = det.box.copy(), det.landmarks5.copy(), None if det.mesh is None else det.mesh.copy()
            if not fresh and not track.misses and self._last_t is not None and t > self._last_t:
                track.velocity = ((det.box - track.face.box) / (t - self._last_t)).astype(np.float32)
        track.face = Face(
            box=box, score=det.score, landmarks5=points, track_id=track.id, mesh=mesh, found_box=det.box.copy()
        )
        track.raw = det
        track.misses = 0
