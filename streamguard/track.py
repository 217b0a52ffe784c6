"""Temporal safety: keep faces covered between and around their detections.

:class:`Tracker` coasts faces through missed detections (a Kalman filter each, Hungarian
matching); :class:`~streamguard.lookahead.TrackStage` runs it as a pipeline stage.

filterpy and scipy.optimize are imported where a filter is made and where tracks are matched,
not with this module: filterpy's packages import all their modules and scipy.stats with them,
0.65 s of CPU at start-up. :func:`preload` starts that import on a thread of its own when a
video job begins, so it is not in front of everything else. Whatever needs them first waits in
that import (Python's import lock) until it is complete: no track is skipped, no frame is handed
on without its tracks.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import camera
from .types import Box, Detection

__all__ = ["Coast", "LIVE_COAST", "FILE_COAST", "Track", "TrackState", "Tracker", "preload", "to_near_edges"]

log = logging.getLogger(__name__)

TrackState = Literal["tentative", "confirmed", "coasting"]


_CONFIRM_HITS = 3  # matches before a track counts as confirmed
_K_SIGMA = 2.0  # coasting boxes grow by this many standard deviations of position
_MEAS_STD = 0.05  # detector jitter, as a fraction of the box size
_ACCEL_STD = 4.0  # box sizes/s^2: how hard a head may change course while unseen
_SIZE_ACCEL_STD = 0.5  # box sizes/s^2 for the box size (approach/retreat)
_VEL0_STD = 10.0  # box sizes/s at birth: wide, so that two detections already give a velocity
_SIZE_VEL0_STD = 1.0


@dataclass(frozen=True, slots=True)
class Coast:
    """How a coasting (unmatched) face's cover grows on each side: ``grow0`` box sizes at once,
    plus ``speed`` box sizes per second since it was last seen, at most (the filter's own
    uncertainty, when smaller, decides)."""

    grow0: float
    speed: float
    #: Fastest a coasting face last found with a score under ``_SURE`` is guessed to travel, box
    #: sizes per second (None: as fast as its filter says).
    travel: float | None = None


#: Live: nothing is held back, so the guess must reach wherever a fast head could be.
LIVE_COAST = Coast(grow0=0.25, speed=5.0)
#: Files: a face found again is also covered along the straight path between its sightings in
#: the held frames (``TrackStage._bridge``), so the guess need not reach that far. With the live
#: growth, a face lost for 0.5 s was covered 6.5x as wide; on real clips (a shop aisle, a
#: classroom: benchmarks/real.py) such boxes blurred 2-20x the faces' own area around them.
#:
#: An unsure face's guess is not held to a travel limit (``Coast.travel``). Held to 3 box sizes a
#: second of its last sighting (2026-12-04), tracks born of false finds that jumped (shelves in a
#: shop aisle) no longer dragged a 70 px box 200 px across the frame: the real clips' blur outside
#: the heads fell 2.34x -> 2.07x the faces' area (benchmarks/real.py). But on a handheld street
#: nothing was tuned on (benchmarks/fresh.py) it left 36-41 px faces of walkers half covered as
#: the camera swung (143 -> 156 exposed proposals; 6 sizes/s: 155), and against the whole plan
#: on every frame (benchmarks/schedule.py) 809 -> 872 exposed: less blur is not worth a face.
#: Tried again once guesses moved with the camera (2026-12-07): the real clips 3.63x -> 3.18x, and
#: a walker's painted 37-39 px face on that street exposed again (docs/recall.md).
FILE_COAST = Coast(grow0=0.1, speed=0.75)
_SURE = 0.8  # a find scoring this is a face whose velocity is trusted while it coasts
_DUPLICATE = 0.7  # share of an unmatched box inside a matched one that makes it a duplicate
_GATE = 1.0  # non-overlapping pairs match only within this many box sizes (plus uncertainty)
_SHRINK = 0.9  # a matched covered box keeps at least this fraction of last frame's size
#: While unseen, a face's predicted size stays within this factor of its last detection: on a
#: handheld street clip (openpose's video.avi, false finds on bodies whose boxes jump in size) a
#: noisy size velocity grew coasting boxes to 500 x 40 px within the hold. There it took the
#: covered area 123k -> 103k px a 720p frame (largest box side 845 -> 654 px), with the same
#: faces exposed; benchmarks/temporal.py (exposed 0/0/1, over-cover 2.59/3.16/3.19x ->
#: 2.59/3.14/3.16x) and the real clips (benchmarks/real.py, 1.81x -> 1.82x) barely move.
#: Gating matches by size as well (a detection 1.8x larger is another face) raised the real
#: clips to 1.88x: a face whose box jumps then starts a new track, with its own backfill.
_SIZE_DRIFT = 1.5
EPS = 1e-6  # seconds: float slack for hold/lookahead comparisons


_preload_lock = threading.Lock()
_preloading: threading.Thread | None = None


def _import_libraries() -> None:
    try:
        import filterpy.kalman  # noqa: F401  (imports scipy.stats, scipy.linalg and scipy.optimize too)
        import scipy.optimize  # noqa: F401
    except Exception:  # noqa: BLE001 - the tracker's own import raises it again, where it is handled
        log.debug("preloading the tracker's libraries failed", exc_info=True)


def preload() -> None:
    """Start importing the tracker's libraries (filterpy, scipy.optimize) on a background thread.

    Called as early as a video job is known (:func:`~streamguard.api.anonymize_video` once the
    input opened; every :class:`Tracker` too), so the import runs beside the detector's loading
    rather than before it, and a job that fails early (say, the output exists) fails without
    waiting for it. Once per process; a no-op when they are loaded already.
    """
    global _preloading
    with _preload_lock:
        if _preloading is not None or "filterpy.kalman" in sys.modules:
            return
        # A daemon: a process that ends early does not wait at exit for an import nobody needs.
        # Not named streamguard-*: it is no pipeline thread, and ends on its own.
        _preloading = threading.Thread(target=_import_libraries, name="tracker-preload", daemon=True)
        _preloading.start()


def to_near_edges(b: Box, width: int, height: int) -> Box:
    """``b`` extended to each frame edge that is less than one box size away."""
    return Box(min(b.x1, 0.0) if b.x1 < b.width else b.x1, min(b.y1, 0.0) if b.y1 < b.height else b.y1,
               max(b.x2, width) if width - b.x2 < b.width else b.x2,
               max(b.y2, height) if height - b.y2 < b.height else b.y2)


def _motion(x: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix F and process noise Q of a constant-velocity step of ``dt`` seconds from ``x``."""
    f = np.eye(8)
    f[range(4), range(4, 8)] = dt
    w, h = x[2, 0], x[3, 0]
    # Continuous white-noise acceleration, scaled with the box: big faces move more pixels.
    a = np.square([_ACCEL_STD * w, _ACCEL_STD * h, _SIZE_ACCEL_STD * w, _SIZE_ACCEL_STD * h])
    pv = np.diag(a * dt**2 / 2)
    return f, np.block([[np.diag(a * dt**3 / 3), pv], [pv, np.diag(a * dt)]])


