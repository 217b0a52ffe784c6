"""Cutting a level's pixels out of a frame: canvases, single tiles, crops, and mapping back.

A level's *canvas* is the frame scaled (and turned, and padded) as the level says; tiles are
squares of it. When only a few tiles of a large level are due, cutting them one by one from
the frame is cheaper than building the canvas (see :func:`tile_by_tile`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..types import Box
from .focus import unsharp
from .plan import Level, Tile

__all__ = ["level_affine", "level_canvas", "from_frame", "tile_by_tile", "tile_warp", "cut_tile",
           "halve_to", "box_to_frame", "rolled_box", "touches_inner_edge", "other_view", "Work"]

#: A tile shown sharpened (see ``sweep.SHARPEN``): an unsharp mask of this amount and of this blur
#: (px of a 192 px tile, in proportion for other sizes). On generated dark, soft 40-55 px faces
#: behind a sharp scene (``synth.soft_part_scene``, the whole plan mirrored) it found 36 of 40
#: that the plain mirror found 26 of; amount 1 found 30, a blur of 3 px 32, 1.5 px 34.
SHARP_AMOUNT, SHARP_SIGMA = 2.0, 2.0


def level_affine(scale: float, angle: float, w: int, h: int, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Frame -> level canvas transform (2x3) and canvas size: scale, turn about the centre, pad."""
    sw, sh = w * scale, h * scale
    if not angle:
        cw, ch = max(1, round(sw)), max(1, round(sh))
        # The exact per-axis factors of the resize that makes this canvas.
        m = np.array([[cw / w, 0, pad], [0, ch / h, pad]], np.float64)
        return m, (cw + 2 * pad, ch + 2 * pad)
    # Rounded so a quarter turn's canvas is the frame's size exactly (cos 90 is 6e-17, not 0).
    c, s = abs(round(math.cos(math.radians(angle)), 12)), abs(round(math.sin(math.radians(angle)), 12))
    cw, ch = math.ceil(sw * c + sh * s) + 2 * pad, math.ceil(sw * s + sh * c) + 2 * pad
    rot = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, 1.0)
    rot[:, 2] += (cw / 2 - sw / 2, ch / 2 - sh / 2)
    return rot @ np.array([[scale, 0, 0], [0, scale, 0], [0, 0, 1]], np.float64), (cw, ch)


#: One tile's work: level, its canvas (or the frame, with a warp), canvas -> frame, the tile, and the
#: frame -> tile warp when the tile is cut straight from the frame (see ``tile_by_tile``).
Work = tuple[Level, np.ndarray, np.ndarray, Tile, "np.ndarray | None"]


def from_frame(lv: Level, w: int, h: int) -> bool:
    """Whether ``lv``'s canvas is the frame itself resized (bilinear), not a halving of it: any
    level over half the frame's size (see ``level_canvas``)."""
    sw, sh = lv.resized(w, h)
    return 2 * sw > w or 2 * sh > h


def tile_by_tile(lv: Level, n: int, w: int, h: int) -> bool:
    """Whether ``n`` tiles of ``lv`` are cheaper cut one by one from the frame than from a canvas.

    Only for upright levels resized straight from the frame (``from_frame``: the finest level,
    whose canvas costs most, 1.5-3 ms at 1080p), and only when every tile lies whole inside the
    canvas. Warping a tile costs ~3x per pixel what one resize of the whole frame does
    (measured 0.14 ms a 128 px tile), so it pays while the tiles cover under a third of the
    canvas: on a video most frames run only the tiles where something changed (~15 of the 312
    of 1080p's finest level).
    """
    cw, ch = lv.canvas
    return (not lv.angle and from_frame(lv, w, h) and cw >= lv.size
            and ch >= lv.size and 3 * n * lv.size * lv.size < cw * ch)


def tile_warp(m: np.ndarray, t: Tile) -> np.ndarray:
    """Tile pixel -> frame pixel (for ``WARP_INVERSE_MAP``), sampling where ``cv2.resize`` to the
    level would (pixel centres), so a tile comes out as it would cut from the canvas."""
    fx, fy = 1 / m[0, 0], 1 / m[1, 1]
    return np.array([[fx, 0, (t.x - m[0, 2] + 0.5) * fx - 0.5], [0, fy, (t.y - m[1, 2] + 0.5) * fy - 0.5]])


