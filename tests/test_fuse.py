"""How one face's boxes from overlapping tiles and levels become one (``detect/fuse.py``)."""

from __future__ import annotations

from streamguard.detect.fuse import fuse, unite
from streamguard.types import Box, Detection


def _d(cx: float, cy: float, side: float, score: float) -> tuple[Detection, bool]:
    return Detection(Box.from_center(cx, cy, side, side), score), False


def test_a_smaller_weaker_box_inside_a_face_is_joined_to_it() -> None:
    # The big face is the sure find: a weaker find on part of it widens the box, never narrows it.
    big = Box.from_center(300, 300, 120, 120)
    out = fuse([(Detection(big, 0.9), False), _d(290, 290, 40, 0.6)])
    assert len(out) == 1 and out[0].box.contains(big)


def test_faces_side_by_side_stay_apart_and_views_are_united() -> None:
    assert len(fuse([_d(100, 100, 30, 0.8), _d(160, 100, 30, 0.7)])) == 2
    # Views of a photo frame a face differently: their union is covered, not their mean.
    a, b = Box(100, 100, 130, 130), Box(104, 96, 136, 128)
    (out,) = unite([Detection(a, 0.8), Detection(b, 0.7)])
    assert out.box.contains(a) and out.box.contains(b)
