"""Tile plans: which parts of a frame, at which scales and turns, the model is shown.

BlazeFace sees a 192x192 (full-range) or 128x128 (short-range) copy of its input and finds
faces from ~18 px up to ~75% of that input. A plan resizes the frame into *levels*, each cut
into model-sized tiles that overlap by the largest face of the level plus context, so every
face lies whole inside some tile. A :class:`Preset` says how fine and how wide to look; the
measured history of these choices is in ``docs/design.md`` ("Tiling history").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2

from ..types import Box

__all__ = ["MODEL_INPUT", "MODEL_MIN", "View", "Preset", "PRESETS", "Tile", "TileKey", "Level", "positions"]

#: Model input side in pixels.
MODEL_INPUT = {"full": 192, "short": 128}
#: Smallest face (px, in model input) each model finds reliably (measured: ~90% at 16, ~98% at 20).
MODEL_MIN = {"full": 20, "short": 18}


@dataclass(frozen=True, slots=True)
class View:
    """One pass of a photo plan: the picture as it is or mirrored left to right, with every
    level's face range times ``shift``. BlazeFace finds a small, turned or half-hidden face in
    one view and misses it in another: it is not symmetric, and a face's size against its
    level's (where it lands in the tile, how far it is scaled) changes its score too."""

    mirrored: bool = False
    #: 2 ** 0.5 puts the levels halfway (in scale) between the plain view's, which span 2x each.
    shift: float = 1.0
    #: Largest upscale of the picture in this view (None: the preset's ``max_upscale``).
    upscale: float | None = None
    #: This view's levels stop at faces this large (frame px; None: they run to the whole frame).
    max_face: float | None = None


@dataclass(frozen=True, slots=True)
class Preset:
    """How hard to look. ``min_face`` is in frame pixels at 1080p."""

    min_face: int
    #: Model per level, finest first; the last one serves all coarser levels.
    models: tuple[str, ...] = ("full",)
    #: Face size range covered by one level (max/min); 2 minimises tiles per frame.
    ratio: float = 2.0
    #: Tile overlap as a multiple of the largest face of the level: the face plus context.
    context: float = 1.5
    #: Extra passes with the image turned by these angles (degrees), for tilted heads.
    angles: tuple[float, ...] = ()
    #: Smallest face for which the rotated passes run.
    angle_min_face: int = 0
    #: Largest upscale of the frame: blown-up faces look blurred to the model.
    max_upscale: float = 1.25
    #: Extra passes with the image turned by quarter turns (90, 180, 270 degrees) for faces lying
    #: on their side or upside down (a camera held sideways, a person lying down), which
    #: BlazeFace, trained on upright faces, finds only now and then.
    turns: tuple[float, ...] = ()
    #: The quarter-turned passes run on the levels whose smallest face is at least this (at 1080p,
    #: like ``min_face``): each turn costs what the upright levels it repeats do.
    turn_min_face: int = 0
    #: Whether ``min_face`` and ``turn_min_face`` grow with frames larger than 1080p (video: 4K
    #: costs what 1080p does), or are taken as they are (photos: a back row stays small however
    #: many pixels the camera has).
    scaled: bool = True
    #: Minimum score of the short- and full-range models' finds, unless the user gives a threshold.
    #: MediaPipe's own are 0.5 and 0.6.
    scores: tuple[float, float] = (0.5, 0.6)
    #: Full-range finds from this score up, under the model's own, are kept when the short-range
    #: model finds them again in a crop centred on them (None: no such second chance).
    candidate: float | None = None
    #: Short-range finds from this score up, under the model's own, are *weak*: in video they are
    #: looked at again on the next frames and kept once found on ``WEAK_CONFIRM`` frames in a row
    #: (see ``detect/sweep.py``; None: dropped, as in photos).
    weak: float | None = None
    #: Short-range finds at least :data:`WEAK_LARGE_FACE` px tall are weak from this lower score
    #: (None: from ``weak`` whatever their size; used only where ``weak`` is set).
    weak_large: float | None = None
    #: The passes of the plan over a still image, whose finds are merged (see :class:`View`).
    views: tuple[View, ...] = (View(),)
    #: The plan for still images, where one frame may take the time a few video frames do.
    still: Preset | None = None

    def score(self, model: str) -> float:
        """The minimum score of ``model`` ("short" or "full")."""
        return self.scores[0] if model == "short" else self.scores[1]

    def weak_bar(self, height: float | None = None) -> float | None:
        """The score from which a short-range find ``height`` px tall is weak; with no height, the
        lowest such score of any size (None: no weak finds)."""
        if self.weak is None:
            return None
        if self.weak_large is not None and (height is None or height >= WEAK_LARGE_FACE):
            return min(self.weak, self.weak_large)
        return self.weak


