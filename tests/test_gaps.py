"""Gaps among covered heads: a half-hidden face between found ones is covered too (real pixels)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from streamguard.api import anonymize_image
from streamguard.config import AnonymizeConfig, Config
from streamguard.gaps import gap_faces
from streamguard.images import load_image
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box, Detection

from .pixels import assert_destroyed, face_similarity, outside_mask

FACE = 40.0  # px: the faces of a crowd's middle rows


class ListedFaces:
    """Stands in for a detector that found ``boxes`` and missed the rest (as the real one missed
    parade873's face between its neighbours): the gaps are the code under test, not the model."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(box=b, score=0.9) for b in self.boxes]

    def close(self) -> None:
        pass


def _ring(centre: tuple[float, float], distance: float, count: int = 6) -> list[Box]:
    cx, cy = centre
    return [Box.from_center(cx + distance * math.cos(2 * math.pi * i / count),
                            cy + distance * math.sin(2 * math.pi * i / count), FACE, FACE)
            for i in range(count)]


def _crowd(tmp_path, distance: float) -> tuple[np.ndarray, Box, list[Box], object]:
    """Real faces in a ring round a middle one pasted last (on top), saved as PNG."""
    image = background(400, 320, seed=3)
    sprites = load_faces()
    centre = (200.0, 160.0)
    ring = _ring(centre, distance)
    for i, box in enumerate(ring):
        paste_face(image, sprites[i % len(sprites)], box)
    middle = paste_face(image, sprites[0], Box.from_center(*centre, FACE, FACE))
    path = tmp_path / "crowd.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return image, middle, ring, path


def _run(tmp_path, path, ring: list[Box], gaps: float) -> np.ndarray:
    config = Config(anonymize=AnonymizeConfig(gaps=gaps))
    out = tmp_path / f"out-{gaps}.png"
    anonymize_image(path, out, config, detector=ListedFaces(ring))
    return load_image(out).rgb


def test_a_face_left_between_covered_heads_is_covered(tmp_path):
    image, middle, ring, path = _crowd(tmp_path, distance=1.2 * FACE)
    # The eyes and nose: what the neighbours' ellipses do not reach.
    inner = middle.grown(-0.25)
    without = _run(tmp_path, path, ring, gaps=0.0)
    energy, corr = face_similarity(image, without, inner)
    assert corr > 0.8, f"the ring alone covered the middle face (corr {corr:.2f}): nothing to prove"
    with_gaps = _run(tmp_path, path, ring, gaps=0.5)
    assert_destroyed(image, with_gaps, middle, "between its neighbours")


def test_faces_apart_leave_the_picture_between_them_alone(tmp_path):
    # Neighbours three faces apart: the room between them holds a face, and is not a gap.
    image, middle, ring, path = _crowd(tmp_path, distance=3.0 * FACE)
    out = _run(tmp_path, path, ring, gaps=0.5)
    energy, corr = face_similarity(image, out, middle)
    assert corr > 0.9 and energy > 0.8
    keep = outside_mask(image.shape[:2], ring)
    assert np.abs(out.astype(int) - image.astype(int))[keep].max() <= 2  # PNG: lossless


def test_gap_faces_geometry():
    ring = _ring((200.0, 200.0), 1.2 * FACE)
    (gap,) = gap_faces(ring, 400, 400, margin=0.5, reach=0.5)
    assert gap.intersection(Box.from_center(200, 200, 10, 10)) == pytest.approx(100)
    assert gap.height < 2 * FACE  # the gap's size, not the ring's
    assert gap_faces(ring, 400, 400, margin=0.5, reach=0.0) == []
    assert gap_faces(_ring((200.0, 200.0), 3.0 * FACE), 400, 400, margin=0.5, reach=0.5) == []
    assert gap_faces(ring[:1], 400, 400, margin=0.5, reach=0.5) == []


def test_boxes_of_one_person_leave_no_gap():
    # A video's track covered where it is and where it is heading: the notch between its two
    # ellipses is the same person's, not room for another face.
    ring = _ring((200.0, 200.0), 1.2 * FACE)
    assert gap_faces(ring, 400, 400, margin=0.5, reach=0.5, people=[7] * len(ring)) == []
    assert len(gap_faces(ring, 400, 400, margin=0.5, reach=0.5, people=[7, 7, 7, 8, 8, 8])) == 1
