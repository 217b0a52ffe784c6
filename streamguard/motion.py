"""What changed in the picture: coarse maps of 8x8 block means, compared.

Two users: the tiled sweep skips tiles whose pixels did not change since they last ran
(:mod:`.sweep`), and live mode covers every part of the picture that changed since the
detector last looked at it (:mod:`.live`), so a face that walks or pops into view is hidden
from its first frame on, before any detector has seen it.

Block means, not pixels: sensor and compression noise average out over 64 pixels (static
cells of the generated x264 clips move 0-3 grey levels), a real change does not.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .types import Box, overlap_groups

__all__ = ["CELL", "STILL", "block_means", "changed_boxes"]

#: Pixels per side of one cell.
CELL = 8
#: Levels (0-255) a cell's mean must move by to count as changed.
STILL = 6.0


def block_means(image: np.ndarray, *, grey: bool = False) -> np.ndarray:
    """Means of ``CELL`` x ``CELL`` blocks of ``image`` (H x W x 3 uint8), as int16 so they can be
    subtracted: ceil(H/CELL) x ceil(W/CELL), with 3 channels unless ``grey``."""
    h, w = image.shape[:2]
    size = (max(1, math.ceil(w / CELL)), max(1, math.ceil(h / CELL)))
    src = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if grey else image
    return cv2.resize(src, size, interpolation=cv2.INTER_AREA).astype(np.int16)


def changed_boxes(before: np.ndarray, after: np.ndarray, *, still: float = STILL, pad: int = 1,
                  width: int | None = None, height: int | None = None) -> list[Box]:
    """Pixel boxes around the parts of the picture that changed between two :func:`block_means`
    maps: one box per connected group of changed cells, grown by ``pad`` cells on every side
    (a face's edge may differ less from what was behind it than its middle), clipped to the
    picture (``width`` x ``height`` pixels; by default the cells' extent)."""
    if before.shape != after.shape:
        raise ValueError(f"change maps differ in shape: {before.shape} and {after.shape}")
    diff = np.abs(after - before)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    mask = (diff > still).astype(np.uint8)
    if not mask.any():
        return []
    if pad > 0:
        mask = cv2.dilate(mask, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
    rows, cols = mask.shape
    width = width if width is not None else cols * CELL
    height = height if height is not None else rows * CELL
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # Label 0 is the unchanged background.
    boxes = [Box(float(x * CELL), float(y * CELL), float(min(width, (x + w) * CELL)),
                 float(min(height, (y + h) * CELL))) for x, y, w, h, _area in stats[1:count]]
    # Overlapping boxes become one, so each pixel is covered once (an area's blur costs what its
    # pixels do).
    return [Box.bounding(boxes[i] for i in group) for group in overlap_groups(boxes)]
