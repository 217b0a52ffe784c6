"""Spreading the tiled sweep over frames: the detector's cost per frame, divided.

A full multi-scale sweep of a 1080p frame is hundreds of model calls. In a video
a face does not appear and vanish within a few frames, so each frame runs only
one slice of the sweep (every tile is due once per ``period`` seconds), plus one
tile around each face found on the frame before, so a known face is matched frame
by frame. A new face is found at most ``period`` seconds late; the tracker's
look-ahead backfill (0.5 s) then covers it back to its first frame, which is why
``period`` must stay under the look-ahead window (and under ``hold``, so a face
between two looks stays covered). The first frame runs the whole plan: nothing is known yet,
and a clip shorter than ``period`` is still searched whole; so does a file's last frame, whose
faces no later find can be backfilled over, and the two frames either side of a hard scene cut
(the tracker's backfill never crosses one: a shot is a clip of its own).

A due tile whose pixels have not changed since it last ran is skipped: the model gives the same
answer on the same pixels, so running it again buys nothing. This is what makes a fixed camera
(a classroom, an interview, CCTV) cheap: only the tiles where something moves are looked at
again. "Changed" is judged on a grey map of 8x8 block means (so sensor and compression noise do
not count) against the map as it was when the tile last ran (so slow drift adds up), and every
tile runs again after ``rescan`` seconds whatever happens, so a face the model missed on noisy
pixels gets more chances; and every other run of a tile shows it mirrored left to right
(``MIRROR``), so a rescan of unchanged pixels is a second opinion, not the same answer; from
its third run on unchanged pixels it also gets a sharpened look (``SHARPEN``). A
*quiet* tile, one where no spot scored even ``QUIET`` (0.2, against the models' thresholds of
0.5 and 0.6) when it last ran, waits ``quiet_rescan`` seconds instead: compression noise moves a
score by a few hundredths (tiles the change map calls unchanged on the speed clip, 0-20 s apart:
median 0.01, largest 0.09; no quiet tile rose above 0.25), not from under 0.2 to a find, and any
change of its pixels still makes it run at once (``quiet_rescan`` defaults to 4 x ``rescan``).
On the speed benchmark's 1080p clip 64% of the tiles are quiet, and rescans were over a third of
all model calls (28.2 -> 23.9 calls a frame).

A *weak* find, one the short-range model scores just under its threshold (``Preset.weak``:
0.45-0.5 for balanced), is not a face yet: it is looked at again on the next frames in a crop
centred on it (the face at half of it, where small blurred faces score highest) and kept once
found on ``WEAK_CONFIRM`` frames in a row, then on every frame it is found again. Motion-blurred
passers-by and faces in dim rooms scored so frame after frame on real clips; the look-ahead
backfill covers the frames before it was kept. Clutter that keeps its score on a still picture is
kept too: that is the cost (see ``plan._WEAK``).

A face found that is lost on a later frame is looked for where it was at a lower bar for a
while (``detect/known.py``): a sure one (found at 0.75) at 0.3 for 2 s, any other at 0.4 for 1 s;
and kept there, with no model call, while its pixels stay as they were when it was last found
(up to 10 s).

Change inside the head of a face found on the frame before does not count: that face is
looked at again on every frame in its own crop, and no other face can appear inside a
head without also changing pixels around it (a face in front of it is at least as large,
one behind it is hidden). Without this, a talking or nodding head made every tile over it
run again at every level, on every frame.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..scenecut import SceneCutDetector
from ..types import Box, Detection, Frame, Stage
from .base import detect_upright
from .changes import QUIET, QUIET_RESCAN, ChangeMap
from .known import KnownFaces
from .plan import Level, Tile, TileKey
from .shown import Shown
from .tiling import TiledDetector

__all__ = ["SweepDetectStage", "ChangeMap"]

log = logging.getLogger(__name__)

def _best_tile(level: Level, box: Box) -> Tile | None:
    """The tile of ``level`` that holds ``box`` with the most room around it."""
    best, best_margin = None, -math.inf
    for t in level.tiles:
        margin = min(box.x1 - t.box.x1, box.y1 - t.box.y1, t.box.x2 - box.x2, t.box.y2 - box.y2)
        if margin > best_margin:
            best, best_margin = t, margin
    return best


def _level_for(levels: list[Level], height: float) -> Level | None:
    """The upright level whose face range holds ``height`` (else the nearest one)."""
    upright = [lv for lv in levels if lv.angle == 0]
    if not upright:
        return None

    def distance(lv: Level) -> float:
        if lv.min_face <= height <= lv.max_face:
            return 0.0
        return abs(math.log(max(height, 1.0) / (lv.min_face if height < lv.min_face else lv.max_face)))

    return min(upright, key=distance)


#: Each swept tile is shown to the model mirrored left to right on every other run. BlazeFace is
#: not symmetric: a small, turned or half-hidden face one view misses the other often finds (a
#: photo's mirrored view took the faces the real photos left exposed 91 -> 51). A tile that runs
#: again on unchanged pixels gets a second opinion instead of the same answer, and the two views
#: alternate at no cost in model calls; a face either finds is then followed in its own crop.
#: A mirrored tile gives finds at the threshold only, not weak finds or full-range candidates:
#: with those too, on a phone video of two women talking at a table (benchmarks/fresh.py's
#: ``v_dj_vertical_talk``) false finds on shelves and hands, followed and coasting, took the
#: picture changed 21% -> 36% (without them 24%), the generated sample's change far from every
#: face 3.5 -> 5.2 grey levels (4.3).
MIRROR = True

#: A tile that runs on pixels unchanged since its last two runs (the model has seen them as
#: they are and mirrored) gets, on each such run, a second look sharpened and the other
#: way round from its due view (``canvas.SHARP_AMOUNT``): a face out of focus and dark at the back
#: of a still scene (a stage's, a room's) is what a sharpened view finds and the plain ones miss.
#: A second look, not a view in turn: shown sharpened on every other run in place of the mirror,
#: tiles lost what only the mirror finds (docs/recall.md: a sitcom's 72-80 px woman, a boy of
#: 35-39 px); and the four views taking turns on unchanged pixels lost dark 40 px faces that the
#: plain view found now and then on compression noise. It costs a model call a tile at most
#: every second (``rescan``), only where nothing moves (given on every other such run only, it
#: covered 6016 of the 6400 frames of ``benchmarks/softparts.py``'s 8 s still scenes against
#: 6044, and no difference in time showed on fixed cameras). Finds at the threshold only, as
#: mirrored ones.
SHARPEN = True

#: A weak find (``Preset.weak``) is kept once found on this many frames in a row.
WEAK_CONFIRM = 3
#: At most this many weak finds are followed at once (the best-scoring), one short-range call each.
WEAK_MAX = 8

class _Slice:
    """Adapter that runs one chosen set of tiles and remembers what it found (upright pixels)."""

    def __init__(self, detector: TiledDetector, stage: SweepDetectStage, now: float) -> None:
        self.detector = detector
        self.stage = stage
        self.now = now
        self.tiles: list[Tile] = []
        #: Faces found at the threshold (or weak ones kept) ...
        self.found: list[Detection] = []
        #: ... and lost faces found again under it (``KnownFaces.follow``).
        self.refound: list[Detection] = []

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        self.tiles = self.stage.tiles_for(w, h, image=image, now=self.now)
        near = self.stage.near
        peaks: dict[TileKey, float] = {}
        weak: list[Detection] = []
        found = (self.detector.detect(image, tiles=self.tiles, near=near, peaks=peaks, weak=weak,
                                      mirrored=self.stage.mirrored, sharpened=self.stage.sharpened)
                 if self.tiles or near else [])
        self.stage.ran(self.tiles, self.now, peaks)
        if self.stage.sharpened:
            # A second look at still tiles, sharpened (see ``SHARPEN``), the other way round.
            keys = self.stage.sharpened
            again = self.detector.detect(image, tiles=[t for t in self.tiles if t.key in keys],
                                         mirrored=keys - self.stage.mirrored, sharpened=keys)
            found += [d for d in again if not any(d.box.iou(f.box) > 0.3 for f in found)]
        self.found = found + self.stage.follow_weak(image, found, weak)
        changes = self.stage.changes if self.stage._gated else None
        self.refound = self.stage.known.follow(image, self.found, self.now, changes)
        return self.found + self.refound

    def close(self) -> None:
        pass


class SweepDetectStage(Stage):
    """Runs a slice of the tiled sweep on each frame the detector runs on (see module docs)."""

    def __init__(self, detector: TiledDetector, *, fps: float, period: float = 0.25, every: int = 1,
                 rescan: float = 1.0, quiet_rescan: float | None = None, levels: bool = True) -> None:
        if period < 0:
            raise ValueError(f"period must be >= 0 seconds, got {period}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if rescan < 0:
            raise ValueError(f"rescan must be >= 0 seconds, got {rescan}")
        if quiet_rescan is None:
            quiet_rescan = QUIET_RESCAN * rescan
        if quiet_rescan < rescan:
            raise ValueError(f"quiet_rescan must be >= rescan ({rescan} s), got {quiet_rescan}")
        self.detector = detector
        self.every = every
        self.fps = fps
        #: What the detector is shown of a dim or tinted picture, and of a soft one (the change map
        #: sees the same).
        self.shown = Shown(levels)
        #: Detector runs per full sweep.
        self.slices = max(1, round(period * fps / every))
        #: Seconds after which an unchanged tile runs anyway; 0 runs every due tile.
        self.rescan = rescan
        #: Seconds after which an unchanged quiet tile runs anyway (see module docs).
        self.quiet_rescan = quiet_rescan
        threshold = min(detector.score(m) for m in ("short", "full"))
        # Well under the threshold whatever it is: a user's lower threshold makes fewer tiles quiet.
        self.changes = ChangeMap(quiet=min(QUIET, 0.4 * threshold))
        self._gated = False
        self._runs = 0
        #: A file's frame held back one step, so the last one is known as the last (:meth:`process`).
        self._held: Frame | None = None
        #: Hard cuts, each of whose sides is searched whole like a file's ends (:meth:`process`).
        self._cuts = SceneCutDetector()
        self._plans: dict[tuple[int, int], tuple[list[list[Tile]], list[Level]]] = {}
        #: Known faces the next run looks at in their own crop (set by :meth:`tiles_for`) ...
        self.near: list[Detection] = []
        #: ... and its tiles shown mirrored left to right; the tiles whose next run is mirrored.
        self.mirrored: set[TileKey] = set()
        self._flipped: set[TileKey] = set()
        #: ... and its tiles looked at again sharpened; each tile's runs in a row on unchanged pixels.
        self.sharpened: set[TileKey] = set()
        self._unchanged: dict[TileKey, int] = {}
        self._new_shot()
        preset = detector.preset
        #: The preset whose weak finds are followed (None: a user's own threshold, or none).
        self.weak = preset if preset.weak is not None and detector.threshold is None else None
        #: Tiles due and tiles run, for the benchmark's account of what the change map saves.
        self.due = 0
        self.run = 0

    def _plan(self, width: int, height: int) -> tuple[list[list[Tile]], list[Level]]:
        key = (width, height)
        if key not in self._plans:
            levels = self.detector.plan(width, height)
            # Interleaved, so each slice samples the whole frame rather than one band of it; the
            # whole-frame passes are spread too (a big known face still gets its tile every frame).
            spread = [t for lv in sorted(levels, key=lambda lv: -len(lv.tiles)) for t in lv.tiles]
            slices = [spread[i :: self.slices] for i in range(self.slices)]
            self._plans[key] = (slices, levels)
            log.debug("sweep %dx%d: %d tiles spread over %d frames", width, height, len(spread), self.slices)
        return self._plans[key]

    def tiles_for(self, width: int, height: int, *, image: np.ndarray | None = None,
                  now: float | None = None) -> list[Tile]:
        """The tiles of the next run, for an upright frame of ``width`` x ``height``.

        With ``image`` (the upright frame) and ``now`` (its time in seconds), due tiles whose
        pixels did not change since they last ran are left out.
        """
        slices, levels = self._plan(width, height)
        gate = image is not None and now is not None and self.rescan > 0
        self._gated = gate
        if gate:
            self.changes.update(image, [d.box for d in (*self._recent, *self._refound)])
        # The first run takes the whole plan: nothing is known yet, and a clip shorter than
        # ``period`` would otherwise never be searched whole (a 1280x720 clip of one frame left 9 of
        # its 15 faces of 26 px uncovered, one of four frames 12 of 60 face-frames).
        due = [t for part in slices for t in part] if self._whole else slices[self._runs % self.slices]
        self.due += len(due)
        chosen: dict[TileKey, Tile] = {}
        for t in due:
            if not gate:
                chosen[t.key] = t
                continue
            # Each due tile's pixels compared once: whether it runs, and its runs on unchanged ones.
            moved = self.changes.moved(t)
            if moved or self.changes.rescan_due(t, now, self.rescan, self.quiet_rescan):
                chosen[t.key] = t
                self._unchanged[t.key] = 0 if moved else self._unchanged.get(t.key, 0) + 1
        swept = set(chosen)
        self.near = []
        for face in self._recent:
            box = face.box
            lv = _level_for(levels, box.height)
            if lv is not None and lv.model != "short" and self.detector.can_crop(width, height, box):
                self.near.append(face)  # a short-range call instead of a full-range tile
                continue
            t = _best_tile(lv, box) if lv is not None else None
            if t is not None:
                chosen[t.key] = t
                swept.discard(t.key)  # a known face is followed in the view that found it
        # Each swept tile's next run shows it the other way round (see ``MIRROR``).
        self.mirrored = swept & self._flipped if MIRROR else set()
        self._flipped ^= swept
        # Every run on unchanged pixels from the third (see ``SHARPEN``).
        self.sharpened = ({k for k in swept if self._unchanged.get(k, 0) >= 2}
                          if SHARPEN else set())
        tiles = list(chosen.values())
        self.run += len(tiles) + len(self.near) + len(self.sharpened)  # model calls, second looks too
        return tiles

    def follow_weak(self, image: np.ndarray, found: list[Detection],
                    weak: list[Detection]) -> list[Detection]:
        """Weak finds (see ``Preset.weak``) found again on this frame (upright ``image``) that have
        now been found on ``WEAK_CONFIRM`` frames in a row: they are kept, as faces. ``found``:
        this frame's finds; ``weak``: this frame's new weak finds."""
        if self.weak is None:
            return []
        bar = self.weak.weak_bar
        kept: list[Detection] = []
        follow: list[tuple[Detection, int]] = []
        # A weak find that is a proper find now is followed as a known face instead.
        todo = [(d, n) for d, n in sorted(self._weak, key=lambda e: -e[0].score)[:WEAK_MAX]
                if not any(f.box.iou(d.box) > 0.3 for f in found)]
        looks = self.detector.look_again(image, [d for d, _ in todo], [bar()] * len(todo))
        for (_, n), again in zip(todo, looks, strict=True):
            if again is None or again.score < bar(again.box.height):
                continue
            follow.append((again, n + 1))
            if n + 1 >= WEAK_CONFIRM:
                kept.append(again)
        for d in weak:
            if d.score >= bar(d.box.height) and not any(
                    d.box.iou(o.box) > 0.3 for o in [*found, *(e for e, _ in follow)]):
                follow.append((d, 1))
        self._weak = follow
        return kept

    def ran(self, tiles: list[Tile], now: float, peaks: dict[TileKey, float]) -> None:
        """The change map's account of a run of the tiles :meth:`tiles_for` chose, with their
        best scores (``TiledDetector.detect``'s ``peaks``)."""
        if self._gated:
            self.changes.ran(tiles, now, peaks)

    def _new_shot(self) -> None:
        """Nothing known yet: the state of the first frame, and of the first after a cut, where
        what was followed in the old shot has no place."""
        #: The next run takes the whole plan (the first frame, and a file's last: see :meth:`flush`).
        self._whole = True
        #: The last run's finds, each looked at again in its own crop ...
        self._recent: list[Detection] = []
        #: ... and its lost faces found again under the threshold: ``KnownFaces`` looks for
        #: them (their own crop would ask for the threshold).
        self._refound: list[Detection] = []
        #: Weak finds followed frame by frame, each with the frames in a row it was found on.
        self._weak: list[tuple[Detection, int]] = []
        #: Faces found before, looked for where they were once lost.
        self.known = KnownFaces(self.detector)

    def detect(self, image: np.ndarray, rotation: int, now: float) -> list[Detection]:
        """One run: this slice's tiles and the known faces, on ``image`` (stored orientation)
        taken at ``now`` seconds. Boxes in stored pixels."""
        sweep = _Slice(self.detector, self, now)
        found = detect_upright(sweep, self.shown(image), rotation)
        self._recent = sweep.found
        self._refound = sweep.refound
        self._runs += 1
        self._whole = False
        return found

    def process(self, frame: Frame) -> list[Frame]:
        # One frame is held back so that the last is known as the last when the stream ends, and
        # the last of a shot as the last when the next frame is a cut. A damaged frame's content
        # is not the scene (as for the tracker's own cut detector).
        cut = not frame.damaged and self._cuts(frame.image)
        held, self._held = self._held, frame
        if held is None:
            return []
        self._whole = self._whole or cut
        out = [self(held)]
        if cut:
            # The new shot's first frame, whose faces no earlier find is backfilled over either.
            log.debug("scene cut at frame %d: the frames either side run the whole plan", frame.index)
            self._new_shot()
        return out

    def flush(self) -> list[Frame]:
        """The file's last frame, searched with the whole plan: a face that came into the picture
        in the last ``period`` seconds may not have had its slice yet, and no later find will be
        backfilled over it."""
        held, self._held = self._held, None
        if held is None:
            return []
        self._whole = True
        return [self(held)]

    def __call__(self, frame: Frame) -> Frame:
        if frame.index % self.every and not self._whole:
            return frame
        now = frame.time if frame.time is not None else frame.index / (self.fps or 30.0)
        frame.detections = tuple(self.detect(frame.image, frame.rotation, now))
        frame.detected = True
        return frame
