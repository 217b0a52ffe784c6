"""The change maps behind the sweep's skipped tiles and live mode's motion cover."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard.motion import CELL, block_means, changed_boxes
from streamguard.types import Box


def _noisy(seed: int, shape: tuple[int, int] = (360, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((*shape, 3), 120, np.uint8)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def test_sensor_noise_is_no_change():
    # Two frames of the same grey wall with independent noise (sigma 4 levels per pixel).
    assert changed_boxes(block_means(_noisy(1)), block_means(_noisy(2))) == []


def test_a_new_object_is_boxed_with_a_margin_and_clipped_to_the_picture():
    before = _noisy(1)
    after = _noisy(2)
    after[100:164, 300:348] = (200, 160, 140)  # a 48 x 64 patch appears
    after[340:360, 600:640] = (20, 20, 20)  # and one in the bottom right corner
    boxes = sorted(changed_boxes(block_means(before), block_means(after), width=640, height=360),
                   key=lambda b: b.x1)
    assert len(boxes) == 2
    inner = boxes[0]
    assert inner.x1 <= 300 - CELL + 1 and inner.y1 <= 100 - CELL + 1
    assert inner.x2 >= 348 + CELL - 1 and inner.y2 >= 164 + CELL - 1
    assert inner.width <= 48 + 4 * CELL and inner.height <= 64 + 4 * CELL
    corner = boxes[1]
    assert corner.x2 == 640 and corner.y2 == 360


def test_a_change_in_colour_alone_counts():
    before = _noisy(1)
    after = before.copy()
    # Same grey level (about), other colour: a face on a wall of the same brightness.
    after[40:80, 40:80] = (150, 113, 120)
    grey_before = block_means(before, grey=True)
    grey_after = block_means(after, grey=True)
    assert changed_boxes(grey_before, grey_after) == []
    assert changed_boxes(block_means(before), block_means(after)) != []


def test_maps_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        changed_boxes(block_means(_noisy(1)), block_means(_noisy(1, (480, 640))))


def test_box_lerp():
    a, b = Box(0, 0, 10, 10), Box(10, 20, 30, 40)
    assert a.lerp(b, 0) == a and a.lerp(b, 1) == b
    assert a.lerp(b, 0.5) == Box(5, 10, 20, 25)


def test_overlapping_boxes_are_merged_so_each_pixel_is_covered_once():
    before = _noisy(1)
    after = before.copy()
    # An L shape: its two arms are apart as cells go (the gap is wider than the margin), but the
    # bounding box of the one holds the other.
    after[40:200, 40:64] = 250
    after[176:200, 40:300] = 250
    after[60:80, 120:140] = 10  # inside the L's bounding box, not touching it
    boxes = changed_boxes(block_means(before), block_means(after), width=640, height=360)
    assert len(boxes) == 1
    assert boxes[0].x1 <= 40 and boxes[0].x2 >= 300 and boxes[0].y1 <= 40 and boxes[0].y2 >= 200


def test_overlap_groups_join_chains_and_skip_empty_boxes():
    from streamguard.types import overlap_groups

    boxes = [Box(0, 0, 10, 10), Box(50, 50, 60, 60), Box(8, 8, 20, 20), Box(18, 18, 30, 30),
             Box(5, 5, 5, 9), Box(100, 0, 110, 10)]
    groups = sorted(sorted(g) for g in overlap_groups(boxes))
    # 0-2-3 overlap in a chain; 4 is empty; 1 and 5 stand alone.
    assert groups == [[0, 2, 3], [1], [5]]
