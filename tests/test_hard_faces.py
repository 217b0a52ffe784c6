"""The kinds of face real footage showed exposed (issue 17), each on real pixels: faces lying on
their side or upside down, back rows of tiny faces in a photo, tilted heads, faces cut by the
frame edge, dark faces; and cover that stays on the heads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from streamguard import anonymize_image, anonymize_video, synth
from streamguard.detect import TiledDetector, known, recheck, sweep
from streamguard.detect.base import BlazeFaceDetector
from streamguard.detect.plan import PRESETS, View
from streamguard.detect.still import StillDetector
from streamguard.types import Box, Detection

from .pixels import decode_rgb, face_similarity


@pytest.fixture(scope="module")
def balanced() -> TiledDetector:
    with TiledDetector("balanced") as det:
        yield det


def _exposed(original: list[np.ndarray], output: list[np.ndarray], gt: synth.GroundTruth) -> list[str]:
    out = []
    for i, (a, b, f) in enumerate(zip(original, output, gt.frames, strict=True)):
        for box in f.boxes:
            energy, corr = face_similarity(a, b, box)
            if not (energy < 0.2 and corr < 0.5):
                out.append(f"frame {i} {box}: energy {energy:.2f} corr {corr:.2f}")
    return out


def test_faces_lying_sideways_and_upside_down_are_covered_in_video(tmp_path: Path, balanced) -> None:
    # A camera held sideways without rotation metadata, a person lying down: BlazeFace, trained on
    # upright faces, finds such faces only now and then (before the quarter-turned passes, 14 of
    # these 135 face-frames were left recognisable).
    scene = synth.Scene(width=1280, height=720, fps=30, duration=1.5, seed=5, faces=(
        synth.FaceTrack(0, 0.0, 1.5, ((0.0, 250, 360, 170), (1.5, 300, 380, 170)), rotation=((0.0, 90.0),)),
        synth.FaceTrack(1, 0.0, 1.5, ((0.0, 640, 330, 130), (1.5, 660, 320, 130)), rotation=((0.0, 180.0),)),
        synth.FaceTrack(0, 0.0, 1.5, ((0.0, 1020, 400, 220), (1.5, 990, 380, 220)), rotation=((0.0, -90.0),)),
    ))
    src, out = tmp_path / "turned.mp4", tmp_path / "out.mp4"
    gt = synth.write_clip(src, scene)
    anonymize_video(src, out, detector=balanced)
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == len(gt.frames) == 45
    assert sum(len(f.boxes) for f in gt.frames) == 135
    assert _exposed(original, anonymized, gt) == []


def _back_rows() -> tuple[np.ndarray, list[Box]]:
    """A 1400 px group photo's back rows: 40 faces of 12-23 px."""
    sprites = synth.load_faces()
    image = synth.background(1400, 933, seed=11)
    faces = []
    for row, height in enumerate((12, 14, 16, 19, 23)):
        for k in range(8):
            sprite = sprites[(row + k) % len(sprites)]
            width = height * sprite.face.width / sprite.face.height
            faces.append(synth.paste_face(image, sprite, Box.from_center(120 + k * 165, 120 + row * 170,
                                                                         width, height)))
    return image, faces


def test_back_rows_of_tiny_faces_in_a_photo_are_covered(tmp_path: Path) -> None:
    # A group photo's back rows: faces of 12-23 px in a 1400 px picture. The photo plan looks for
    # faces from 8 px whatever the picture's size (the video plan's 20 px, grown with the frame,
    # leaves 14 of these 40 faces, all under 17 px, unfound; in a 2000 px picture all under 17 px
    # and one of 19 px). The photo plan's cost follows the picture's area: 1400 px keeps it down.
    image, faces = _back_rows()
    src, out = tmp_path / "group.png", tmp_path / "out.png"
    Image.fromarray(image).save(src)
    anonymize_image(src, out)
    result = np.asarray(Image.open(out).convert("RGB"))
    for face in faces:
        energy, _ = face_similarity(image, result, face)
        # Under 20 px a blurred face keeps ~0.5 correlation with the original in what little detail
        # is left, so the test is on the detail itself: under a tenth of it may survive.
        assert energy < 0.1, f"{face.height:.0f} px face at {face.center}: detail energy {energy:.2f}"


