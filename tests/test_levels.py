"""A face in dim or coloured light: the detector is shown the picture's levels stretched (real pixels)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from streamguard.api import anonymize_image
from streamguard.config import Config, DetectConfig
from streamguard.detect import SweepDetectStage, TiledDetector
from streamguard.detect.levels import GATE, Levels, measure
from streamguard.images import load_image
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box

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
    far = np.ones(lit.shape[:2], bool)
    far[150:330, 230:410] = False
    changed = {}
    for stretch in (True, False):
        out = tmp_path / f"out-{stretch}.png"
        anonymize_image(src, out, Config(detect=DetectConfig(levels=stretch)))
        result = load_image(out).rgb
        if stretch:
            # Finds made on the stretched copy cover the picture as it was.
            assert_destroyed(lit, result, box, "face under stage light")
        changed[stretch] = (np.abs(result.astype(int) - lit.astype(int)).max(axis=2) > 8)[far].mean()
    # The stretch does not make clutter look like faces: no more of the rest is blurred (the
    # synthetic clutter draws false finds either way: about 25% stretched, 32% as it is).
    assert changed[True] <= changed[False] + 0.02, changed


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
