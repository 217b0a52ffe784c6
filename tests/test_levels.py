"""A face in dim or coloured light: the detector is shown the picture's levels stretched (real pixels)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from streamguard.api import anonymize_image
from streamguard.config import Config, DetectConfig
from streamguard.detect import DetectStage, StillDetector, SweepDetectStage, TiledDetector
from streamguard.detect.levels import GATE, Levels, measure
from streamguard.images import load_image
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box, Detection, Frame

from .pixels import assert_destroyed

#: Magenta-blue stage light at half the light, in linear light (benchmarks/real.py --light stage).
STAGE = (0.5, (0.85, 0.2, 1.0))


def _relit(rgb: np.ndarray, gain: float, tint: tuple[float, float, float]) -> np.ndarray:
    linear = (rgb.astype(np.float32) / 255) ** 2.2 * gain * np.array(tint, np.float32)
    return np.clip(linear ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)


def _stage_photo(tmp_path: Path) -> tuple[Path, np.ndarray, Box]:
    """Grace Hopper's face, 32 px, in a cluttered 640x480 room under stage light."""
    img = background(640, 480, 3)
    box = paste_face(img, load_faces()[0], Box.from_center(320, 240, 32, 32))
    lit = _relit(img, *STAGE)
    path = tmp_path / "stage.png"
    cv2.imwrite(str(path), lit[..., ::-1])
    return path, lit, box


def test_daylight_is_shown_as_it_is() -> None:
    img = background(640, 480, 3)
    paste_face(img, load_faces()[0], Box.from_center(320, 240, 96, 96))
    levels = Levels()
    assert measure(img).gain < GATE
    assert levels(img) is img and levels.stretched == 0


def test_dim_tinted_picture_is_stretched_and_held() -> None:
    img = background(640, 480, 3)
    paste_face(img, load_faces()[0], Box.from_center(320, 240, 96, 96))
    lit = _relit(img, *STAGE)
    levels = Levels()
    shown = levels(lit)
    assert shown is not lit and levels.stretched == 1
    # Every channel spans (nearly) the whole range again; the input is untouched.
    assert all(np.percentile(shown[..., c], 99) - np.percentile(shown[..., c], 1) > 200 for c in range(3))
    assert np.array_equal(lit, _relit(img, *STAGE))
    # A next frame a level or two brighter keeps the same stretch: the sweep's change map sees
    # only what changed, not a new stretch.
    table = levels._table
    levels(np.clip(lit.astype(np.int16) + 2, 0, 255).astype(np.uint8))
    assert levels._table is table and levels.stretched == 2
    assert Levels(enabled=False)(lit) is lit


def test_face_under_stage_light_is_covered(tmp_path: Path) -> None:
    src, lit, box = _stage_photo(tmp_path)
    out = tmp_path / "out.png"
    anonymize_image(src, out, Config(detect=DetectConfig(levels=True)))
    # Finds made on the stretched copy cover the picture as it was.
    assert_destroyed(lit, load_image(out).rgb, box, "face under stage light")


def test_stretch_does_not_make_clutter_look_like_faces(tmp_path: Path) -> None:
    _, lit, _ = _stage_photo(tmp_path)
    far = np.ones(lit.shape[:2], bool)
    far[150:330, 230:410] = False
    tiled = TiledDetector("balanced")
    try:
        boxed = {}
        for stretch in (True, False):
            frame = DetectStage(StillDetector(tiled), levels=stretch)(Frame(image=lit, index=0))
            mask = np.zeros(lit.shape[:2], bool)
            for d in frame.detections:
                b = d.box.clipped(lit.shape[1], lit.shape[0])
                mask[int(b.y1):int(b.y2), int(b.x1):int(b.x2)] = True
            boxed[stretch] = mask[far].mean()
    finally:
        tiled.close()
    # The synthetic clutter draws false finds in the photo plan either way (about 14% of it boxed
    # stretched, 17% as it is); the stretched look draws no more.
    assert boxed[True] <= boxed[False] + 0.02, boxed


@pytest.mark.parametrize("light", [(0.03, (1.0, 0.7, 0.3)), STAGE], ids=["dark", "stage"])
def test_stretched_picture_raises_the_face_score(light: tuple[float, tuple[float, float, float]]) -> None:
    """The astronaut's real photo, her face 18 px, very dark or under stage light: the video
    sweep scores her face clearly higher on the stretched copy (0.88-0.90 -> 0.95-0.96)."""
    small = cv2.resize(data.astronaut(), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    lit = _relit(small, *light)
    face = Box(24, 9, 42, 27)
    tiled = TiledDetector("balanced")
    try:
        best = []
        for stretch in (False, True):
            finds = SweepDetectStage(tiled, fps=30, period=0.0, levels=stretch).detect(lit, 0, 0.0)
            best.append(max((d.score for d in finds if d.box.iou(face) > 0.5), default=0.0))
    finally:
        tiled.close()
    assert best[1] >= 0.93 and best[1] - best[0] >= 0.04, best


class _BlindWhenStretched:
    """The real tiled detector, except that it finds nothing in a stretched picture: a face the
    stretch loses (under stage light it lost a real 104 px profile the plain picture shows)."""

    def __init__(self, tiled: TiledDetector, plain: np.ndarray) -> None:
        self.tiled, self.plain, self.shown = tiled, plain, 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.shown += 1
        return self.tiled.detect(image) if np.array_equal(image, self.plain) else []


@pytest.mark.parametrize("both", [True, False])
def test_photo_keeps_what_the_plain_picture_shows(tmp_path: Path, both: bool) -> None:
    _, lit, box = _stage_photo(tmp_path)
    tiled = TiledDetector("balanced")
    try:
        spy = _BlindWhenStretched(tiled, lit)
        frame = DetectStage(spy, both=both)(Frame(image=lit, index=0))
    finally:
        tiled.close()
    found = any(d.box.iou(box) > 0.3 for d in frame.detections)
    # A photo is looked at stretched and as it is; video (both=False) only stretched.
    assert (spy.shown, found) == ((2, True) if both else (1, False)), frame.detections