def test_the_closer_photo_views_run_among_small_faces_not_on_a_portrait(monkeypatch) -> None:
    # The upscaled views for 6-24 px faces call hair and fabric faces on a portrait and blurred
    # Grace Hopper's whole photo; they run when the other views found a crowd of small sure faces.
    ran: list[View] = []
    finds = StillDetector.view_finds

    def spy(self: StillDetector, image: np.ndarray, view: View) -> list:
        ran.append(view)
        return finds(self, image, view)

    monkeypatch.setattr(StillDetector, "view_finds", spy)
    closer = [v for v in PRESETS["balanced"].still.views if v.max_face is not None]
    assert closer, "the balanced photo plan has closer views"
    with TiledDetector("balanced") as det:
        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
            portrait = StillDetector(det).detect(np.asarray(im.convert("RGB")))
        assert portrait and not [v for v in ran if v.max_face is not None], "no closer look at a portrait"
        ran.clear()
        StillDetector(det).detect(_back_rows()[0])
    assert [v for v in ran if v.max_face is not None] == closer, "a crowd of small faces gets the closer look"


def _half_hidden_face() -> tuple[np.ndarray, Box]:
    """A 1280x720 frame with an 80 px face whose left 60% is behind a skin-coloured block (a hand)."""
    image = synth.background(1280, 720, seed=1).copy()
    sprite = synth.load_faces()[-1]
    width = 80 * sprite.face.width / sprite.face.height
    face = synth.paste_face(image, sprite, Box.from_center(640, 360, width, 80))
    x1, y1, x2, y2 = face.as_int()
    image[y1 - 4:y2 + 4, x1 - 4:round(x1 + 0.6 * (x2 - x1))] = (196, 150, 120)
    return image, face


def test_a_face_half_behind_a_hand_gets_a_second_look_in_video(balanced, monkeypatch) -> None:
    # Faces looking down, in profile or half behind a hand scored 0.2-0.5 in their full-range tiles
    # on real clips, and 0.65-0.75 for the short-range model in a crop around them: full-range
    # finds from 0.4 get that second look (Preset.candidate). This face needs it.
    image, face = _half_hidden_face()
    assert any(d.box.iou(face) > 0.2 for d in balanced.detect(image))
    with TiledDetector(dataclasses.replace(PRESETS["balanced"], candidate=None)) as plain:
        assert not any(d.box.iou(face) > 0.2 for d in plain.detect(image))
        # The second look is what keeps clutter out: on empty backgrounds the candidates add at
        # most a find or two, where taking every candidate would add dozens.
        backgrounds = [synth.background(1280, 720, seed) for seed in range(6)]
        base = sum(len(plain.detect(bg)) for bg in backgrounds)
        extra = sum(len(balanced.detect(bg)) for bg in backgrounds) - base
        monkeypatch.setattr(recheck, "CANDIDATE_CONFIRM", 1e-4)
        unconfirmed = sum(len(balanced.detect(bg)) for bg in backgrounds) - base
    assert extra <= 2 < 10 <= unconfirmed, (extra, unconfirmed)


def _faint_face() -> tuple[np.ndarray, Box]:
    """A 20 px face, dark and smeared sideways (motion blur), on a 720p background: the
    short-range model scores it 0.4-0.5 in its tile, under its 0.5."""
    import cv2

    image = synth.background(1280, 720, seed=4)
    face = synth.paste_face(image, synth.load_faces()[1], Box.from_xywh(700, 400, 20, 20))
    x1, y1, x2, y2 = face.grown(0.5).as_int()
    smear = np.zeros((5, 5), np.float32)
    smear[2, :] = 1 / 5
    image[y1:y2, x1:x2] = (cv2.filter2D(image[y1:y2, x1:x2], -1, smear) * 0.3).astype(np.uint8)
    return image, face


