"""The tiled detector on generated frames with real faces (real MediaPipe, no stubs)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from streamguard import synth
from streamguard.config import DetectConfig
from streamguard.detect import PRESETS, StillDetector, TiledDetector, create_detector
from streamguard.detect.plan import View
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
    # Nothing else on or around the two faces (a piece of one cut by a tile edge). Elsewhere this
    # background has one false find since full-range candidates get a second look (plan.py).
    assert len([d for d in dets if any(d.box.intersection(gt) > 0 for gt in gts)]) == 2


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


def test_a_tile_shown_mirrored_gives_its_faces_in_the_frames_own_pixels(
        balanced: TiledDetector, sprites: list[synth.FaceSprite]) -> None:
    # The video sweep shows each tile mirrored on every other run (sweep.MIRROR): its finds must
    # come back unmirrored, off-centre faces and rolled ones included.
    img = synth.background(1920, 1080, seed=8)
    gt = _paste(img, sprites[0], 1500, 300, 30)
    tilted = synth.paste_face(img, sprites[1], Box.from_center(400, 700, 60, 60), angle=25.0)
    near = balanced.tiles_near(1920, 1080, [gt, tilted])
    plain = balanced.detect(img, tiles=near)
    flipped = balanced.detect(img, tiles=near, mirrored={t.key for t in near})
    for truth in (gt, tilted):
        (a,), (b,) = _hits(plain, truth), _hits(flipped, truth)
        assert a.box.iou(b.box) > 0.7, (a, b)
        assert abs(a.roll - b.roll) < 12, (a.roll, b.roll)


def test_a_tile_shown_mirrored_gives_only_finds_at_the_threshold(balanced: TiledDetector) -> None:
    # Weak finds and full-range candidates of mirrored tiles, followed and coasting, blurred a
    # talking-head clip's shelves and hands (sweep.MIRROR): a mirrored tile gives neither.
    image, _ = synth.soft_part_scene(1280, 720, 40, 3.5, 0.4, seed=2)
    tiles = [t for lv in balanced.plan(1280, 720) for t in lv.tiles]
    plain: list[Detection] = []
    flipped: list[Detection] = []
    balanced.detect(image, tiles=tiles, weak=plain)
    found = balanced.detect(image, tiles=tiles, weak=flipped, mirrored={t.key for t in tiles})
    assert plain, "the control: shown as it is, this scene has weak finds"
    assert flipped == []
    assert found and min(d.score for d in found) >= balanced.score("short")


def test_a_tile_shown_sharpened_finds_the_dark_soft_face_plain_views_miss(balanced: TiledDetector) -> None:
    # The back of a stage: a face out of focus (sigma 3.5) at 40% light behind a sharp scene.
    # Neither the tiles as they are nor mirrored find it; sharpened (sweep.SHARPEN) they do, and
    # like mirrored ones they give finds at the threshold only.
    image, face = synth.soft_part_scene(1280, 720, 55, 3.5, 0.4, seed=3)
    keys = {t.key for lv in balanced.plan(1280, 720) for t in lv.tiles}

    def on_face(found: list[Detection]) -> list[Detection]:
        return [d for d in found if d.box.intersection(face) >= 0.5 * face.area]

    assert on_face(balanced.detect(image)) == []
    assert on_face(balanced.detect(image, mirrored=keys)) == []
    weak: list[Detection] = []
    found = balanced.detect(image, sharpened=keys, weak=weak)
    assert on_face(found), "sharpened, the tiles find the face"
    assert weak == [] and min(d.score for d in found) >= balanced.score("short")


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


def _covers(dets: list[Detection], gt: Box) -> bool:
    return any(d.box.iou(gt) >= 0.3 or d.box.contains(gt) for d in dets)


def test_photos_are_searched_in_several_views(balanced: TiledDetector,
                                              sprites: list[synth.FaceSprite]) -> None:
    """BlazeFace is not symmetric, nor the same at every scale: on this scene of 7-13 px faces the
    plain view leaves the 10 px face that the mirrored view finds. The photo plan runs the plain, the
    mirrored, the half-level-shifted and a closer view and covers every face any of them found."""
    img = synth.background(640, 360, seed=2)
    astronaut = sprites[1]  # scikit-image is a test dependency
    gts = [_paste(img, astronaut, 60 + i * 80, 100 + (i % 2) * 140, h)
           for i, h in enumerate([7, 8, 9, 10, 11, 12, 13])]
    views = PRESETS["balanced"].still.views
    assert [(v.mirrored, round(v.shift, 3), v.upscale) for v in views] == [
        (False, 1.0, None), (True, 1.0, None), (False, 1.414, None), (False, 0.75, 3.0)]
    assert views[-1].max_face == 24
    assert set(views) < set(PRESETS["thorough"].still.views), "thorough: every view of balanced, and more"

    still = StillDetector(balanced)
    plain, mirror, shifted = (still.view_finds(img, v) for v in views[:3])
    merged = still.detect(img)
    assert not _covers(plain, gts[3]) and _hits(mirror, gts[3])
    for gt in gts:
        if _covers(plain + mirror + shifted, gt):
            assert _covers(merged, gt), (gt, merged)
    for d in shifted:  # the shifted view's finds are in the result (or were a face's blown-up copy)
        assert any(m.box.iou(d.box) >= 0.3 or m.box.contains(d.box) or d.box.contains(m.box)
                   for m in merged), (d, merged)


def test_the_zoom_view_finds_small_faces_the_other_views_miss(balanced: TiledDetector,
                                                              sprites: list[synth.FaceSprite]) -> None:
    """The fourth view upscales the picture up to 3x for 6-24 px faces: on this scene of 6-12 px
    faces (two real faces at each size) it finds an 8 px face no other view finds."""
    img = synth.background(640, 360, seed=6)
    gts = [_paste(img, sp, 40 + i * 85, 70 + j * 120 + (i % 2) * 50, h)
           for i, h in enumerate([6, 7, 8, 9, 10, 11, 12]) for j, sp in enumerate(sprites[:2])]
    zoom = View(shift=0.75, upscale=3.0, max_face=24)
    assert zoom in PRESETS["balanced"].still.views
    levels = balanced.plan(640, 360, still=True, view=zoom)  # small faces only, no whole-frame pass
    assert levels and all(lv.min_face < 24 and math.isfinite(lv.max_face) for lv in levels)
    assert max(lv.scale for lv in levels) == pytest.approx(3.0)
    still = StillDetector(balanced)
    others = [d for v in PRESETS["balanced"].still.views if v != zoom for d in still.view_finds(img, v)]
    zoomed = still.view_finds(img, zoom)
    merged = still.detect(img)
    only_zoom = [g for g in gts if _covers(zoomed, g) and not _covers(others, g)]
    assert [round(g.height) for g in only_zoom] == [8]
    for gt in gts:
        if _covers(others + zoomed, gt):
            assert _covers(merged, gt), (gt, merged)


def test_the_shifted_view_puts_its_levels_between_the_plain_views(balanced: TiledDetector) -> None:
    """Each level takes faces over a 2x range; the shifted view's ranges start halfway (in scale)
    through the plain view's, so a face at the edge of a plain level sits mid-level there."""
    def upright_ranges(shift: float) -> list[float]:
        return [lv.min_face for lv in balanced.plan(1024, 687, still=True, view=View(shift=shift))
                if lv.angle == 0 and len(lv.tiles) > 1]

    plain, shifted = upright_ranges(1.0), upright_ranges(2 ** 0.5)
    assert plain[0] == pytest.approx(8) and shifted[0] == pytest.approx(8 * 2 ** 0.5)
    for lo, mid, hi in zip(plain, shifted, plain[1:], strict=False):
        assert lo < mid < hi, (plain, shifted)