def cut_tile(frame: np.ndarray, warp: np.ndarray, lv: Level, t: Tile) -> np.ndarray:
    """Tile ``t`` of ``lv`` warped out of ``frame`` (``warp``: ``tile_warp``), as the level's
    canvas has it. Where the tile reaches into the level's border, the part inside the resized
    frame is warped and then padded as the canvas is (``copyMakeBorder``): a warp's own border
    mirrors the frame's pixels, which lands the mirror image 1/scale - 1 frame px off (0.8 px at
    0.5625x), enough to move a tile's best score across the quiet line."""
    size, pad = lv.size, lv.pad
    cw, ch = lv.canvas
    left, top = max(0, pad - t.x), max(0, pad - t.y)
    right, bottom = max(0, t.x + size - (cw - pad)), max(0, t.y + size - (ch - pad))
    iw, ih = size - left - right, size - top - bottom
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    border = lv.border
    # REFLECT_101 of k pixels needs k + 1 inside; a thinner inner part mirrors differently.
    if not (left or top or right or bottom) or min(iw, ih) <= max(left, top, right, bottom):
        return cv2.warpAffine(frame, warp, (size, size), flags=flags, borderMode=border)
    inner_warp = warp.copy()
    inner_warp[:, 2] += warp[:, :2] @ (left, top)
    # cv2.resize clamps at the frame's edge: so does BORDER_REPLICATE.
    inner = cv2.warpAffine(frame, inner_warp, (iw, ih), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(inner, top, bottom, left, right, border, value=(0, 0, 0))


def halve_to(pyramid: list[np.ndarray], k: int) -> None:
    """Extend ``pyramid`` (a frame, then each halving of the one before) to index ``k``."""
    while len(pyramid) <= k:
        pyramid.append(cv2.pyrDown(pyramid[-1]))


def box_to_frame(m: np.ndarray, box: Box) -> Box:
    """Bounding box in frame pixels of a level-canvas box, through the inverse of ``m``."""
    inv = cv2.invertAffineTransform(m)
    pts = np.array([[box.x1, box.y1], [box.x2, box.y1], [box.x1, box.y2], [box.x2, box.y2]])
    p = pts @ inv[:, :2].T + inv[:, 2]
    return Box(p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())


def rolled_box(cx: float, cy: float, bw: float, bh: float, roll: float) -> Box:
    """Bounding box of a ``bw`` x ``bh`` face box turned by ``roll`` degrees about its centre:
    BlazeFace gives an upright box even for a tilted head, which leaves its chin and brow out."""
    c, s = abs(math.cos(math.radians(roll))), abs(math.sin(math.radians(roll)))
    return Box.from_center(cx, cy, bw * c + bh * s, bw * s + bh * c)


def level_canvas(pyramid: list[np.ndarray], lv: Level) -> tuple[np.ndarray, np.ndarray]:
    """Level ``lv``'s canvas of the frame ``pyramid[0]`` and its frame -> canvas transform; ``pyramid``
    (the frame halved again and again) is extended and shared by the levels."""
    image = pyramid[0]
    h, w = image.shape[:2]
    m, (cw, ch) = level_affine(lv.scale, lv.angle, w, h, lv.pad)
    border = lv.border
    sw, sh = lv.resized(w, h)
    if (sw, sh) == (w, h):
        small = image
    elif from_frame(lv, w, h):
        # A factor under 2 leaves little to alias; INTER_AREA at a non-integer factor costs 7x
        # as much (1080p to 0.5625x: 19.9 vs 2.8 ms, on every frame) and gains no recall
        # (benchmarks/recall.py: balanced the same, fast 95.9 -> 97.1% for >= 32 px).
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR)
    else:
        # Halve (pyrDown: smoothed, so small faces are not aliased away) while still at
        # least twice the size, then bilinear the rest, a factor under 2.
        while pyramid[-1].shape[1] >= 2 * sw and pyramid[-1].shape[0] >= 2 * sh:
            halve_to(pyramid, len(pyramid))
        src = next(p for p in reversed(pyramid) if p.shape[1] >= sw and p.shape[0] >= sh)
        small = src if src.shape[:2] == (sh, sw) else cv2.resize(src, (sw, sh),
                                                                 interpolation=cv2.INTER_LINEAR)
    if not lv.angle:
        if not lv.pad:
            return m, small
        return m, cv2.copyMakeBorder(small, lv.pad, lv.pad, lv.pad, lv.pad, border, value=(0, 0, 0))
    mm = m @ np.array([[w / sw, 0, 0], [0, h / sh, 0], [0, 0, 1]])
    return m, cv2.warpAffine(small, mm, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=border)


def touches_inner_edge(b: Box, t: Tile, lv: Level) -> bool:
    """Whether a find ``b`` (level canvas pixels) of tile ``t`` may go on beyond the tile: it lies
    within 2% of a side that is not also the canvas edge (or, for a crop round a known face, of
    any side)."""
    m = 0.02 * lv.size
    if lv.index < 0:  # a crop around a known face: every side cuts through the frame
        return b.x1 < m or b.y1 < m or b.x2 > lv.size - m or b.y2 > lv.size - m
    cw, ch = lv.canvas
    return ((t.x > 0 and b.x1 < t.x + m) or (t.y > 0 and b.y1 < t.y + m)
            or (t.x + lv.size < cw and b.x2 > t.x + lv.size - m)
            or (t.y + lv.size < ch and b.y2 > t.y + lv.size - m))


def other_view(crop: np.ndarray, size: int, mirrored: bool, sharpened: bool) -> np.ndarray:
    """A tile's pixels ``crop`` (``size`` px square) as the sweep shows it on this run: mirrored
    left to right, sharpened (:data:`SHARP_AMOUNT`), both, or as they are."""
    if sharpened:
        crop = unsharp(crop, SHARP_SIGMA * size / 192, SHARP_AMOUNT)
    return crop[:, ::-1] if mirrored else crop