def test_a_faint_face_found_weakly_on_frames_in_a_row_is_kept_in_video(balanced) -> None:
    # On real clips nothing had been tuned on, motion-blurred passers-by of 20-30 px and faces in
    # dim rooms scored 0.4-0.5 for the short-range model frame after frame, never its 0.5: such
    # weak finds are followed in their own crop and kept once found on WEAK_CONFIRM frames in a row.
    from streamguard.detect.sweep import WEAK_CONFIRM, SweepDetectStage
    from streamguard.types import Frame

    image, face = _faint_face()

    def hits(detector: TiledDetector) -> list[bool]:
        stage = SweepDetectStage(detector, fps=30, period=0.25)
        return [any(d.box.iou(face) > 0.3 for d in stage(Frame(image=image.copy(), index=i)).detections)
                for i in range(24)]

    # thorough's weak score (0.4); balanced's 0.45 is the same mechanism with a higher bar.
    with (TiledDetector(dataclasses.replace(PRESETS["balanced"], weak=None)) as plain,
          TiledDetector(dataclasses.replace(PRESETS["balanced"], weak=PRESETS["thorough"].weak)) as weak):
        assert not any(hits(plain)), "the sweep alone never keeps this face"
        found = hits(weak)
        slices = SweepDetectStage(weak, fps=30, period=0.25).slices
    assert True in found, "weakly found, followed, kept"
    first = found.index(True)
    assert first < slices + WEAK_CONFIRM, first
    # Then on (nearly) every frame: a look that misses once drops the find until the sweep's
    # tile finds it again; the tracker's hold covers such a gap.
    assert sum(found[first:]) >= len(found) - first - 2, found


def test_a_faint_face_of_24_px_or_more_is_followed_from_a_lower_score(balanced) -> None:
    # On real clips nothing was tuned on, profiles and faces looking down or against a window, of
    # 24-60 px, scored 0.4-0.45 in their tiles (a canteen, a cafeteria, a sitcom): balanced follows
    # weak finds of that size from 0.4 (Preset.weak_large), smaller ones from 0.45 as before.
    import cv2

    from streamguard.detect.plan import WEAK_LARGE_FACE
    from streamguard.detect.sweep import SweepDetectStage
    from streamguard.types import Frame

    image = synth.background(1280, 720, seed=4)
    face = synth.paste_face(image, synth.load_faces()[-1], Box.from_xywh(700, 400, 28, 28))
    x1, y1, x2, y2 = face.grown(0.5).as_int()
    smear = np.zeros((5, 5), np.float32)
    smear[2, :] = 1 / 5
    image[y1:y2, x1:x2] = (cv2.filter2D(image[y1:y2, x1:x2], -1, smear) * 0.3).astype(np.uint8)
    assert face.height >= WEAK_LARGE_FACE

    def hits(detector: TiledDetector) -> int:
        stage = SweepDetectStage(detector, fps=30, period=0.25)
        return sum(any(d.box.iou(face) > 0.3 for d in stage(Frame(image=image.copy(), index=i)).detections)
                   for i in range(16))

    with TiledDetector(dataclasses.replace(PRESETS["balanced"], weak_large=None)) as before:
        assert hits(before) == 0, "followed from 0.45 only, this face is never kept"
    assert hits(balanced) >= 16 - sweep.WEAK_CONFIRM


def test_weak_finds_on_empty_backgrounds_are_rarely_kept(balanced) -> None:
    # Clutter scores 0.4-0.5 here and there too; needing the same spot found again on frames in a
    # row keeps most of it out (on a still picture every weak spot is looked at again).
    from streamguard.detect.sweep import SweepDetectStage
    from streamguard.types import Frame

    kept = weak = 0
    for seed in range(6):
        bg = synth.background(1280, 720, seed)
        with TiledDetector(dataclasses.replace(PRESETS["balanced"], weak=None)) as plain:
            base = SweepDetectStage(plain, fps=30, period=0.25)
            before = [len(base(Frame(image=bg.copy(), index=i)).detections) for i in range(16)]
        stage = SweepDetectStage(balanced, fps=30, period=0.25)
        after = [len(stage(Frame(image=bg.copy(), index=i)).detections) for i in range(16)]
        kept += max(after) - max(before)
        faint: list = []
        balanced.detect(bg, weak=faint)
        weak += len(faint)
    assert weak >= 4, "clutter does score in the weak range here"
    assert kept <= weak // 2, (kept, weak)


