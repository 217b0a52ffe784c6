"""Gaps between covered heads too narrow to hold a head are covered too.

In a crowd photo every head around a half-hidden face is found and blurred, and the face itself,
only its eyes showing between hair and shoulders, is not: it is left as a sharp hole in the blur
(the real benchmark's last exposed face of 32 px and more, a 33 px face in parade873). Such a
hole is found without the detector: a morphological closing of the covered area, with a disk
whose radius follows the size of the nearest covered face (half its height: a gap narrower than
a face between faces). What the closing adds, in pieces large enough to hold a small face, is
covered as a face whose head ellipse spans the piece.

Measured with `benchmarks/real.py`: the 26 real photos 3 -> 1 of 770 faces exposed (>= 32 px:
1 -> 0), over-cover 4.11x -> 4.18x the faces' area (on their cached finds, a radius of 0.3 face
heights did not reach the parade's face, 0.75 covered 4.37x); the six clips 6 -> 5 of 630
face-frames, 2.07x -> 2.11x. A 1080p street frame with 17 covered faces takes 1.2 ms.

A crowd leaves wider holes. In a football stand of 30-45 px faces (the fresh set's stadium clip)
the detector misses a face here and there, and the hole it leaves among its found neighbours
holds a disk of half a face height: 1119 of its proposals were left exposed (731 of 32 px and
more). So a face with four other people's faces within three face heights of it is in a crowd,
and the gaps around it are measured with a wider disk (``AnonymizeConfig.crowd_gaps``, 1.5 face
heights): 105 (50) left, for over-cover on the real benchmark of 4.18x -> 4.82x (photos) and
2.63x -> 2.85x (clips). A few people side by side are not a crowd, and keep the narrow disk.

A photo's plan keeps finds from 0.35, and on a textured picture BlazeFace scatters dozens of
them (a dancer against a painted wall: 55 finds round one face, every one with four others
near it): taken for a crowd, the space between them was covered as gaps and the whole picture
came out blurred. So in a photo the wider disk is used only where the detector found at least
``PHOTO_CROWD`` people it is sure of (``detect.known.SURE_SCORE``), as a crowd photo's do (the
closer photo views ask the same, ``detect.still.SMALL_COMPANY``). On the real photos: over-cover
4.80x -> 4.60x, none exposed either way. Video keeps it whatever the scores: a soft, long-lens
crowd's faces are seldom sure (gated in video too, a commuter crowd's soft 30 px face was left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .anonymize import head_box
from .config import AnonymizeConfig
from .detect.known import SURE_SCORE
from .types import Box, Frame, Region, Stage, overlap_groups

__all__ = ["GapStage", "crowd_reaches", "gap_faces"]

#: A piece of the closing smaller than this share of its faces' height squared is a sliver
#: between two ellipses' curves, not room for a face (whatever the disk: a crowd's wider one
#: finds the same slivers).
MIN_PIECE = 0.125
#: The smallest radius on the grid a group of heads is searched on, px.
FINE = 5.0
#: The side of the windows a large group of heads is searched in, px of the picture.
WINDOW = 2048
#: A face is in a crowd when at least this many other people's faces are near it ...
CROWD_NEIGHBOURS = 4
#: ... their centres at most this many face heights (the larger of the two faces) from its own.
CROWD_DISTANCE = 3.0
#: A photo holds a crowd only when at least this many people in it were found sure (see above).
PHOTO_CROWD = 3


def gap_faces(faces: Sequence[Box], width: int, height: int, margin: float, reach: float,
              people: Sequence[object] | None = None, crowd: float = 0.0,
              sure: int | None = None) -> list[Box]:
    """Face boxes for the gaps among ``faces``' head ellipses (``anonymize.head_box`` at
    ``margin``) that no disk of ``reach`` times the nearest face's height fits in, in a picture
    of ``width`` x ``height``; of ``crowd`` times it where the nearest face is in a crowd (see
    :func:`crowd_reaches`; ``sure``: in a photo, how many of the people were found sure). A gap
    counts only between two people: ``people`` names each face's (a video's track ids: a face's
    box and the box where it is heading leave a notch between them, not room for another face);
    by default every face is someone else. A reach of 0 (or fewer than two faces) finds none."""
    if reach <= 0 or len(faces) < 2 or width <= 0 or height <= 0:
        return []
    who = list(range(len(faces))) if people is None else list(people)
    heads = [head_box(f, margin) for f in faces]
    radius = crowd_reaches(faces, who, reach, crowd, sure)
    # Only heads closer than their radii can leave a gap between them: each such group is
    # searched in its own neighbourhood (the masks are a few bytes a pixel, and a picture
    # often has a few faces at each side).
    reaches = [Box(h.x1 - r, h.y1 - r, h.x2 + r, h.y2 + r)
               for h, r in ((h, q * f.height + 2) for f, h, q in zip(faces, heads, radius, strict=True))]
    out: list[Box] = []
    for group in overlap_groups(reaches):
        if len({who[i] for i in group}) < 2:
            continue
        around = Box.bounding(reaches[i] for i in group).clipped(width, height)
        # A crowd across a large photo is searched window by window (the masks of one 24 Mpx
        # window took 1 GB): each window with the heads that reach into it and a border wider
        # than any gap, keeping the gaps centred in it.
        border = 4 * max(radius[i] * faces[i].height for i in group) + 4
        for core in _windows(around):
            padded = Box(core.x1 - border, core.y1 - border, core.x2 + border, core.y2 + border)
            members = [i for i in group if reaches[i].intersection(padded) > 0]
            if len({who[i] for i in members}) < 2:
                continue
            person = {p: n for n, p in enumerate(dict.fromkeys(who[i] for i in members))}
            found = _gaps_in([faces[i] for i in members], [heads[i] for i in members],
                             [person[who[i]] for i in members], padded.clipped(width, height), margin,
                             reach, [radius[i] for i in members])
            out += [b for b in found if core.x1 <= b.center[0] < core.x2 and core.y1 <= b.center[1] < core.y2]
    return out


def _windows(around: Box) -> list[Box]:
    """``around`` cut into windows of at most WINDOW px a side (itself, if it is small enough);
    the last row and column reach a little past it, so every point is in exactly one."""
    nx, ny = math.ceil(around.width / WINDOW), math.ceil(around.height / WINDOW)
    if nx <= 1 and ny <= 1:
        return [Box(around.x1 - 1, around.y1 - 1, around.x2 + 1, around.y2 + 1)]
    return [Box(around.x1 + i * WINDOW - (i == 0), around.y1 + j * WINDOW - (j == 0),
                around.x1 + (i + 1) * WINDOW, around.y1 + (j + 1) * WINDOW)
            for j in range(ny) for i in range(nx)]


def crowd_reaches(faces: Sequence[Box], people: Sequence[object], reach: float, crowd: float,
                  sure: int | None = None) -> list[float]:
    """Each face's reach for :func:`gap_faces`: ``crowd`` for a face with CROWD_NEIGHBOURS other
    people's faces within CROWD_DISTANCE face heights, ``reach`` for the rest (and for all when
    ``crowd`` is not the wider, or when ``sure``, the people found sure, is given and under
    ``PHOTO_CROWD``: a photo's scattered clutter is no crowd)."""
    if crowd <= reach or len(faces) <= CROWD_NEIGHBOURS or (sure is not None and sure < PHOTO_CROWD):
        return [reach] * len(faces)
    centres = np.array([f.center for f in faces], np.float64)
    heights = np.array([f.height for f in faces], np.float64)
    ids = {p: n for n, p in enumerate(dict.fromkeys(people))}
    person = np.array([ids[p] for p in people], np.int64)
    # Pairs from a k-d tree, not a matrix of all distances: a 24 Mpx crowd photo has 27,000
    # finds. Two faces are near when either's reach (of its own height) holds the other.
    balls = cKDTree(centres).query_ball_point(centres, CROWD_DISTANCE * heights)
    i = np.repeat(np.arange(len(faces)), [len(b) for b in balls])
    j = np.fromiter((k for b in balls for k in b), np.int64, count=len(i))
    pairs = np.unique(np.concatenate([np.stack([i, j], 1), np.stack([j, i], 1)]), axis=0)
    pairs = pairs[person[pairs[:, 0]] != person[pairs[:, 1]]]
    # Neighbours are people, not boxes: a track's two boxes near a face count once.
    counted = np.unique(np.stack([pairs[:, 0], person[pairs[:, 1]]], 1), axis=0)
    count = np.bincount(counted[:, 0], minlength=len(faces))
    return [crowd if n >= CROWD_NEIGHBOURS else reach for n in count]