#: Photos: on real ones (benchmarks/real.py) faces turned, lit badly, small or partly hidden often
#: score 0.35-0.6 in their tile; lower scores let in clutter. On the 26 real photos (773 faces),
#: balanced's photo plan exposed 113 faces at 0.4/0.45 and 91 at 0.35/0.45, covering 1.16x and
#: 1.58x the faces' own area outside them. Video keeps MediaPipe's 0.5/0.6: a false find there is
#: followed and held, and on the real clips 0.45 for the short-range model exposed more
#: face-frames (3 against 0 of 630) and covered 2.8x the faces' area around them against 1.5x.
_STILL_SCORES = (0.35, 0.45)

#: Photos are searched in three views: as they are, mirrored, and with the levels shifted half a
#: level. On the 26 real photos (773 faces, benchmarks/real.py) balanced's photo plan left 91
#: faces exposed in the plain view alone, 51 with the mirror too and 39 with all three, covering
#: 1.58x, 2.35x and 2.57x the faces' own area outside them, for 1x, 2x and 3x the detection
#: time: worth it for a photo, not per video frame. (Today's 15 also take recheck.judges
#: and the finer plan below.) thorough adds a fourth view, shifted and mirrored: its photos
#: 13 -> 11 exposed, over-cover 3.55x -> 3.86x, a third more time.
#:
#: A fourth view looks closer at the smallest faces: levels for 6-24 px faces, the picture
#: upscaled up to 3x (a 9-12 px face reaches the short-range model at 27-36 px, not 20-27 px).
#: On the 26 real photos it took the faces left exposed 8 -> 3 of 770 (under 16 px: 7 -> 2; the
#: crowd in the volleyball stands, the back rows of a parade), over-cover 3.71x -> 3.99x; its
#: coarser levels as well (a whole fourth pyramid) found nothing more and blurred a little more.
_ZOOM = View(shift=0.75, upscale=3.0, max_face=24.0)
_VIEWS = (View(), View(mirrored=True), View(shift=2 ** 0.5), _ZOOM)
_ALL_VIEWS = (*_VIEWS, View(mirrored=True, shift=2 ** 0.5))


#: Video: full-range finds of 0.4-0.6 get a second look by the short-range model (see
#: ``Preset.candidate``). On real clips no benchmark had tuned for (a sitcom, a handheld cafeteria
#: clip), faces looking down, in profile or behind a hand at 60-100 px scored 0.2-0.5 in their
#: full-range tiles, and 0.65-0.75 for the short-range model in a crop with the face at a third
#: to a half of it. Confirmed at 0.65 (at 0.5, on the shop-aisle clip the short-range model took
#: shelves of cups for faces: its over-cover 61x -> 120x the faces' area).
_CANDIDATE = 0.4

#: Video: short-range finds of 0.45-0.5 (thorough: 0.4-0.5) are followed frame by frame in their
#: own crop and kept once found on ``sweep.WEAK_CONFIRM`` (3) frames in a row (``Preset.weak``).
#: On real clips no setting was tuned on (benchmarks/fresh.py: a handheld Paris street at 50 fps,
#: an arm-wrestling clip, two phone videos), motion-blurred passers-by of 20-30 px and faces in
#: dim rooms scored 0.4-0.5 frame after frame: proposals left exposed 263 -> 137 (>= 32 px 89 ->
#: 45) at 0.45, 84 (26) at 0.4; the real benchmark's clips covered 1.85x the faces' area around
#: them before, 2.07x at 0.45 and 2.80x at 0.4 (the shop aisle's cups), with 3 frames in a row;
#: 4 frames at 0.4 gave 131 (33) and 2.50x.
_WEAK = 0.45
#: ... and from 0.4 for finds of at least ``WEAK_LARGE_FACE`` px (frame pixels), in ``balanced``.
#: What 0.4 let in on the real clips that 0.45 did not was partly small: a fist of 10-15 px on a
#: classroom desk, kept on every frame (that clip's over-cover 19.6x -> 28.8x at 0.4 for every
#: size, 19.6x with the size bar); what it found on the fresh clips was faces of 24-60 px turned
#: to a profile, looking down or backlit (a canteen, a cafeteria, a sitcom's diners, a boy at a
#: desk). benchmarks/fresh.py, ten clips: 422 -> 300 proposals exposed, >= 32 px 113 -> 63 (with
#: the focus change of the same day); the real clips' over-cover 2.76x -> 3.42x (patterned
#: shirts of 24-80 px on walking2, shelves in the shop); a bar of 32 px instead: 3.19x, and
#: faces of 24-31 px left on the arm-wrestling clip (19 exposed against 9). About 10% more time
#: on the 1080p street: 3.2 more short-range crops a frame.
_WEAK_LARGE = 0.4
WEAK_LARGE_FACE = 24
_WEAK_THOROUGH = 0.4

