"""The tiled detector on generated frames with real faces (real MediaPipe, no stubs)."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard import synth
from streamguard.config import DetectConfig
from streamguard.detect import PRESETS, TiledDetector, create_detector
from streamguard.types import Box, Detection


@pytest.fixture(scope="module")
def sprites() -> list[synth.FaceSprite]:
    return synth.load_faces()


@pytest.fixture(scope="module")
def balanced() -> TiledDetector:
    with TiledDetector("balanced") as det:
        yield det


@pytest.fixture(scope="module")
def fast() -> TiledDetector:
    with TiledDetector("fast") as det:
        yield det


def _paste(image: np.ndarray, sprite: synth.FaceSprite, cx: float, cy: float, height: float) -> Box:
    w = height * sprite.face.width / sprite.face.height
    return synth.paste_face(image, sprite, Box.from_center(cx, cy, w, height))


def _hits(dets: list[Detection], gt: Box) -> list[Detection]:
    return [d for d in dets if d.box.iou(gt) >= 0.3]


@pytest.mark.parametrize("preset", ["fast", "balanced", "thorough"])
def test_faces_at_the_presets_minimum_size_are_found(preset: str, sprites: list[synth.FaceSprite]) -> None:
    size = PRESETS[preset].min_face
    img = synth.background(640, 360, seed=5)
    gts = [_paste(img, sprites[i % len(sprites)], x, y, size)
           for i, (x, y) in enumerate([(90, 80), (330, 190), (560, 290), (200, 300)])]
    with TiledDetector(preset) as det:
        dets = det.detect(img)
    for gt in gts:
        assert len(_hits(dets, gt)) == 1, (preset, gt, dets)
    assert len(dets) == len(gts)


def test_face_straddling_a_tile_border_comes_out_once(balanced: TiledDetector,
                                                      sprites: list[synth.FaceSprite]) -> None:
    w, h = 1280, 720
    level = balanced.plan(w, h)[0]
    xs = sorted({t.box.x2 for t in level.tiles if t.box.x2 < w})
    ys = sorted({t.box.y2 for t in level.tiles if t.box.y2 < h})
    size = 0.8 * level.max_face
    img = synth.background(w, h, seed=2)
    # On a vertical tile edge, and on the corner where four tiles meet.
    gts = [_paste(img, sprites[0], xs[1], 150, size), _paste(img, sprites[1], xs[3], ys[1], size)]
    dets = balanced.detect(img)
    for gt in gts:
        hits = _hits(dets, gt)
        assert len(hits) == 1, (gt, dets)
        assert hits[0].box.iou(gt) > 0.5
    assert len(dets) == 2


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280)])
def test_boxes_map_back_to_the_frame_in_non_square_frames(balanced: TiledDetector, size: tuple[int, int],
                                                          sprites: list[synth.FaceSprite]) -> None:
    w, h = size
    img = synth.background(w, h, seed=9)
    spots = [(0.1, 0.12, 28), (0.85, 0.2, 60), (0.5, 0.55, 110), (0.15, 0.9, 40), (0.9, 0.88, 22)]
    gts = [_paste(img, sprites[i % 2], fx * w, fy * h, fh) for i, (fx, fy, fh) in enumerate(spots)]
    dets = balanced.detect(img)
    assert len(dets) == len(gts)
    for gt in gts:
        hits = _hits(dets, gt)
        assert len(hits) == 1 and hits[0].box.iou(gt) > 0.5, (gt, hits)


def test_large_faces_are_found_by_the_whole_frame_passes(balanced: TiledDetector,
                                                         sprites: list[synth.FaceSprite]) -> None:
    img = synth.background(1920, 1080, seed=4)
    gt = _paste(img, sprites[0], 700, 520, 340)
    dets = balanced.detect(img)
    # One box for the face (not one per level or tile); a stray small box in her hair is allowed.
    strays = [d for d in dets if d.box.intersection(gt) and d.box.iou(gt) < 0.5]
    assert len(_hits(dets, gt)) == 1 and not strays
    # A selfie: the face is 85% of a portrait frame's width, too big for a plain whole-frame pass.
    img = synth.background(720, 1280, seed=6)
    gt = _paste(img, sprites[1], 360, 600, 620)
    dets = balanced.detect(img)
    assert len(_hits(dets, gt)) == 1 and len(dets) == 1


def test_every_face_size_fits_whole_inside_a_tile_of_its_level(balanced: TiledDetector) -> None:
    rng = np.random.default_rng(0)
    for w, h in [(1920, 1080), (1280, 720), (720, 1280), (3840, 2160)]:
        levels = [lv for lv in balanced.plan(w, h) if len(lv.tiles) > 1]
        assert levels[0].min_face == balanced.face_range(w, h)
        for lv in levels:
            for _ in range(200):
                fh = rng.uniform(lv.min_face, lv.max_face)
                face = Box.from_center(rng.uniform(0, w), rng.uniform(0, h), fh, fh).clipped(w, h)
                assert any(t.box.x1 <= face.x1 and t.box.y1 <= face.y1 and face.x2 <= t.box.x2
                           and face.y2 <= t.box.y2 for t in lv.tiles), (w, h, lv.index, face)


def test_4k_preset_sizes_scale_and_an_explicit_min_face_does_not() -> None:
    with TiledDetector("balanced") as det, TiledDetector("balanced", min_face=16) as fixed:
        assert det.face_range(3840, 2160) == 2 * det.face_range(1920, 1080)
        assert fixed.face_range(3840, 2160) == 16
        # Scaling the face size keeps the 4K cost at the 1080p cost.
        assert (sum(len(lv.tiles) for lv in det.plan(3840, 2160))
                <= 1.1 * sum(len(lv.tiles) for lv in det.plan(1920, 1080)))


def test_a_partial_sweep_around_known_boxes_finds_the_face(balanced: TiledDetector,
                                                          sprites: list[synth.FaceSprite]) -> None:
    img = synth.background(1920, 1080, seed=8)
    gt = _paste(img, sprites[0], 1500, 300, 30)
    near = balanced.tiles_near(1920, 1080, [gt.shifted(6, -4)])
    assert 0 < len(near) < 0.1 * sum(len(lv.tiles) for lv in balanced.plan(1920, 1080))
    dets = balanced.detect(img, tiles=near)
    assert len(_hits(dets, gt)) == 1
    assert len(_hits(balanced.detect_regions(img, [gt]), gt)) == 1


def test_create_detector_builds_the_tiled_detector_for_the_config() -> None:
    det = create_detector(DetectConfig(preset="fast", min_face=40, threshold=0.4))
    try:
        assert isinstance(det, TiledDetector)
        assert det.preset == PRESETS["fast"] and det.face_range(1920, 1080) == 40 and det.threshold == 0.4
    finally:
        det.close()


@pytest.mark.parametrize("preset, face", [("balanced", 26), ("fast", 40)])
def test_a_few_tiles_are_cut_straight_from_the_frame_as_the_canvas_has_them(
        preset: str, face: int, request: pytest.FixtureRequest, sprites: list[synth.FaceSprite]) -> None:
    """Running a handful of the finest level's tiles skips building its canvas (1.5-3 ms at
    1080p): each tile is warped out of the frame, and sees what it would have seen in the
    canvas. Levels made by halving the frame are not cut this way (a tile warped from the
    frame would alias what the halving smooths)."""
    from streamguard.detect.canvas import cut_tile as _cut_tile
    from streamguard.detect.canvas import level_canvas
    from streamguard.detect.canvas import tile_by_tile as _tile_by_tile
    from streamguard.detect.canvas import tile_warp as _tile_warp

    det: TiledDetector = request.getfixturevalue(preset)
    img = synth.background(1920, 1080, seed=3)
    truth = _paste(img, sprites[0], 30, 40, face)  # at the corner: its tile reaches into the mirrored border
    levels = det.plan(1920, 1080)
    finest = levels[0]
    assert finest.scale != 1.0 and finest.pad > 0
    assert _tile_by_tile(finest, 5, 1920, 1080) and not _tile_by_tile(finest, len(finest.tiles), 1920, 1080)
    assert not any(_tile_by_tile(lv, 1, 1920, 1080) for lv in levels if lv.scale <= 0.5)
    m, canvas = level_canvas([img], finest)
    for t in finest.tiles:
        want = canvas[t.y:t.y + finest.size, t.x:t.x + finest.size].astype(int)
        got = _cut_tile(img, _tile_warp(m, t), finest, t).astype(int)
        assert np.abs(got - want).mean() < 0.5, f"tile at {t.x},{t.y}"
    corner = [t for t in finest.tiles if t.box.contains(truth)]
    assert corner
    assert _hits(det.detect(img, tiles=corner[:1]), truth), "the face is found through the warped tile"


def test_photos_are_searched_mirrored_too(balanced: TiledDetector, sprites: list[synth.FaceSprite]) -> None:
    """BlazeFace is not symmetric: on this scene of 7-13 px faces the plain pass leaves two faces
    that the mirror image shows. The photo plan runs both passes and covers every face either
    found."""
    img = synth.background(640, 360, seed=2)
    astronaut = sprites[1]  # scikit-image is a test dependency
    gts = [_paste(img, astronaut, 60 + i * 80, 100 + (i % 2) * 140, h)
           for i, h in enumerate([7, 8, 9, 10, 11, 12, 13])]

    def covered(dets: list[Detection], gt: Box) -> bool:
        return any(d.box.iou(gt) >= 0.3 or d.box.contains(gt) for d in dets)

    plain = balanced.detect(img, still=True)
    both = balanced.stills().detect(img)
    for gt in gts:
        assert covered(both, gt) or not covered(plain, gt), "the mirror pass never takes a face away"
    assert not covered(plain, gts[0]) and not covered(plain, gts[3])
    assert covered(both, gts[0]) and covered(both, gts[3]), both


def test_the_photo_plan_sees_a_mirrored_photo_as_the_photo(balanced: TiledDetector,
                                                           sprites: list[synth.FaceSprite]) -> None:
    img = synth.background(640, 360, seed=3)
    for i, h in enumerate([9, 11, 14, 20, 40]):
        _paste(img, sprites[i % len(sprites)], 70 + i * 120, 120 + (i % 2) * 120, h)
    stills = balanced.stills()
    a = sorted(d.box.as_int() for d in stills.detect(img))
    b = sorted(d.box.mirrored(640).as_int() for d in stills.detect(np.ascontiguousarray(img[:, ::-1])))
    assert a and len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert max(abs(p - q) for p, q in zip(x, y, strict=True)) <= 1, (a, b)