def _clamp_size(x: np.ndarray, seen: Box) -> None:
    """Keep the state's box size (and so its size velocity) within ``_SIZE_DRIFT`` of ``seen``."""
    for i, side in ((2, seen.width), (3, seen.height)):
        lo, hi = max(side / _SIZE_DRIFT, 1.0), max(side * _SIZE_DRIFT, 1.0)
        if not lo <= x[i, 0] <= hi:
            x[i, 0] = min(max(x[i, 0], lo), hi)
            x[i + 4, 0] = 0.0


def _within(cx: float, cy: float, seen: Box, sizes: float) -> tuple[float, float]:
    """``(cx, cy)`` moved towards ``seen``'s centre until it is at most ``sizes`` of its sizes away."""
    sx, sy = seen.center
    top, far = sizes * max(seen.width, seen.height), math.hypot(cx - sx, cy - sy)
    if far <= top:
        return cx, cy
    return sx + (cx - sx) * top / far, sy + (cy - sy) * top / far


def _position_std(p: np.ndarray) -> list[float]:
    """Standard deviations of cx, cy, w, h from the state covariance ``p``."""
    return [float(v) for v in np.sqrt(np.maximum(np.diag(p)[:4], 0.0))]


@dataclass(frozen=True, slots=True)
class Track:
    """Snapshot of one track after an update. ``box`` is the face box to cover on this frame."""

    id: int
    box: Box
    state: TrackState
    hits: int
    #: Seconds since the last matched detection (0 on the frame it was matched).
    time_since_update: float
    score: float = 1.0
    #: Matched to a detection on this frame (otherwise the box is predicted).
    matched: bool = False
    #: Velocity of the box centre in pixels per second.
    velocity: tuple[float, float] = (0.0, 0.0)
    #: Time and detector box of the sighting before the last one (equal to it at birth).
    prev_hit: float = 0.0
    prev_box: Box | None = None
    #: The detector's box of the last sighting (``box`` is the smoothed cover).
    found_box: Box | None = None