def test_a_dark_out_of_focus_face_and_one_cut_by_the_frame_edge_are_covered_in_video(
        tmp_path: Path, balanced) -> None:
    # Real footage left a dark, out-of-focus 55 px background face on a stage visible on a third
    # of its frames, and a face cut by the right frame edge. Here both, on every frame: the dark one
    # at a third of its brightness and blurred (sigma 5% of its height), the other entering from
    # past the right edge (a quarter of it in the picture at first, two thirds at the end).
    scene = synth.Scene(width=1280, height=720, fps=30, duration=2.0, seed=3, faces=(
        synth.FaceTrack(0, 0.0, 2.0, ((0.0, 400, 300, 55), (2.0, 440, 310, 55)), brightness=0.35,
                        defocus=0.05),
        synth.FaceTrack(1, 0.0, 2.0, ((0.0, 1310, 420, 130), (2.0, 1250, 400, 130))),
    ))
    src, out = tmp_path / "hard.mp4", tmp_path / "out.mp4"
    gt = synth.write_clip(src, scene)
    anonymize_video(src, out, detector=balanced)
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == len(gt.frames) == 60
    dark = dataclasses.replace(gt, frames=tuple(dataclasses.replace(f, boxes=f.boxes[:1]) for f in gt.frames))
    assert _exposed(original, anonymized, dark) == []
    for i, (a, b, f) in enumerate(zip(original, anonymized, gt.frames, strict=True)):
        energy, corr = face_similarity(a, b, f.boxes[1])
        # A face half out of the picture keeps some correlation in what little detail is left
        # (0.3-0.5 at frames where a quarter of it shows); the detail itself is gone.
        assert energy < 0.1 and corr < 0.6, f"frame {i}, cut face: energy {energy:.2f} corr {corr:.2f}"


def test_a_face_by_the_frame_edge_is_not_chased_into_the_mirrored_border(balanced) -> None:
    # Crops centred on a known face mirror the frame past its edge, so a face by the edge shows
    # there too. Its reflection was taken for the face and looked for again further out, frame
    # after frame, while the face itself stayed by the edge uncovered (a real clip, 79 px).
    image = synth.background(640, 360, seed=3).copy()
    sprite = synth.load_faces()[0]
    width = 100 * sprite.face.width / sprite.face.height
    face = synth.paste_face(image, sprite, Box.from_xywh(15, 120, width, 100))
    where = Box(-60, 120, 40, 220)  # where it was last found: half its box past the edge
    model = BlazeFaceDetector(model="short", threshold=0.3)
    try:
        ghosts = [d.box for d in recheck.centred_finds(model, image, where, 0.0, 0.3, (2.0,), fold=False)
                  if d.box.x2 < 0]
    finally:
        model.close()
    assert ghosts, "control: the mirrored crop shows the face's reflection past the edge"
    again = balanced.look_again(image, [Detection(where, 0.5, 0.0)], [0.3])[0]
    assert again is not None, "the face is found again"
    assert again.box == again.box.clipped(640, 360), f"{again.box} reaches past the frame"
    assert again.box.intersection(face) >= 0.8 * face.area, f"{again.box} leaves the face {face}"


def test_a_big_tilted_face_with_a_phone_at_its_cheek_is_covered_in_a_photo(tmp_path: Path) -> None:
    # A 200x280 px frontal face, head tilted, a phone held at the cheek, in a 2000 px photo was
    # left fully visible by real-footage testing. Both faces, tilted either way, in one photo (a
    # 2000 px photo costs the photo plan most of a minute on a slow 2-core machine).
    import cv2

    image = synth.background(2000, 1333, seed=7).copy()
    faces = []
    for sprite, angle, cx in zip(synth.load_faces(), (30, -30), (600, 1400), strict=False):
        face = synth.paste_face(image, sprite, Box.from_center(cx, 600, 200, 280), angle=angle)
        phone = cv2.boxPoints(((cx - 110, 640), (70, 160), -angle)).astype(np.int32)
        cv2.fillPoly(image, [phone], (25, 25, 30))
        faces.append((sprite.name, angle, face))
    src, out = tmp_path / "tilted.png", tmp_path / "out.png"
    Image.fromarray(image).save(src)
    anonymize_image(src, out)
    result = np.asarray(Image.open(out).convert("RGB"))
    for name, angle, face in faces:
        energy, corr = face_similarity(image, result, face)
        assert energy < 0.2 and corr < 0.5, f"{name} at {angle} deg: {energy:.2f}, {corr:.2f}"


