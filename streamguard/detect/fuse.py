"""Merging one face's boxes from overlapping tiles and levels into one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Box, Detection

__all__ = ["fuse", "unite"]


def fuse(found: Sequence[tuple[Detection, bool]], iou: float = 0.35) -> list[Detection]:
    """Merge detections of one face from overlapping tiles and levels into one box.

    ``found`` pairs a detection (frame pixels) with whether it touched a tile's inner
    edge (the face may be cut there). Cut boxes that share half of themselves or of a
    whole box with it are dropped. Whole boxes with IoU >= ``iou`` fuse by score-weighted
    mean; a box mostly inside another around the same centre (a small face seen at a
    coarse level comes out too big) joins it as the union, so the result covers both,
    unless it is the bigger box and scores clearly lower (then it is that blown-up copy).
    A group of only cut pieces fuses to their union, which covers the face between them.
    """
    whole = [d for d, cut in found if not cut]
    cut = [d for d, c in found if c]
    # The plan sees every face whole in some tile: a cut box sharing half of itself or of a
    # whole box with that box is the same face.
    cut = [d for d in cut if not any(d.box.intersection(w.box) >= 0.5 * min(d.box.area, w.box.area)
                                     for w in whole)]
    out: list[Detection] = []
    for members, pieces in ((whole, False), (cut, True)):
        rest = sorted(members, key=lambda d: -d.score)
        while rest:
            head = rest[0]
            near = [d for d in rest if d.box.iou(head.box) >= iou]
            inside = [d for d in rest if d.box.iou(head.box) < iou and _nested(d.box, head.box, pieces)]
            rest = [d for d in rest if not any(d is g for g in near + inside)]
            if pieces:
                box = Box.bounding(d.box for d in near + inside)
            else:
                wts = np.array([g.score for g in near])
                box = Box(*(wts @ np.array([[g.box.x1, g.box.y1, g.box.x2, g.box.y2] for g in near])
                            / wts.sum()).tolist())
                # A clearly weaker box around a stronger one is the coarse level's blown-up copy.
                inside = [d for d in inside if d.box.area < box.area or d.score > head.score - 0.15]
                box = Box.bounding([box, *(d.box for d in inside)])
            out.append(Detection(box=box, score=head.score, roll=head.roll))
    return out


def unite(found: Sequence[Detection]) -> list[Detection]:
    """Finds of several looks at one picture (a photo's views; its plain and stretched levels)
    merged so that one face's boxes become their union, as a cut face's pieces do in
    :func:`fuse`: each look frames a face differently, and a mean of the boxes could leave part
    of each uncovered."""
    return fuse([(d, True) for d in found])


def _nested(a: Box, b: Box, pieces: bool) -> bool:
    small, big = (a, b) if a.area <= b.area else (b, a)
    inter = a.intersection(b)
    if pieces:  # pieces of one cut face overlap little but share much of the smaller piece
        return inter >= 0.3 * small.area
    (sx, sy), (bx, by) = small.center, big.center
    return inter >= 0.7 * small.area and abs(sx - bx) + abs(sy - by) < 0.35 * (big.width + big.height)