class _Filter:
    """Mutable per-track state: a constant-velocity Kalman filter on (cx, cy, w, h) and bookkeeping."""

    def __init__(self, track_id: int, det: Detection, time: float, coast: Coast = LIVE_COAST) -> None:
        cx, cy = det.box.center
        self.coast = coast
        # Waits here, not on a placeholder, when preload()'s import is still running.
        from filterpy.kalman import KalmanFilter

        w, h = max(det.box.width, 1.0), max(det.box.height, 1.0)
        self.kf = kf = KalmanFilter(dim_x=8, dim_z=4)
        kf.H = np.hstack([np.eye(4), np.zeros((4, 4))])
        kf.x = np.array([[cx], [cy], [w], [h], [0.0], [0.0], [0.0], [0.0]])
        m, v, sv = _MEAS_STD, _VEL0_STD, _SIZE_VEL0_STD
        kf.P = np.diag(np.square([m * w, m * h, m * w, m * h, v * w, v * h, sv * w, sv * h]))
        self.id, self.hits, self.misses = track_id, 1, 0  # misses: detector runs since the last hit
        self.last_hit, self.det_box, self.score = time, det.box, det.score
        self.matched, self.box, self.size = True, det.box, (det.box.width, det.box.height)
        self.prev_hit, self.prev_box = time, det.box
        #: The last detection carried along with the camera's motion since (see :meth:`warp`).
        self.scene_box = det.box

    @property
    def unsure(self) -> bool:
        """Whether this face's coasting guess is held to ``coast.travel`` (see :data:`_SURE`)."""
        return self.coast.travel is not None and self.score < _SURE

    def warp(self, m: np.ndarray) -> None:
        """The camera moved by ``m`` (3x3, previous frame's pixels to this one's): so did this face,
        as far as anyone knows. Its state moves with the picture, and its own velocity is what is
        left of its motion once the camera's is taken out. The last detection's box stays too:
        a face moving with the camera (a selfie walker) stays where it was in the picture."""
        a, s = m[:2, :2], camera.scale_of(m)
        x = self.kf.x
        x[0:2, 0] = a @ x[0:2, 0] + m[:2, 2]
        x[2:4, 0] *= s
        x[4:6, 0] = a @ x[4:6, 0]
        x[6:8, 0] *= s
        t = np.zeros((8, 8))
        t[0:2, 0:2], t[4:6, 4:6] = a, a
        t[2, 2] = t[3, 3] = t[6, 6] = t[7, 7] = s
        self.kf.P = t @ self.kf.P @ t.T
        self.scene_box = camera.warp_box(m, self.scene_box)

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        f, q = _motion(self.kf.x, dt)
        self.kf.predict(F=f, Q=q)
        _clamp_size(self.kf.x, self.scene_box)
        self.matched = False

    def forecast(self, dt: float, time: float) -> Track:
        """The snapshot ``predict(dt)`` and ``cover(time)`` would give, leaving this filter as it
        is: the same arithmetic (as :meth:`KalmanFilter.predict` does it) on new x and P arrays."""
        x, p, matched = self.kf.x, self.kf.P, self.matched
        if dt > 0:
            f, q = _motion(x, dt)
            x, p = np.dot(f, x), np.dot(np.dot(f, p), f.T) + q
            _clamp_size(x, self.scene_box)
            matched = False
        box = self._cover_box(x, p, matched, time)
        return self._snapshot(time, box, x, matched)

    def update(self, det: Detection, time: float) -> None:
        w, h = max(det.box.width, 1.0), max(det.box.height, 1.0)
        cx, cy = det.box.center
        r = np.diag(np.square([_MEAS_STD * w, _MEAS_STD * h, _MEAS_STD * w, _MEAS_STD * h]))
        self.kf.update(np.array([[cx], [cy], [w], [h]]), R=r)
        self.kf.x[2:4, 0] = np.maximum(self.kf.x[2:4, 0], 1.0)
        self.hits, self.misses, self.matched = self.hits + 1, 0, True
        # The previous sighting: with it, a file's held frames between the two can be bridged.
        self.prev_hit, self.prev_box = self.last_hit, self.det_box
        self.last_hit, self.det_box, self.score = time, det.box, det.score
        self.scene_box = det.box

    def predicted_box(self) -> Box:
        return Box.from_center(*(float(v) for v in self.kf.x[:4, 0]))

    def position_std(self) -> list[float]:
        """Standard deviations of cx, cy, w, h."""
        return _position_std(self.kf.P)

    def cover(self, time: float) -> Box:
        """The box to cover this frame; remembers it so the next one does not shrink abruptly."""
        box = self._cover_box(self.kf.x, self.kf.P, self.matched, time)
        if self.matched:
            self.size = (box.width, box.height)
        self.box = box
        return box

    def _cover_box(self, x: np.ndarray, p: np.ndarray, matched: bool, time: float) -> Box:
        """The box :meth:`cover` would set for state ``x`` with covariance ``p``."""
        cx, cy, w, h = (float(v) for v in x[:4, 0])
        if matched:
            # Smoothed size, at most 10% below the last matched frame's (not a coasting box's:
            # once the face is found again the blur returns to it), never less than the detection.
            w, h = max(w, _SHRINK * self.size[0]), max(h, _SHRINK * self.size[1])
            box = Box.bounding((Box.from_center(cx, cy, w, h), self.det_box))
        else:
            # Grow with the filter's uncertainty and keep the last seen box: a head that stopped,
            # turned or kept going all stay inside.
            sx, sy, sw, sh = _position_std(p)
            if self.unsure:
                cx, cy = _within(cx, cy, self.scene_box, self.coast.travel * (time - self.last_hit))
            # A track seen once has no velocity yet and a huge variance: cap its growth at what
            # a fast head could do, so a one-off false detection does not blur the whole frame.
            # Scaled by the larger side: a face entering through the frame edge has a narrow,
            # clipped box whose width says little about how far the head can move.
            cap = (self.coast.grow0 + self.coast.speed * (time - self.last_hit)) * max(w, h)
            hw = w / 2 + min(_K_SIGMA * (sx + sw / 2), cap)
            hh = h / 2 + min(_K_SIGMA * (sy + sh / 2), cap)
            # The last seen box where it was in the picture, and where the camera's motion took it.
            box = Box.bounding((Box(cx - hw, cy - hh, cx + hw, cy + hh), self.det_box, self.scene_box))
        return box

    def snapshot(self, time: float) -> Track:
        return self._snapshot(time, self.box, self.kf.x, self.matched)

    def _snapshot(self, time: float, box: Box, x: np.ndarray, matched: bool) -> Track:
        state: TrackState = "confirmed" if self.hits >= _CONFIRM_HITS else "tentative"
        state = "coasting" if self.misses else state
        vx, vy = float(x[4, 0]), float(x[5, 0])
        return Track(self.id, box, state, self.hits, max(0.0, time - self.last_hit),
                     self.score, matched, (vx, vy), self.prev_hit, self.prev_box, self.det_box)