def _hidden_face_clip(path: Path) -> tuple[list[Box], int]:
    """An 80 px face seen whole for 0.4 s, then for 1.6 s with all but its brow and eyes hidden
    behind a hand-coloured block: (the visible strip on each hidden frame, the first hidden frame)."""
    sprite = synth.load_faces()[0]
    image = synth.background(1280, 720, seed=4)
    face = synth.paste_face(image, sprite, Box.from_xywh(600, 300, 80, 80))
    x1, y1, x2, y2 = face.as_int()
    hidden = image.copy()
    cut = y1 + round(0.28 * (y2 - y1))
    hidden[cut:y2 + 24, x1 - 8:x2 + 8] = (150, 110, 90)
    shown = 12
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt, s.options = 1280, 720, "yuv420p", {"crf": "18"}
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(image if i < shown else hidden, format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return [Box(x1, y1, x2, cut)] * (60 - shown), shown


def test_a_sure_face_hidden_but_its_eyes_stays_covered(tmp_path: Path, balanced, monkeypatch) -> None:
    # The sitcom's man eating, a hand or a cup before the mouth: a face the models were sure of
    # scores 0.3-0.4 once only its brow and eyes show, under every threshold. It is looked for
    # where it was at a lower bar (``known.SURE_KEEP``), so the hold does not run out on it.
    src = tmp_path / "hidden.mp4"
    strips, first = _hidden_face_clip(src)
    original = decode_rgb(src)

    def exposed(out: Path) -> list[int]:
        anonymize_video(src, out, detector=balanced)
        frames = decode_rgb(out)
        assert len(frames) == len(original) == 60
        shown = []
        for i, box in enumerate(strips, start=first):
            energy, corr = face_similarity(original[i], frames[i], box)
            if not (energy < 0.2 and corr < 0.5):
                shown.append(i)
        return shown

    assert exposed(tmp_path / "out.mp4") == []
    # Control: without the lower bars the eyes show once the hold (0.5 s) is over.
    monkeypatch.setattr(known, "SURE_MEMORY", -1.0)
    monkeypatch.setattr(known, "FOUND_MEMORY", -1.0)
    assert len(exposed(tmp_path / "without.mp4")) > 20


@pytest.mark.parametrize(("start", "frames"), [(0.0, 1), (0.9, 30)], ids=["one-frame clip", "last frames"])
def test_faces_the_sweep_has_no_time_for_are_covered(tmp_path: Path, balanced, start: float,
                                                    frames: int) -> None:
    # Each frame runs a slice of the tile plan (a quarter-second's worth of frames make it whole),
    # and a face found late is backfilled over the frames before. A clip shorter than that, or a
    # face that comes into view on a file's last frames, had neither: 9 of these 15 faces of 26 px
    # were left on a one-frame clip, and 12 of their 45 face-frames in the last three of thirty.
    # The first frame and the last are searched with the whole plan.
    faces = tuple(synth.FaceTrack(k % 6, start, 1.0, ((0.0, 130 + (k % 5) * 250, 130 + (k // 5) * 230, 26),))
                  for k in range(15))
    scene = synth.Scene(width=1280, height=720, fps=30, duration=frames / 30, seed=3, faces=faces)
    src, out = tmp_path / "short.mp4", tmp_path / "out.mp4"
    gt = synth.write_clip(src, scene)
    anonymize_video(src, out, detector=balanced)
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == frames
    assert sum(len(f.boxes) for f in gt.frames) == 15 * (frames - round(start * 30))
    assert _exposed(original, anonymized, gt) == []


def test_faces_of_a_shot_shorter_than_the_sweep_are_covered(tmp_path: Path, balanced) -> None:
    # The same at a scene cut: a shot of a tenth of a second (three frames) between two others
    # gives the sweep three of its eight slices, and no find in the next shot is backfilled across
    # the cut. The frames either side of a cut are searched with the whole plan.
    faces = tuple(synth.FaceTrack(k % 6, 0.3, 0.4, ((0.0, 130 + (k % 5) * 250, 130 + (k // 5) * 230, 26),))
                  for k in range(15))
    scene = synth.Scene(width=1280, height=720, fps=30, duration=1.0, seed=3, faces=faces, cuts=(0.3, 0.4))
    src, out = tmp_path / "shots.mp4", tmp_path / "out.mp4"
    gt = synth.write_clip(src, scene)
    anonymize_video(src, out, detector=balanced)
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == 30
    assert [i for i, f in enumerate(gt.frames) if f.boxes] == [9, 10, 11]
    assert _exposed(original, anonymized, gt) == []


def _soft_face_clip(tmp_path: Path, seed: int, frames: int) -> tuple[Path, list[np.ndarray], Box]:
    """A still 720p clip of ``synth.soft_part_scene`` (a dark, out-of-focus 55 px face at the
    back), its frames and that face's box."""
    image, face = synth.soft_part_scene(1280, 720, 55, 3.5, 0.4, seed=seed)
    src = tmp_path / f"soft{seed}.mp4"
    synth.write_still(src, image, frames)
    return src, decode_rgb(src), face


def _soft_face_shown(src: Path, original: list[np.ndarray], face: Box, out: Path,
                     detector: TiledDetector) -> list[int]:
    """The frames of ``src`` anonymized into ``out`` on which the soft ``face`` is left. A face
    already out of focus keeps its coarse shape under any blur, so the correlation of what little
    detail is left says little; its detail energy (0.8 left as it was, under 0.1 blurred) tells a
    covered frame from an exposed one."""
    anonymize_video(src, out, detector=detector)
    frames = decode_rgb(out)
    assert len(frames) == len(original)
    return [i for i, (a, b) in enumerate(zip(original, frames, strict=True))
            if face_similarity(a, b, face)[0] >= 0.2]


def test_a_dark_soft_face_no_plain_look_finds_is_covered_once_its_tiles_are_sharpened(
        tmp_path: Path, balanced, monkeypatch) -> None:
    # A dark, out-of-focus 55 px face at the back of a still scene that neither the tiles as they
    # are nor mirrored find: from their third run on unchanged pixels (after 2 s) the tiles get a
    # second look, sharpened (sweep.SHARPEN), which finds it, and it stays covered to the end.
    src, original, face = _soft_face_clip(tmp_path, seed=3, frames=75)
    late = _soft_face_shown(src, original, face, tmp_path / "out.mp4", balanced)
    assert late and max(late) < 55, late  # found late (a third look), then covered to the end
    monkeypatch.setattr(sweep, "SHARPEN", False)  # control: never found
    assert len(_soft_face_shown(src, original, face, tmp_path / "without.mp4", balanced)) == 75


def test_a_dark_soft_face_found_now_and_then_is_kept_while_its_pixels_stay_still(
        tmp_path: Path, balanced, monkeypatch) -> None:
    # A still scene's dark, out-of-focus 55 px face that the sweep finds on its first frames and
    # then only now and then: its crop's lower bar loses it after a second, and it showed for over
    # a second until the next find. Pixels that have not changed since it was found still hold it
    # (known.STILL_MEMORY), so it is kept where it was.
    src, original, face = _soft_face_clip(tmp_path, seed=5, frames=100)
    assert _soft_face_shown(src, original, face, tmp_path / "out.mp4", balanced) == []
    monkeypatch.setattr(known, "STILL_MEMORY", -1.0)  # control: let go when the lower bar's time is up
    assert len(_soft_face_shown(src, original, face, tmp_path / "without.mp4", balanced)) >= 20


def test_a_dark_soft_face_found_once_stays_covered(tmp_path: Path, balanced, monkeypatch) -> None:
    # The back of a stage or a room: a dark, out-of-focus 55 px face behind a sharp subject. A tile
    # of the sweep that frames it well finds it at 0.5-0.66; the crop that follows it scores it
    # 0.4-0.5, so it was lost after the first frames, the hold ran out and it showed until the
    # sweep's next look at its unchanged tile a second later. A face found is looked for where it
    # was at ``known.FOUND_KEEP`` for ``known.FOUND_MEMORY`` seconds after its last find.
    src, original, face = _soft_face_clip(tmp_path, seed=2, frames=50)
    assert _soft_face_shown(src, original, face, tmp_path / "out.mp4", balanced) == []
    monkeypatch.setattr(known, "FOUND_MEMORY", -1.0)  # control: lost once the hold is over ...
    monkeypatch.setattr(known, "STILL_MEMORY", -1.0)  # ... its still pixels not holding it either
    assert len(_soft_face_shown(src, original, face, tmp_path / "without.mp4", balanced)) >= 5