def _gaps_in(faces: list[Box], heads: list[Box], people: list[int], around: Box, margin: float,
             reach: float, radius: list[float]) -> list[Box]:
    """:func:`gap_faces` for one group of heads, within ``around``; ``people`` numbers each
    face's person from 0, ``radius`` holds each face's reach (``reach`` or a crowd's)."""
    # Searched on a grid where the smallest radius is FINE px: a crowd of 30 px faces in a 1080p
    # frame costs a sixth of what it would at full size, and a gap is found as well.
    # The grid follows the narrow disk even in a crowd, or a crowd's small holes would vanish in it.
    scale = min(1.0, FINE / max(1e-3, reach * min(f.height for f in faces)))
    x1, y1 = around.x1, around.y1
    w, h = math.ceil(around.width * scale), math.ceil(around.height * scale)
    if w <= 0 or h <= 0:
        return []
    # Which face each covered pixel belongs to (1-based; 0: free). Smaller faces drawn last:
    # where heads overlap, the smaller one holds (a closing sized by a large face would fill
    # the room between small ones it does not border).
    owner = np.zeros((h, w), np.int32)
    order = sorted(range(len(faces)), key=lambda i: -faces[i].height)
    for i in order:
        head = heads[i]
        centre = (round((head.center[0] - x1) * scale), round((head.center[1] - y1) * scale))
        axes = (max(1, round(head.width * scale / 2)), max(1, round(head.height * scale / 2)))
        cv2.ellipse(owner, centre, axes, 0, 0, 360, i + 1, -1)
    free = (owner == 0).astype(np.uint8)
    if free.all() or not free.any():
        return []
    # Each free pixel takes the face of the covered pixel nearest to it. Labels number the
    # covered pixels in scan order, as np.nonzero lists them.
    distance, label = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    nearest = np.zeros(int(np.count_nonzero(owner)) + 1, np.int32)
    nearest[1:] = owner[owner > 0] - 1
    nearest = nearest[label]
    radii = np.array([q * f.height * scale for q, f in zip(radius, faces, strict=True)], np.float32)
    r = radii[nearest]
    # The opening of the free area: every disk of radius r that fits in it. A free pixel no such
    # disk reaches is in a gap too narrow for a face.
    centres = (distance >= r) & (free > 0)
    reached = cv2.distanceTransform((~centres).astype(np.uint8), cv2.DIST_L2, 5) <= r
    gaps = ((free > 0) & ~reached).astype(np.uint8)
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(gaps, connectivity=8)
    if count <= 1:
        return []
    # Per piece, over the gaps' own pixels only (the free and covered rest is most of the grid):
    # the mean height of their nearest faces, and the people they border.
    inside = gaps > 0
    near, piece = nearest[inside], pieces[inside]
    sizes = np.array([f.height * scale for f in faces], np.float32)[near]
    mean_size = np.bincount(piece, weights=sizes, minlength=count)
    mean_size /= np.maximum(stats[:, 4], 1)
    person = np.asarray(people, np.int64)[near]
    pairs = np.unique(piece.astype(np.int64) * len(faces) + person)
    bordering = np.bincount(pairs // len(faces), minlength=count)
    out: list[Box] = []
    for i in range(1, count):
        px, py, pw, ph, area = (int(v) for v in stats[i])
        if bordering[i] < 2 or area < MIN_PIECE * mean_size[i] ** 2:
            continue
        # A face box whose head ellipse (head_box's growth, inverted) spans the piece.
        fw, fh = pw / scale / (1 + margin), ph / scale / (1 + 1.6 * margin)
        cx, cy = x1 + (px + pw / 2) / scale, y1 + (py + ph / 2) / scale
        out.append(Box.from_center(cx, cy + 0.3 * margin * fh, fw, fh))
    return out


class GapStage(Stage):
    """Adds a region for each gap between the covered faces of different people in a frame (see
    :func:`gap_faces`); a video's regions of one track are one person. ``still``: the frames are
    photos (a crowd needs people found sure, see the module docs)."""

    def __init__(self, config: AnonymizeConfig, *, still: bool = False) -> None:
        self.config = config
        self.still = still

    def __call__(self, frame: Frame) -> Frame:
        faces = [r for r in frame.regions if r.is_face]
        people = [r.track_id if r.track_id is not None else ("face", n) for n, r in enumerate(faces)]
        sure = (len({p for p, r in zip(people, faces, strict=True) if r.score >= SURE_SCORE})
                if self.still else None)
        gaps = gap_faces([r.box for r in faces], frame.width, frame.height, self.config.margin,
                         self.config.gaps, people, self.config.crowd_gaps, sure)
        frame.regions = (*frame.regions, *(Region(box=b, source="gap", score=0.0) for b in gaps))
        return frame
