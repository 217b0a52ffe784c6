"""Gaps among covered heads: a half-hidden face between found ones is covered too (real pixels)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from streamguard.api import anonymize_image
from streamguard.config import AnonymizeConfig, Config
from streamguard.gaps import crowd_reaches, gap_faces
from streamguard.images import load_image
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box, Detection

from .pixels import assert_destroyed, face_similarity, outside_mask

FACE = 40.0  # px: the faces of a crowd's middle rows


class ListedFaces:
    """Stands in for a detector that found ``boxes`` and missed the rest (as the real one missed
    parade873's face between its neighbours): the gaps are the code under test, not the model."""

    def __init__(self, boxes: list[Box], scores: list[float] | None = None) -> None:
        self.boxes = boxes
        self.scores = scores or [0.9] * len(boxes)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(box=b, score=s) for b, s in zip(self.boxes, self.scores, strict=True)]

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


def _stand(tmp_path, spacing: float) -> tuple[np.ndarray, Box, list[Box], object]:
    """A stand of 5 x 5 real faces ``spacing`` face heights apart, saved as PNG: the middle one
    is the face the detector missed, the rest its found neighbours."""
    side = round(2 * FACE + 4 * spacing * FACE)
    image = background(side, side, seed=5)
    sprites = load_faces()
    found: list[Box] = []
    middle = None
    for n in range(25):
        box = Box.from_center(FACE + spacing * FACE * (n % 5), FACE + spacing * FACE * (n // 5), FACE, FACE)
        pasted = paste_face(image, sprites[n % len(sprites)], box)
        if n == 12:
            middle = pasted
        else:
            found.append(box)
    path = tmp_path / "stand.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return image, middle, found, path


def _run(tmp_path, path, ring: list[Box], gaps: float,
         crowd_gaps: float = AnonymizeConfig().crowd_gaps, scores: list[float] | None = None) -> np.ndarray:
    config = Config(anonymize=AnonymizeConfig(gaps=gaps, crowd_gaps=crowd_gaps))
    out = tmp_path / f"out-{gaps}-{crowd_gaps}-{len(set(scores or []))}.png"
    anonymize_image(path, out, config, detector=ListedFaces(ring, scores))
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


def test_a_face_missed_in_a_crowd_is_covered(tmp_path):
    # A stand two face heights apart: the hole a missed face leaves among its found neighbours
    # holds a disk of half a face height, so only the crowd's wider disk closes it.
    image, middle, found, path = _stand(tmp_path, spacing=2.0)
    inner = middle.grown(-0.25)
    energy, corr = face_similarity(image, _run(tmp_path, path, found, gaps=0.5, crowd_gaps=0.0), inner)
    assert corr > 0.8, f"the narrow disk alone covered the missed face (corr {corr:.2f}): nothing to prove"
    assert_destroyed(image, _run(tmp_path, path, found, gaps=AnonymizeConfig().gaps), middle, "in a crowd")


def test_a_few_people_are_not_a_crowd():
    # Four people side by side, or a ring of six three faces apart: the narrow disk for all.
    row = [Box.from_center(100 + 1.5 * FACE * i, 100, FACE, FACE) for i in range(4)]
    assert crowd_reaches(row, range(4), 0.5, 1.5) == [0.5] * 4
    ring = _ring((200.0, 200.0), 3.0 * FACE)
    assert crowd_reaches(ring, range(6), 0.5, 1.5) == [0.5] * 6
    assert gap_faces(ring, 400, 400, margin=0.5, reach=0.5, crowd=1.5) == []
    # A stand's faces are in a crowd, unless they are one person's boxes (a track's).
    stand = [Box.from_center(100 + 2 * FACE * (n % 5), 100 + 2 * FACE * (n // 5), FACE, FACE)
             for n in range(25)]
    assert crowd_reaches(stand, range(25), 0.5, 1.5)[12] == 1.5
    assert crowd_reaches(stand, [1] * 25, 0.5, 1.5) == [0.5] * 25
    # Neighbours are people: two tracks' four boxes (where each is, where it is heading) are two.
    tracks = [Box.from_center(100, 100, FACE, FACE)] + [
        Box.from_center(100 + dx, 100 + dy, FACE, FACE) for dx in (-FACE, FACE) for dy in (0, 5)]
    assert crowd_reaches(tracks, ["me", 1, 1, 2, 2], 0.5, 1.5)[0] == 0.5
    assert crowd_reaches(tracks, ["me", 1, 2, 3, 4], 0.5, 1.5)[0] == 1.5
    assert crowd_reaches(stand, range(25), 0.5, 0.5) == [0.5] * 25  # not wider: off


def test_a_photo_s_scattered_unsure_finds_are_no_crowd(tmp_path):
    # A photo's plan keeps finds from 0.35; on a textured picture dozens of them lie round one
    # face, each with four others near it, and taken for a crowd the room between them was
    # covered as gaps (a dancer's whole photo blurred). A photo's crowd needs people found sure:
    # the same stand of finds, none sure, keeps the narrow disk and leaves the room between them;
    # with three of them sure it is a crowd again.
    image, middle, found, path = _stand(tmp_path, spacing=2.0)
    inner = middle.grown(-0.25)
    unsure = _run(tmp_path, path, found, gaps=AnonymizeConfig().gaps, scores=[0.5] * len(found))
    energy, corr = face_similarity(image, unsure, inner)
    assert corr > 0.8, f"covered as a crowd's gap though no find was sure (corr {corr:.2f})"
    three = [0.8, 0.8, 0.8] + [0.5] * (len(found) - 3)
    assert_destroyed(image, _run(tmp_path, path, found, gaps=AnonymizeConfig().gaps, scores=three), middle,
                     "in a crowd with three sure faces")
    assert crowd_reaches(found, range(24), 0.5, 1.5, sure=2)[0] == 0.5
    assert crowd_reaches(found, range(24), 0.5, 1.5, sure=3).count(1.5) > 0
    assert crowd_reaches(found, range(24), 0.5, 1.5) == crowd_reaches(found, range(24), 0.5, 1.5, sure=24)
