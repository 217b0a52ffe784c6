"""The spread sweep: every tile once per period (unless its pixels did not change), known faces
looked at on every frame."""

from __future__ import annotations

from fractions import Fraction

import pytest

from streamguard.detect import Tile, TiledDetector, known, sweep
from streamguard.detect.sweep import SweepDetectStage
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box, Detection, Frame


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
    spread = {(t.level, t.x, t.y) for lv in levels for t in lv.tiles}
    # The first run takes the whole plan (nothing is known yet); the period's slices come after.
    assert {(t.level, t.x, t.y) for t in stage.tiles_for(w, h)} == spread
    stage._whole = False
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


def _at(image, i):
    return Frame(image=image.copy(), index=i, pts=i, time_base=Fraction(1, 30))


def test_unchanged_tiles_are_skipped_until_rescan(tiled, monkeypatch):
    # A scene with no face the model takes for one: a false find would add looks of its own
    # (seed 2 had one, a 143 px blob at exactly 0.5, accepted or not by the re-check as its crop
    # is resampled), and this test counts the sweep's tiles alone.
    image = background(1280, 720, seed=3)
    assert tiled.detect(image) == []
    # One view: the mirrored one scores the same pixels differently, which moves tiles across the
    # quiet line (see test_tiles_alternate_views_but_known_faces_keep_theirs).
    monkeypatch.setattr(sweep, "MIRROR", False)
    monkeypatch.setattr(sweep, "SHARPEN", False)
    stage = SweepDetectStage(tiled, fps=30, period=0.25, rescan=1.0, quiet_rescan=2.0)
    tiles = [t for lv in tiled.plan(1280, 720) for t in lv.tiles]
    total = len(tiles)
    for i in range(stage.slices):  # the first period runs everything once
        stage(_at(image, i))
    assert stage.run == total
    first_quiet = {t.key for t in tiles if stage.changes.is_quiet(t)}
    quiet = len(first_quiet)
    assert 0 < quiet < total, "the clutter has spots the model half likes, and plain ones"
    for i in range(stage.slices, 30):  # then nothing changes: nothing runs, until 1 s has passed
        stage(_at(image, i))
    assert stage.run == total
    for i in range(30, 30 + 2 * stage.slices):
        stage(_at(image, i))
    assert stage.run == 2 * total - quiet, "after rescan seconds, every tile that was not quiet runs again"
    # A tile cut straight from the frame (few due) or from its level's canvas (a whole slice)
    # differs by rounding, which can move a best score right at the quiet line across it. A
    # tile that turned quiet when it re-ran at 1 s is next due quiet_rescan seconds after that.
    turned = sum(t.key not in first_quiet and stage.changes.is_quiet(t) for t in tiles)
    assert turned <= 2
    for i in range(30 + 2 * stage.slices, 60 + 2 * stage.slices):
        stage(_at(image, i))
    assert stage.run == 3 * total - quiet - turned, "after quiet_rescan seconds, every tile does"


def test_quiet_rescan_cannot_be_shorter_than_rescan(tiled):
    with pytest.raises(ValueError, match="quiet_rescan"):
        SweepDetectStage(tiled, fps=30, rescan=2.0, quiet_rescan=1.0)


def test_a_face_appearing_in_a_still_scene_is_found_within_a_period(tiled):
    still = background(1280, 720, seed=3)
    stage = SweepDetectStage(tiled, fps=30, period=0.25, rescan=10.0)
    for i in range(stage.slices):
        stage(_at(still, i))
    image = still.copy()
    truth = paste_face(image, load_faces()[1], Box.from_xywh(300, 200, 36, 36))
    hits = []
    for i in range(stage.slices, 3 * stage.slices):
        f = stage(_at(image, i))
        hits.append(any(d.box.iou(truth) > 0.3 for d in f.detections))
    first = hits.index(True)
    assert first < stage.slices, "the tiles where it appeared ran within one period"
    assert all(hits[first:]), "then it is followed on every frame"
    assert stage.run < 3 * sum(len(lv.tiles) for lv in tiled.plan(1280, 720)) // 2, "the rest was skipped"


