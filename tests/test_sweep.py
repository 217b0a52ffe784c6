"""The spread sweep: every tile once per period, known faces looked at on every frame."""

from __future__ import annotations

import pytest

from streamguard.sweep import ALWAYS_TILES, SweepDetectStage
from streamguard.synth import background, load_faces, paste_face
from streamguard.tiling import TiledDetector
from streamguard.types import Box, Frame


@pytest.fixture(scope="module")
def tiled():
    d = TiledDetector("fast")
    yield d
    d.close()


def test_every_tile_runs_once_per_period(tiled):
    stage = SweepDetectStage(tiled, fps=30, period=0.25)
    assert stage.slices == 8
    w, h = 1280, 720
    levels = tiled.plan(w, h)
    spread = {(t.level, t.x, t.y) for lv in levels if len(lv.tiles) > ALWAYS_TILES for t in lv.tiles}
    seen: list[tuple[int, int, int]] = []
    for i in range(stage.slices):
        stage._runs = i
        seen += [(t.level, t.x, t.y) for t in stage.tiles_for(w, h) if (t.level, t.x, t.y) in spread]
    assert sorted(seen) == sorted(spread), "each spread tile exactly once per period"


def test_small_face_found_within_a_period_then_every_frame(tiled):
    image = background(1280, 720, seed=4)
    truth = paste_face(image, load_faces()[0], Box.from_xywh(900, 500, 40, 40))
    stage = SweepDetectStage(tiled, fps=30, period=0.25)
    hits = []
    for i in range(2 * stage.slices):
        f = stage(Frame(image=image.copy(), index=i))
        assert f.detected
        hits.append(any(d.box.iou(truth) > 0.3 for d in f.detections))
    first = hits.index(True)
    assert first < stage.slices, "found within one period"
    assert all(hits[first:]), "once found, looked at on every frame"


def test_detect_every_skips_frames(tiled):
    stage = SweepDetectStage(tiled, fps=30, period=0.25, every=3)
    image = background(320, 240, seed=1)
    ran = [stage(Frame(image=image, index=i)).detected for i in range(6)]
    assert ran == [True, False, False, True, False, False]


def test_bad_arguments(tiled):
    with pytest.raises(ValueError, match="period"):
        SweepDetectStage(tiled, fps=30, period=-1)
    with pytest.raises(ValueError, match="every"):
        SweepDetectStage(tiled, fps=30, every=0)
