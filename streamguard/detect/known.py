"""Faces found before and lost: looked for where they were, at a lower bar, for a while.

The video sweep (``detect/sweep.py``) follows each face it finds in a crop of its own on the next
frame, at the models' threshold. A face turning to a profile, looking down, half hidden behind a
hand, blurred by motion or sitting in the dark out of focus scores under the threshold while it is
still there, and the tracker's hold covers it only for ``hold`` seconds. :class:`KnownFaces` looks
for such a face where it was, at a lower bar, for a few seconds after its last proper find, and
keeps it there while its pixels stay as they were when it was last found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Box, Detection
from .changes import ChangeMap
from .tiling import TiledDetector

__all__ = ["KnownFaces"]

#: A face found at this score or more is *sure*: once lost, it is looked for where it was with a
#: lower bar (``SURE_KEEP``) for ``SURE_MEMORY`` seconds after its last sure find.
SURE_SCORE = 0.75
#: The short-range score that finds a lost sure face again in a crop centred on where it was.
SURE_KEEP = 0.3
#: Seconds after its last sure find that a lost sure face is still looked for.
SURE_MEMORY = 2.0
#: A face found at the threshold but under ``SURE_SCORE`` (or a weak find kept), once lost, is
#: looked for where it was at this bar ...
FOUND_KEEP = 0.4
#: ... for this many seconds after it was last found at the threshold.
FOUND_MEMORY = 1.0
#: Seconds a lost face not found again even at its lower bar is still looked for: by then it
#: has most likely left (0.5 s let a sitcom's 70 px face, turned away for longer, go for 3 frames).
SURE_GONE = 1.0
#: At most this many lost faces are looked for at once (the most recently found at their score;
#: the rest are let go).
LOST_MAX = 8
#: A lost face whose pixels have not changed since it was last found is kept where it was, with
#: no model call, for up to this many seconds after that find (see :meth:`KnownFaces.follow`).
STILL_MEMORY = 10.0


@dataclass(slots=True)
class _Known:
    """A face followed once found: its last find, the size it had when last found at its score
    (``SURE_SCORE`` for a sure face, the threshold for another), when that was and when it was
    last found at all, and whether it is sure."""

    face: Detection
    size: tuple[float, float]
    found_at: float
    seen_at: float
    sure: bool
    #: The change map (``ChangeMap.current``) when it was last found at all, if the sweep keeps one.
    seen_map: np.ndarray | None = None

    @property
    def bar(self) -> float:
        """The score that finds it again where it was, once lost."""
        return SURE_KEEP if self.sure else FOUND_KEEP

    @property
    def memory(self) -> float:
        """Seconds after ``found_at`` it is looked for, once lost."""
        return SURE_MEMORY if self.sure else FOUND_MEMORY

    def at_found_size(self) -> Detection | None:
        """The last find at the size it had when found at its score, if that find's size differs
        from it (see :meth:`KnownFaces.follow`)."""
        f, (w, h) = self.face, self.size
        if abs(f.box.width - w) <= 0.05 * w and abs(f.box.height - h) <= 0.05 * h:
            return None
        return Detection(Box.from_center(*f.box.center, w, h), f.score, f.roll)


def _size(d: Detection) -> tuple[float, float]:
    return d.box.width, d.box.height


class KnownFaces:
    """The faces a video's sweep found, each looked for where it was once lost (see :meth:`follow`)."""

    def __init__(self, detector: TiledDetector) -> None:
        self.detector = detector
        #: Faces found before, found or not on the last frame.
        self.faces: list[_Known] = []

    def follow(self, image: np.ndarray, found: list[Detection], now: float,
               changes: ChangeMap | None = None) -> list[Detection]:
        """Faces found before but lost on this frame (upright ``image`` at ``now`` s), found again
        where they were at a lower bar, or kept there while their pixels stay as they were;
        ``found``: this frame's finds; ``changes``: the sweep's change map, on this frame.

        A face the models found a moment ago is a face: when it turns to a profile, looks down,
        blurs with motion or sits in the dark out of focus, its score falls under the threshold
        while it is still there (the sitcom's man eating, 93-100 px, found on some frames and not
        others; a commuter crowd's soft faces of 33-47 px found at 0.5 in one tile and at 0.4-0.5
        in the crop that follows them). A *sure* face (found at ``SURE_SCORE``) is looked for at
        ``SURE_KEEP`` for ``SURE_MEMORY`` seconds after its last sure find, another at
        ``FOUND_KEEP`` for ``FOUND_MEMORY`` seconds after its last find at the threshold. Clutter
        rarely scores ``SURE_SCORE``, and the lower bars hold only at the face's own place, and
        for ``SURE_GONE`` seconds after it was last found at all (a face gone for that long has
        most likely left: looking on at its place cost the 1080p street 2.9 short-range calls a
        frame instead of 2.3, for no more finds).

        A lost face not found again whose pixels (``changes``' block means over its box) have not
        changed since it was last found is kept where it was, for up to ``STILL_MEMORY`` seconds
        after that find: it cannot have left, turned or been hidden without changing them. Once
        its lower bar's time is over it is kept so with no model call (the models give the same
        pixels the same answer). A dark, soft face at the back of a still scene is found now and
        then by a sharpened look (``sweep.SHARPEN``) and by none of the looks between; clutter
        found on still pixels is kept too (a still camera's shelf).
        """
        if self.detector.threshold is not None:
            return []  # a user's own threshold is taken as it is
        current = changes.current if changes is not None else None
        follow: list[_Known] = []
        lost: list[_Known] = []
        kept: list[Detection] = []

        def still(e: _Known) -> bool:
            return (changes is not None and e.seen_map is not None and now - e.seen_at <= STILL_MEMORY
                    and not changes.moved_since(e.face.box, e.seen_map))

        for e in self.faces:
            match = max((f for f in found if f.box.iou(e.face.box) > 0.3), key=lambda f: f.score,
                        default=None)
            if now - e.found_at > e.memory or now - e.seen_at > SURE_GONE:
                if match is None and still(e):
                    kept.append(e.face)  # no need to look: the same pixels as when it was found
                    follow.append(e)
                continue
            if match is None:
                lost.append(e)
            elif match.score >= SURE_SCORE or not e.sure:
                follow.append(_Known(match, _size(match), now, now, match.score >= SURE_SCORE, current))
            else:  # a sure face found under SURE_SCORE: still sure until its memory runs out
                follow.append(_Known(match, e.size, e.found_at, now, True, current))
        lost.sort(key=lambda e: -e.found_at)
        lost = lost[:LOST_MAX]
        looks = (self.detector.look_again(image, [e.face for e in lost], [e.bar for e in lost])
                 if lost else [])
        # A find under the threshold since the last proper one often comes out larger or smaller
        # than the face (a half-hidden face's box), and a crop sized on it can miss the face that
        # a crop sized on its proper find shows (a box a pixel larger lost a half-hidden face on
        # every look in a test). Where it is not found at the first, it is looked for at the second.
        resized = [(i, d) for i, e in enumerate(lost) if looks[i] is None
                   and (d := e.at_found_size()) is not None]
        if resized:
            bars = [lost[i].bar for i, _ in resized]
            second = self.detector.look_again(image, [d for _, d in resized], bars)
            for (i, _), again in zip(resized, second, strict=True):
                looks[i] = again
        for e, again in zip(lost, looks, strict=True):
            if again is not None and not any(again.box.iou(f.box) > 0.3 for f in found):
                kept.append(again)
                e = _Known(again, e.size, e.found_at, now, e.sure, current)
            elif again is None and still(e):
                kept.append(e.face)
            follow.append(e)  # not found: still looked for at its last place for a while
        for f in found:
            if not any(f.box.iou(e.face.box) > 0.3 for e in follow):
                follow.append(_Known(f, _size(f), now, now, f.score >= SURE_SCORE, current))
        self.faces = follow
        return kept