def test_a_big_known_face_is_followed_in_its_own_crop(tiled):
    image = background(1280, 720, seed=5)
    truth = paste_face(image, load_faces()[0], Box.from_xywh(500, 200, 150, 150))
    stage = SweepDetectStage(tiled, fps=30, period=0.25)
    seen = []
    for i in range(2 * stage.slices):
        f = stage(_at(image, i))
        seen.append(any(d.box.iou(truth) > 0.4 for d in f.detections))
        if seen[-1] and i + 1 < 2 * stage.slices:
            assert stage.tiles_for(1280, 720) is not None
            assert len(stage.near) == 1 and stage.near[0].box.iou(truth) > 0.4
    first = seen.index(True)
    assert all(seen[first:])


def test_change_inside_a_known_head_does_not_count():
    """A known face moving in place (talking, nodding) does not make the tiles over it run
    again; the same change beside it does."""
    from streamguard.detect.sweep import ChangeMap

    still = background(640, 360, seed=4)
    tile = Tile(0, 0, 0, Box(0, 0, 320, 320))
    face = Box(100, 100, 180, 180)
    moved = still.copy()
    moved[130:150, 130:150] = 255 - moved[130:150, 130:150]  # inside the face box
    beside = still.copy()
    beside[130:150, 240:260] = 255 - beside[130:150, 240:260]  # well outside its head

    changes = ChangeMap()
    changes.update(still, [face])
    changes.ran([tile], now=0.0)
    changes.update(moved, [face])
    assert not changes.changed(tile, now=0.1, rescan=1.0)
    changes.update(moved, [])  # the face is no longer followed: its change counts again
    assert changes.changed(tile, now=0.1, rescan=1.0)
    changes.update(beside, [face])
    assert changes.changed(tile, now=0.1, rescan=1.0)


def test_a_sure_face_that_left_is_looked_for_only_briefly(tiled, monkeypatch):
    # A sure face that is no longer found is looked for at its place at a lower bar (see
    # test_hard_faces for one that stays), but once it has not been found even so for SURE_GONE
    # seconds it has left, and each look would be a model call for nothing.
    image = background(1280, 720, seed=4)
    empty = image.copy()
    truth = paste_face(image, load_faces()[0], Box.from_xywh(600, 300, 90, 90))
    stage = SweepDetectStage(tiled, fps=30, period=0.25)
    looks: list[int] = []
    look_again = tiled.look_again

    def spy(img, faces, min_scores):
        if sure := sum(s == known.SURE_KEEP for s in min_scores):
            looks.append(sure)
        return look_again(img, faces, min_scores)

    monkeypatch.setattr(tiled, "look_again", spy)
    for i in range(6):
        f = stage(Frame(image=image.copy(), index=i, pts=i, time_base=Fraction(1, 30)))
    assert any(d.box.iou(truth) > 0.3 and d.score >= known.SURE_SCORE for d in f.detections)
    assert looks == [], "a face found is not looked for again"
    gone_frames = round(known.SURE_GONE * 30)
    for i in range(6, 6 + 2 * gone_frames):
        f = stage(Frame(image=empty.copy(), index=i, pts=i, time_base=Fraction(1, 30)))
        assert not any(d.box.iou(truth) > 0.3 for d in f.detections)
    assert gone_frames - 1 <= len(looks) <= gone_frames + 1, looks