_TURNS = (90.0, 180.0, 270.0)
# Video turns only the levels of faces from 160 px (1080p): turning the 80-160 px level too (8
# full-range tiles a turn) took balanced at 1080p to 133 CPU ms a frame, against 120 without it
# and 110 with no turns (benchmarks/speed.py), and on a generated clip faces lying down were
# covered from 100 px up without it (upright tiles find some; a face once found is followed in a
# turned crop).
# balanced's photo plan looks for faces from 8 px, the picture upscaled up to 2.25x (a 9 px face
# reaches the short-range model at 20 px): on the real photos 26 -> 15 of 773 faces exposed
# against 10 px and 2x (most of them 9-12 px faces in a crowd in the stands), over-cover 3.20x ->
# 3.14x, detection 1.25-1.45x as long. thorough's adds more tilted and turned passes.

PRESETS: dict[str, Preset] = {
    "fast": Preset(min_face=32, models=("short", "full"), turns=_TURNS, turn_min_face=160,
                   still=Preset(min_face=16, models=("short", "full"), turns=_TURNS, turn_min_face=64,
                                scaled=False, scores=_STILL_SCORES)),
    "balanced": Preset(min_face=20, models=("short", "full"), turns=_TURNS, turn_min_face=160,
                       candidate=_CANDIDATE, weak=_WEAK, weak_large=_WEAK_LARGE,
                       still=Preset(min_face=8, models=("short", "short", "full"), max_upscale=2.25,
                                    angles=(-35.0, 35.0), angle_min_face=48, turns=_TURNS,
                                    turn_min_face=48, scaled=False, scores=_STILL_SCORES, views=_VIEWS)),
    "thorough": Preset(min_face=16, models=("short", "full"), angles=(-35.0, 35.0), angle_min_face=20,
                       turns=_TURNS, turn_min_face=40, candidate=_CANDIDATE, weak=_WEAK_THOROUGH,
                       still=Preset(min_face=8, models=("short", "short", "full"), max_upscale=2.25,
                                    angles=(-35.0, 35.0), angle_min_face=24, turns=_TURNS,
                                    turn_min_face=32, scaled=False, scores=_STILL_SCORES, views=_ALL_VIEWS)),
}


#: A tile's identity within a plan: level, x, y (see :attr:`Tile.key`).
TileKey = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Tile:
    """One model call: the square at ``x, y`` (level pixels) of level ``level``; ``box`` is
    the region of the frame it shows (the bounding box for a rotated level)."""

    level: int
    x: int
    y: int
    box: Box

    @property
    def key(self) -> TileKey:
        """What tells this tile from every other of its plan (``box`` follows from it)."""
        return (self.level, self.x, self.y)


@dataclass(frozen=True, slots=True)
class Level:
    """One pyramid level: the frame scaled by ``scale`` (and turned by ``angle``), cut into
    ``size`` px tiles overlapping by ``overlap`` px, for faces ``min_face..max_face`` frame px."""

    index: int
    scale: float
    angle: float
    model: str
    size: int
    overlap: int
    min_face: float
    max_face: float
    canvas: tuple[int, int]
    tiles: tuple[Tile, ...]
    #: Border added around the scaled frame (level px): mirrored, so the model sees faces cut
    #: by the frame edge as whole; or blank, to shrink faces that fill the frame.
    pad: int = 0
    mirror: bool = True
    #: Finds scoring under this are dropped (the plan's score for the level's model).
    min_score: float = 0.0

    @property
    def border(self) -> int:
        """The OpenCV border mode of the padding (see ``mirror``)."""
        return cv2.BORDER_REFLECT_101 if self.mirror else cv2.BORDER_CONSTANT

    def resized(self, w: int, h: int) -> tuple[int, int]:
        """Size of a ``w`` x ``h`` frame scaled to this level, before it is turned or padded."""
        return max(1, round(w * self.scale)), max(1, round(h * self.scale))


def positions(length: int, size: int, overlap: int) -> list[int]:
    """Tile starts covering ``0..length`` with at least ``overlap`` px shared, spread evenly."""
    if length <= size:
        return [0]
    n = math.ceil((length - overlap) / (size - overlap))
    return [round(i * (length - size) / (n - 1)) for i in range(n)]