class Tracker:
    """Multi-face tracker: Kalman prediction, IoU + centre-distance assignment, time-based hold.

    One detection starts a track (and so a covered region: no initialization delay). A track is
    deleted ``hold`` seconds after its last match; ``hold=0`` keeps a track only on frames where
    it was detected.
    """

    def __init__(self, hold: float = 0.5, coast: Coast = LIVE_COAST) -> None:
        if not (isinstance(hold, (int, float)) and math.isfinite(hold) and hold >= 0):
            raise ValueError(f"hold must be a finite number of seconds >= 0, got {hold!r}")
        self.hold = float(hold)
        #: How a coasting face's cover grows.
        self.coast = coast
        self._tracks: list[_Filter] = []
        self._next_id = 1
        self._time: float | None = None
        self._warned = False
        preload()  # the first detection needs filterpy: loading, if nobody started that yet

    def reset(self) -> None:
        """End every track (a scene cut). Ids keep counting so they stay unique in a run."""
        self._tracks.clear()

    def update(self, detections: Sequence[Detection] | None, time: float,
               camera_motion: np.ndarray | None = None) -> list[Track]:
        """Advance to ``time`` (seconds) and match ``detections``; ``None`` means the detector
        did not run on this frame: tracks are only predicted and no miss is counted.
        ``camera_motion`` is how the picture as a whole moved since the last update (a 3x3
        transform of its pixels, :class:`~streamguard.camera.CameraMotion`; None: unknown, as
        if still): every face's guess moves with it before its own motion is predicted."""
        if not math.isfinite(time):
            raise ValueError(f"time must be finite, got {time!r}")
        if self._time is not None and time < self._time:
            # Non-monotonic timestamps: hold time still rather than rewinding the filters.
            (log.debug if self._warned else log.warning)(
                "frame time went backwards (%.3f s after %.3f s); holding tracks", time, self._time)
            self._warned = True
            time = self._time
        dt = 0.0 if self._time is None else time - self._time
        self._time = time
        for trk in self._tracks:
            if camera_motion is not None:
                trk.warp(camera_motion)
            trk.predict(dt)
        if detections is not None:
            dets = [d for d in detections if not d.box.is_empty()]
            pairs = self._match(dets, time)
            for trk in self._tracks:
                trk.misses += 1  # undone by update() for the matched ones
            for ti, di in pairs:
                self._tracks[ti].update(dets[di], time)
            matched = {d for _, d in pairs}
            for det in (d for i, d in enumerate(dets) if i not in matched):
                # A box mostly inside a face matched on this frame (a duplicate or a face part) is
                # covered already; as a track it would coast as a growing blur. A real second face
                # starts its own track (with backfill) once it moves out.
                if any(dets[d].box.intersection(det.box) >= _DUPLICATE * det.box.area for _, d in pairs):
                    continue
                self._tracks.append(_Filter(self._next_id, det, time, self.coast))
                self._next_id += 1
        self._tracks = [t for t in self._tracks if time - t.last_hit <= self.hold + EPS]
        for trk in self._tracks:
            trk.cover(time)
        return [trk.snapshot(time) for trk in self._tracks]

    def predict(self, time: float) -> list[Track]:
        """The tracks as ``update(None, time)`` would return them, leaving the tracker unchanged.

        For covering frames at times after the last update (e.g. live output frames between
        detections) from one tracker state. A ``time`` before the last update gives the tracks
        as of that update, as :meth:`update` holds rather than rewinds.
        """
        if not math.isfinite(time):
            raise ValueError(f"time must be finite, got {time!r}")
        if self._time is not None and time < self._time:
            time = self._time
        dt = 0.0 if self._time is None else time - self._time
        return [trk.forecast(dt, time) for trk in self._tracks if time - trk.last_hit <= self.hold + EPS]

    def _match(self, dets: list[Detection], time: float) -> list[tuple[int, int]]:
        if not self._tracks or not dets:
            return []
        from scipy.optimize import linear_sum_assignment

        big = 1e6
        cost = np.full((len(self._tracks), len(dets)), big)
        for i, trk in enumerate(self._tracks):
            pred = trk.predicted_box()
            pcx, pcy = pred.center
            sx, sy, _, _ = trk.position_std()
            # The gate widens with the filter's uncertainty so a coasting face is found again,
            # capped at how far a fast head could go (the live growth, in files too: held to 3
            # sizes/s for unsure faces, the gate left 7 face-frames exposed on the real clips, not
            # 5, and their over-cover moved 2.07x -> 2.05x).
            size = (pred.width + pred.height) / 2
            cap = (LIVE_COAST.grow0 + LIVE_COAST.speed * (time - trk.last_hit)) * size
            norm = max(size + min(_K_SIGMA * math.hypot(sx, sy), cap), 1.0)
            for j, det in enumerate(dets):
                iou = pred.iou(det.box)
                dcx, dcy = det.box.center
                dist = math.hypot(dcx - pcx, dcy - pcy) / norm
                if iou <= 0.0 and dist > _GATE:
                    continue
                cost[i, j] = (1.0 - iou) + dist
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < big]