def test_a_face_lost_on_still_pixels_is_kept_without_looks_until_they_change(tiled, monkeypatch):
    # A face found and then lost while the pixels under it stay as they were is still there: it is
    # kept where it was, looked for at its lower bar while that lasts and with no model call after,
    # for up to STILL_MEMORY seconds; once its pixels change it is let go.
    from streamguard.detect.changes import ChangeMap
    from streamguard.detect.known import KnownFaces

    image = background(640, 360, seed=4)  # no face: nothing is found again at any bar
    box = Box.from_xywh(300, 150, 40, 40)
    looks: list[int] = []
    look_again = tiled.look_again
    monkeypatch.setattr(tiled, "look_again", lambda img, faces, bars: (looks.append(len(faces)),
                                                                       look_again(img, faces, bars))[1])
    faces, changes = KnownFaces(tiled), ChangeMap()
    changes.update(image)
    assert faces.follow(image, [Detection(box, 0.6)], 0.0, changes) == []
    kept_at = []
    for i in range(1, int(known.STILL_MEMORY * 10) + 5):  # 10 frames a second
        changes.update(image)
        kept = faces.follow(image, [], i / 10, changes)
        if kept:
            assert kept == [Detection(box, 0.6)]
            kept_at.append(i)
    assert kept_at == list(range(1, int(known.STILL_MEMORY * 10) + 1))
    assert len(looks) == int(known.FOUND_MEMORY * 10), "looked at only while its lower bar lasts"
    faces, changes = KnownFaces(tiled), ChangeMap()  # the same, but its pixels change
    changes.update(image)
    faces.follow(image, [Detection(box, 0.6)], 0.0, changes)
    changes.update(image)
    assert faces.follow(image, [], 0.1, changes) == [Detection(box, 0.6)]
    moved = image.copy()
    moved[160:180, 310:330] = 255 - moved[160:180, 310:330]
    for i in range(2, int(known.FOUND_MEMORY * 10) + 3):  # changed until its lower bar's time is up
        changes.update(moved)
        assert faces.follow(moved, [], i / 10, changes) == []
    changes.update(image)  # back as it was: let go all the same, it was not found since
    assert faces.follow(image, [], (i + 1) / 10, changes) == []


def test_tiles_alternate_views_but_known_faces_keep_theirs(tiled):
    # Each swept tile is shown mirrored on every other run, so a rescan of unchanged pixels is a
    # second opinion; a tile run to follow a known face is shown as it found it.
    stage = SweepDetectStage(tiled, fps=30, period=0.25, rescan=0.0)
    w, h = 1280, 720
    views: dict = {}
    for i in range(3 * stage.slices):
        stage._runs, stage._whole = i, i == 0
        for t in stage.tiles_for(w, h):
            views.setdefault(t.key, []).append(t.key in stage.mirrored)
    every = {t.key for lv in tiled.plan(w, h) for t in lv.tiles}
    assert set(views) == every
    # The whole plan on the first run, then each tile once a period: plain, mirrored, plain, ...
    assert all(v[:3] == [False, True, False] for v in views.values()), views
    # A face too big for a crop of three times its size is followed in its level's best tile, on
    # every run, never mirrored (its next due run included).
    big = Box.from_xywh(500, 200, 300, 300)
    assert not tiled.can_crop(w, h, big)
    follow = sweep._best_tile(sweep._level_for(tiled.plan(w, h), big.height), big)
    stage._recent = [Detection(big, 0.9)]
    for i in range(3 * stage.slices, 5 * stage.slices):
        stage._runs = i
        assert follow.key in {t.key for t in stage.tiles_for(w, h)}
        assert follow.key not in stage.mirrored


def test_tiles_are_shown_sharpened_from_their_third_run_on_unchanged_pixels(tiled):
    # Plain, then mirrored: the model has seen unchanged pixels both ways, so from the third run
    # on them a tile gets a second look, sharpened, on each run (sweep.SHARPEN); its due views
    # still alternate. Once its pixels change it starts again from the plain view.
    stage = SweepDetectStage(tiled, fps=30, period=0.25, rescan=1.0, quiet_rescan=1.0)
    w, h = 1280, 720
    still, other = background(w, h, seed=3), background(w, h, seed=4)
    views: dict = {}

    def run(image, i):
        tiles = stage.tiles_for(w, h, image=image, now=i / 30)
        for t in tiles:
            views.setdefault(t.key, []).append((t.key in stage.mirrored, t.key in stage.sharpened))
        stage.ran(tiles, i / 30, {})  # no peaks: no tile counts as quiet
        stage._runs, stage._whole = stage._runs + 1, False

    for i in range(6 * 30):
        run(still, i)
    every = {t.key for lv in tiled.plan(w, h) for t in lv.tiles}
    assert set(views) == every
    seen = [(False, False), (True, False), (False, True), (True, True), (False, True), (True, True)]
    assert all(v == seen for v in views.values()), views
    views.clear()
    for i in range(6 * 30, 6 * 30 + stage.slices):
        run(other, i)
    assert set(views) == every
    assert not any(sharp for v in views.values() for _, sharp in v), "changed pixels are shown unsharpened"
