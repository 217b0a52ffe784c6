"""The tracker as a pipeline stage: covered regions from detections and tracks, scene cuts, and
backfill from a look-ahead window of the frames before a face's first detection."""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import camera
from .camera import CameraMotion
from .colour import pack
from .config import TrackConfig
from .scenecut import CUT_THRESHOLD, SceneCutDetector
from .track import EPS, FILE_COAST, LIVE_COAST, Track, Tracker, to_near_edges
from .types import Box, Frame, Region, Stage

__all__ = ["TrackStage"]

log = logging.getLogger(__name__)

_REFINE_HITS = 3  # backfill along the velocity after each of a young track's first matches


@dataclass(slots=True)
class _Held:
    frame: Frame
    time: float
    shot: int
    #: The camera's motion from the shot's first frame to this one (3x3, see ``camera``).
    pose: np.ndarray


@dataclass(slots=True)
class _Seen:
    """When and in which shot a live track was first found, and its tallest find's height."""

    time: float
    shot: int
    tallest: float


@dataclass(slots=True)
class _Birth:
    time: float
    box: Box
    score: float
    shot: int
    pose: np.ndarray
    velocities: list[tuple[float, float]] = field(default_factory=list)


class TrackStage(Stage):
    """Tracking stage: sets ``frame.regions`` from detections, tracks, scene cuts and backfill.

    With a look-ahead (``TrackConfig.ahead``) over 0, frames are held back up to that many seconds
    so that a new face is also covered in the frames before its first detection. The window holds
    at most ``ceil(ahead * fps) + 1`` frames, kept as 4:2:0 YUV (:func:`~streamguard.colour.pack`):
    at 1080p30 with 0.5 s that is 16 x 3.1 MB = 50 MB instead of 99.5 MB as RGB. Frames leave it
    that way; :class:`~streamguard.anonymize.Anonymizer` covers them in the planes (or unpacks
    each to RGB, where it must draw).
    ``lookahead=0`` hands every frame on at once (live mode).
    """

    def __init__(self, config: TrackConfig | None = None, fps: float = 30.0, *,
                 cut_threshold: float | None = CUT_THRESHOLD) -> None:
        config = TrackConfig() if config is None else config
        if not isinstance(config, TrackConfig):
            raise ValueError(f"config must be a TrackConfig, got {config!r}")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (0 < fps < math.inf):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.config = config
        self.fps = float(fps)
        # With a look-ahead as long as the hold, a face found again is bridged over its whole gap.
        ahead = config.ahead
        bridged = ahead >= config.hold > 0
        self._tracker = Tracker(config.hold, FILE_COAST if bridged else LIVE_COAST)
        self._cuts = SceneCutDetector(cut_threshold) if cut_threshold is not None else None
        self._camera = CameraMotion() if config.follow_camera else None
        self._pose = camera.identity()
        self._window: deque[_Held] = deque()
        self._max_held = math.ceil(ahead * self.fps - 1e-9) + 1 if ahead > 0 else 0
        self._births: dict[int, _Birth] = {}
        self._seen: dict[int, _Seen] = {}
        self._shot = 0
        if config.hold < (config.detect_every - 1) / self.fps:
            log.warning("hold %.3f s is shorter than the detector cadence (every %d frames at %g fps): "
                        "faces are exposed between detections", config.hold, config.detect_every, self.fps)

    @property
    def held_frames(self) -> int:
        """Frames currently held in the look-ahead window."""
        return len(self._window)

    @property
    def max_held_frames(self) -> int:
        """Upper bound on :attr:`held_frames` (0 in live mode)."""
        return self._max_held

    def window_bytes(self, width: int, height: int) -> int:
        """Worst-case memory of the window's images for frames of ``width`` x ``height`` (4:2:0)."""
        return self._max_held * width * height * 3 // 2

    def process(self, frame: Frame) -> list[Frame]:
        t = frame.time if frame.time is not None else frame.index / self.fps
        out: list[Frame] = []
        # A damaged frame's content is not the scene: neither a cut nor a new reference.
        if self._cuts is not None and not frame.damaged and self._cuts(frame.image):
            log.debug("scene cut at frame %d (%.3f s): ending all tracks", frame.index, t)
            self._tracker.reset()
            self._births.clear()
            self._seen.clear()
            self._shot += 1
            if self._camera is not None:
                self._camera.reset()
            # Backfill never crosses a cut, so the old shot's frames can go now.
            out.extend(h.frame for h in self._window)
            self._window.clear()
        motion = None
        if self._camera is not None:
            if frame.damaged:
                self._camera.reset()  # its content says nothing of how the camera moved
            else:
                motion = self._camera(frame)
        if motion is not None:
            self._pose = camera.compose(motion, self._pose)
        detections = frame.detections if frame.detected else None
        tracks = self._tracker.update(detections, t, motion)
        bounds = Box(0, 0, frame.width, frame.height)
        new = tuple(
            Region(trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score)
            for trk in tracks if trk.box.intersection(bounds) > 0
        )
        frame.regions = frame.regions + new  # keep regions other stages added
        if not self._max_held:
            return [*out, frame]
        self._window.append(_Held(frame, t, self._shot, self._pose))
        while self._window and (len(self._window) > self._max_held
                                or self._window[0].time < t - self.config.ahead - EPS):
            out.append(self._window.popleft().frame)
        if self._window and self._window[-1].frame is frame:
            pack(frame)  # it waits: in half the memory (colour.pack; free for a decoded frame)
        self._backfill(tracks, t)  # after the release: it reaches back `lookahead` and no further
        return out

    def flush(self) -> list[Frame]:
        out = [h.frame for h in self._window]
        self._window.clear()
        return out

    def _backfill(self, tracks: list[Track], t: float) -> None:
        young = {trk.id for trk in tracks if trk.hits <= _REFINE_HITS}
        alive = {trk.id for trk in tracks}
        for trk in tracks:
            if not trk.matched:
                continue
            if trk.hits > 1 and trk.prev_box is not None and t - trk.prev_hit > 1.5 / self.fps:
                self._bridge(trk, t)
            if trk.hits == 1:
                self._births[trk.id] = _Birth(t, trk.box, trk.score, self._shot, self._pose)
                self._seen[trk.id] = _Seen(t, self._shot, (trk.found_box or trk.box).height)
                self._fill(trk.id, self._births[trk.id])
            elif trk.hits <= _REFINE_HITS and trk.id in self._births:
                self._births[trk.id].velocities.append(trk.velocity)
                self._fill(trk.id, self._births[trk.id])
            if trk.hits > 1 and self._outgrown(trk, t):
                self._look_behind(trk)
        for tid in [i for i in self._births if i not in young]:
            del self._births[tid]
        for tid in [i for i in self._seen if i not in alive]:
            del self._seen[tid]

    def _outgrown(self, trk: Track, t: float) -> bool:
        """Whether a face's new find says its earlier ones were wrong: a tenth taller than every
        one before it, or on the frame after its first, away from it (IoU < 0.5: not motion).
        Records the find's height as the tallest so far."""
        seen = self._seen.get(trk.id)
        found = trk.found_box or trk.box
        if seen is None:
            return False
        taller = found.height > 1.1 * seen.tallest
        seen.tallest = max(seen.tallest, found.height)
        birth = self._births.get(trk.id)
        moved = (birth is not None and trk.hits == 2 and t - birth.time < 1.5 / self.fps
                 and found.iou(birth.box) < 0.5)
        return taller or moved

    def _look_behind(self, trk: Track) -> None:
        """The face's new box also covers the held frames since it was first found. A face coming
        in through the frame edge is first found by its forehead, and a face cut by the edge with
        a box 0.4 face heights too high (the model sees half a face and its reflection); the
        boxes that come after show where it was."""
        seen = self._seen[trk.id]
        box = trk.box.grown(0.1)
        for held in reversed(self._window):
            if held.time < seen.time or held.shot != seen.shot:
                break
            if held.frame is self._window[-1].frame:
                continue  # the current frame has the box already
            held.frame.regions = (*held.frame.regions, Region(box, "backfill", trk.id, trk.score))

    def _fill(self, track_id: int, birth: _Birth) -> None:
        """(Re)draw the track's backfill region in the held frames before its birth."""
        for held in reversed(self._window):
            if held.time >= birth.time:
                continue
            if held.shot != birth.shot:
                break  # never across a cut
            dt = birth.time - held.time
            bounds = Box(0, 0, held.frame.width, held.frame.height)
            # The birth box (a little larger the further back in time, and stretched to a near
            # frame edge, through which the face most likely came in): right for a face that
            # turned to the camera, and the only guess until a second detection gives a velocity.
            box = to_near_edges(birth.box, held.frame.width, held.frame.height).grown(0.1 + 0.5 * dt)
            # The camera's motion between that frame and the birth: a face standing in the scene
            # was where the picture was, which a swinging camera moves by more than the face.
            back = camera.compose(held.pose, camera.invert(birth.pose))
            moved = not np.allclose(back, np.eye(3))
            if moved:
                box = Box.bounding((box, camera.warp_box(back, birth.box).grown(0.1 + 0.5 * dt)))
            # Back along each velocity estimate (the face's own, the camera's taken out); kept
            # beside the birth box as young velocities are noisy (a face half out of the frame
            # has a box that grows as much as it moves).
            for vx, vy in birth.velocities:
                path = birth.box.shifted(-vx * dt, -vy * dt)
                path = (camera.warp_box(back, path) if moved else path).grown(0.1 + dt)
                if path.intersection(bounds) > 0:  # else the face was not in the frame yet
                    box = Box.bounding((box, path))
            mine = ("backfill", track_id)
            others = tuple(r for r in held.frame.regions if (r.source, r.track_id) != mine)
            held.frame.regions = (*others, Region(box, "backfill", track_id, birth.score))

    def _bridge(self, trk: Track, t: float) -> None:
        """A coasting face found again: also cover the straight path between its two sightings
        in the held frames between them. The coasting guess alone can fall behind a fast face
        (e.g. one entering through the frame edge, whose first boxes are clipped)."""
        assert trk.prev_box is not None
        span = t - trk.prev_hit
        for held in reversed(self._window):
            if held.time >= t:
                continue
            if held.time <= trk.prev_hit:
                break
            if held.shot != self._shot:
                break  # never across a cut
            k = (held.time - trk.prev_hit) / span
            a, b = trk.prev_box, trk.box
            box = a.lerp(b, k)
            # Sized by the larger face side: a clipped box at the edge is narrower than the face.
            side = max(a.width, a.height, b.width, b.height)
            cx, cy = box.center
            box = Box.bounding((box, Box.from_center(cx, cy, side, side))).grown(0.1)
            held.frame.regions = (*held.frame.regions, Region(box, "backfill", trk.id, trk.score))