def test_a_photos_weak_large_find_gets_either_models_second_look(balanced: TiledDetector) -> None:
    """A large low-score find needs a second look. In a video only the other model's counts; in a
    photo, when the other model turns it down, its own model is asked too (on real photos the
    full-range model turned down real profiles and heads tilted back) and the find is kept if
    that model finds it again. Real pixels: the cameraman picture, which has such finds."""
    from skimage import data

    img = cv2.resize(np.ascontiguousarray(np.repeat(data.camera()[:, :, None], 3, axis=2)), None,
                     fx=1.5, fy=1.5, interpolation=cv2.INTER_AREA)

    def second_looks(det: TiledDetector, still: bool) -> tuple[list[Detection], list[tuple[Box, str, bool]]]:
        calls: list[tuple[Box, str, bool]] = []
        real_verify = det.verify

        def spy(image: np.ndarray, box: Box, model: str = "short", roll: float = 0.0,
                still: bool = False, min_score: float | None = None, *, worker: int = 0) -> bool:
            ok = real_verify(image, box, model, roll, still, min_score, worker=worker)
            calls.append((box, model, ok))
            return ok

        det.verify = spy  # type: ignore[method-assign]
        try:
            return det.detect(img, still=still), calls
        finally:
            del det.verify

    found, calls = second_looks(balanced, still=True)
    # Finds are looked at on several tile workers at once, so one find's looks (in order, on one
    # worker) may be interleaved with another's: group them by find.
    per_find: dict[int, list[tuple[Box, str, bool]]] = {}
    for call in calls:
        per_find.setdefault(id(call[0]), []).append(call)
    again = [(box, ok) for looks in per_find.values()
             for (_, m0, ok0), (box, m, ok) in zip(looks, looks[1:], strict=False) if not ok0 and m != m0]
    assert any(ok for _, ok in again), "a find turned down by the other model was kept by its own"
    for box, ok in again:
        assert any(d.box is box for d in found) == ok
    # A video frame at the photo's scores (so that it has such finds): one look each, the other model's.
    with TiledDetector("balanced", threshold=0.35) as low:
        found, calls = second_looks(low, still=False)
    assert calls and len(calls) == len({id(box) for box, *_ in calls}), "video: one look per find"
    turned_down = [box for box, _, ok in calls if not ok]
    assert turned_down and not any(d.box is box for d in found for box in turned_down)
