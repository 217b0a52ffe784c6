"""Which of a sweep's finds need a second look before they are kept, and whose.

A second look is :meth:`~streamguard.detect.tiling.TiledDetector.verify`: a model shown a crop
centred on the find, the face at a third and at half of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Box, Detection
from .base import BlazeFaceDetector
from .plan import MODEL_INPUT

__all__ = ["CANDIDATE_CONFIRM", "SecondLook", "judges", "second_look", "centred_finds", "fold_in"]

#: Large low-score boxes are re-checked: in tiles, blurred clutter a few times larger than a face
#: sometimes scores 0.6-0.7, and one such box covers 1-5% of a 1080p frame. Real faces that large
#: score higher or pass the re-check (>99%).
VERIFY_BELOW = 0.75
VERIFY_MIN_FACE = 48
#: A face found lying on its side or upside down (roll beyond this many degrees) is re-checked
#: below ``TURNED_SURE``: on cluttered pictures the quarter-turned passes score clutter up to ~0.8.
TURNED_ROLL = 60.0
TURNED_SURE = 0.9
#: The short-range score that confirms a full-range candidate (``Preset.candidate``, plan.py).
CANDIDATE_CONFIRM = 0.65


@dataclass(frozen=True, slots=True)
class SecondLook:
    """The models to ask, in turn (one finding it again keeps the find), and the score they need
    (None: their own)."""

    judges: tuple[str, ...]
    bar: float | None = None


def judges(other: str, still: bool) -> tuple[str, ...]:
    """The models whose second look keeps a find that needs one: the other model's (each
    repeats its own mistakes), and in a photo either model's. On the real photos the
    full-range model turned down real profiles and heads tilted back of 40-100 px, which the
    short-range one found again (benchmarks/real.py, three views: faces of 32 px and more
    left exposed 9 -> 2, all 39 -> 26 of 773), for more clutter kept (2.57x -> 3.20x the faces'
    area changed outside them). A video's face gets many looks, and a false find there is
    followed and held: it keeps the stricter test."""
    if not still:
        return (other,)
    return (other, "short" if other == "full" else "full")


def second_look(d: Detection, seen: set[str], frame: tuple[int, int], still: bool,
                scores: dict[str, float], candidates: bool) -> SecondLook | None:
    """The second look fused find ``d`` needs, or None to keep it as it is. ``seen``: the models
    whose tile finds make it up; ``scores``: each model's own minimum score; ``candidates``:
    whether full-range finds under their model's score were let through as candidates
    (``Preset.candidate``). A fused box scoring under both models' scores can only be such a
    candidate; between them, it is one when the short-range model did not also find it."""
    w, h = frame
    large = d.score < VERIFY_BELOW and d.box.height >= max(VERIFY_MIN_FACE, 0.04 * min(w, h))
    turned = d.score < TURNED_SURE and abs(d.roll) > TURNED_ROLL
    candidate = candidates and d.score < scores["full"] and (d.score < scores["short"] or seen == {"full"})
    if not (large or turned or candidate):
        return None
    other = "full" if seen == {"short"} else "short"
    return SecondLook(judges(other, still), CANDIDATE_CONFIRM if candidate else None)


def centred_finds(model: BlazeFaceDetector, image: np.ndarray, box: Box, roll: float, min_score: float,
                  ks: tuple[float, ...], *, fold: bool = True) -> Iterator[Detection]:
    """``model``'s finds (frame pixels) in crops of ``image`` centred on ``box``, the face at 1/k
    of each, turned by the quarter turn nearest ``roll``; crop by crop, so a caller may stop early.
    Past the frame's edges the crops are mirrored: finds there are folded back in (:func:`fold_in`),
    unless ``fold`` is False (then they are as the model found them, reflections included)."""
    cx, cy = box.center
    h, w = image.shape[:2]
    turns = round(roll / 90) % 4
    size = MODEL_INPUT[model.model]
    for k in ks:
        side = k * max(box.width, box.height)
        sc = size / side
        # Shrink most of the way with INTER_AREA first; warpAffine alone would alias. Only the
        # crop's own part of the frame (and a few pixels of support) is shrunk: shrinking the
        # whole 1080p frame cost ~10 ms a crop, most of a video frame's verifying.
        pre = min(1.0, 2 * sc)
        reach = side / 2 + 2 / pre + 2
        x0, y0 = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
        x1, y1 = min(w, math.ceil(cx + reach)), min(h, math.ceil(cy + reach))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        src = image[y0:y1, x0:x1]
        if pre < 1.0:
            src = cv2.resize(src, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
        # The crop's pixels are frame pixels scaled by sc about the box centre; src's pixel 0 is
        # frame pixel x0 (y0). Beyond the frame the border is mirrored: the part cut is only
        # clipped at the frame's own edges.
        m = np.array([[sc / pre, 0, size / 2 - (cx - x0) * sc], [0, sc / pre, size / 2 - (cy - y0) * sc]])
        crop = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
        found, _ = model.detect_peak(np.ascontiguousarray(np.rot90(crop, turns)), min_score)
        for d, _ in found:
            b = d.box.rotated(360 - 90 * turns, size, size)  # back into the crop as cut
            centre = cx + (b.center[0] - size / 2) / sc, cy + (b.center[1] - size / 2) / sc
            found_box = Box.from_center(*centre, b.width / sc, b.height / sc)
            if fold:
                found_box = fold_in(found_box, w, h)
            if not found_box.is_empty():
                yield Detection(found_box, d.score, roll)


def fold_in(box: Box, width: int, height: int) -> Box:
    """``box`` in a ``width`` x ``height`` frame whose border was mirrored: with the mirror image
    of its part past an edge, clipped to the frame.

    What the model finds past the edge is a reflection of the frame's own pixels: a face near the
    edge shows there too. Taken as it is, a crop centred on it finds it again further out, and a
    face followed that way was chased out of the picture while it stayed by the edge uncovered
    (an arm-wrestling clip's 79 px face, three frames). A photo's second looks are not folded
    (``TiledDetector.verify``): folded, more clutter by its edges passed (real photos 4.80x ->
    5.02x the faces' area changed, 0 of 770 exposed either way).
    """
    x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
    if x1 < 0:
        x2 = max(x2, -x1)
    if x2 > width:
        x1 = min(x1, 2 * width - x2)
    if y1 < 0:
        y2 = max(y2, -y1)
    if y2 > height:
        y1 = min(y1, 2 * height - y2)
    return Box(x1, y1, x2, y2).clipped(width, height)
