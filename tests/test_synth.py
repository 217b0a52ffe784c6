"""Tests for streamguard.synth: the ground truth must sit on the faces, clips must be what they claim."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamguard.synth import (
    FaceSprite,
    FaceTrack,
    GroundTruth,
    Scene,
    background,
    load_faces,
    paste_face,
    render,
    write_clip,
)
from streamguard.types import Box

SAMPLES = Path(__file__).resolve().parents[1] / "sample_media"


def _square_sprite() -> FaceSprite:
    """A 100x100 opaque sprite, white exactly inside its face box (30..70), black elsewhere."""
    rgb = np.zeros((100, 100, 3), np.uint8)
    rgb[30:70, 30:70] = 255
    return FaceSprite("square", rgb, np.ones((100, 100), np.float32), Box(30, 30, 70, 70))


def test_load_faces() -> None:
    faces = load_faces()
    assert faces and faces[0].name == "grace_hopper"
    for s in faces:
        h, w = s.rgb.shape[:2]
        assert s.rgb.dtype == np.uint8 and s.alpha.shape == (h, w)
        assert 0 <= s.face.x1 < s.face.x2 <= w and 0 <= s.face.y1 < s.face.y2 <= h
        cx, cy = (int(v) for v in s.face.center)
        assert s.alpha[cy, cx] == 1.0 and s.alpha[0, 0] == 0.0


@pytest.mark.parametrize(
    "box",
    [
        Box(50.5, 40.25, 130.5, 120.25),  # enlarged 2x, sub-pixel position
        Box(20.3, 60.7, 36.3, 76.7),  # shrunk to 0.4x
        Box(10.0, 10.0, 90.0, 50.0),  # stretched: width and height scale differently
    ],
)
def test_paste_face_lands_exactly(box: Box) -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    gt = paste_face(image, _square_sprite(), box)
    assert gt == box
    mass = image[..., 0].astype(np.float64) / 255
    ys, xs = np.mgrid[0:200, 0:200] + 0.5
    assert mass.sum() == pytest.approx(box.area, rel=0.03)
    assert (mass * xs).sum() / mass.sum() == pytest.approx(box.center[0], abs=0.2)
    assert (mass * ys).sum() / mass.sum() == pytest.approx(box.center[1], abs=0.2)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(-20, 10, 30, 60), Box(0, 10, 30, 60)),  # left edge
        (Box(80, 70, 130, 120), Box(80, 70, 100, 100)),  # bottom-right corner
        (Box(150, 10, 200, 60), Box(100, 10, 100, 60)),  # wholly outside: empty
    ],
)
def test_paste_face_clips_at_border(box: Box, expected: Box) -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    assert paste_face(image, load_faces()[0], box) == expected
    if expected.is_empty():
        assert not image.any()


def test_paste_face_rotation_and_brightness() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    box = Box(60, 60, 140, 140)
    gt = paste_face(image, _square_sprite(), box, angle=90)
    assert (gt.x1, gt.y1, gt.x2, gt.y2) == pytest.approx((60, 60, 140, 140))
    gt = paste_face(np.zeros_like(image), _square_sprite(), box, angle=45)
    half = 40 * np.sqrt(2)
    assert (gt.x1, gt.y1, gt.x2, gt.y2) == pytest.approx((100 - half, 100 - half, 100 + half, 100 + half))
    dim = np.zeros_like(image)
    paste_face(dim, _square_sprite(), box, brightness=0.5)
    assert dim[100, 100, 0] == 128


def test_background_is_deterministic_and_textured() -> None:
    a = background(320, 240, 3)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, background(320, 240, 3))
    assert not np.array_equal(a, background(320, 240, 4))
    a[:] = 0  # a copy: the cached background must not change
    assert background(320, 240, 3).std() > 20


def test_render_lists_only_visible_faces() -> None:
    scene = Scene(320, 240, 10, 2.0, seed=1, cuts=(1.0,), faces=(
        FaceTrack(0, 0.0, 2.0, ((0.0, 100, 120, 60),)),
        FaceTrack(0, 0.5, 2.0, ((0.0, 250, 120, 40),)),  # appears at 0.5 s
        FaceTrack(0, 0.0, 2.0, ((0.0, 400, 120, 40),)),  # off-frame the whole time
    ))
    _, boxes0 = render(scene, 0)
    image, boxes1 = render(scene, 5)
    # Width follows the sprite's face aspect (BlazeFace boxes are nearly square).
    assert len(boxes0) == 1 and boxes0[0].center == pytest.approx((100, 120), abs=1e-3)
    assert boxes0[0].height == 60 and boxes0[0].width == pytest.approx(60, abs=0.1)
    assert len(boxes1) == 2
    after_cut, _ = render(scene, 10)
    assert not np.array_equal(after_cut[:20, :20], image[:20, :20])  # background changed at the cut


@pytest.mark.parametrize("sprite", range(len(load_faces())))
def test_ground_truth_matches_mediapipe(sprite: int) -> None:
    mp = pytest.importorskip("mediapipe")
    scene = Scene(640, 480, 30, 1.0, seed=5, faces=(FaceTrack(sprite, 0.0, 1.0, ((0.0, 300, 250, 180),)),))
    image, (gt,) = render(scene, 0)
    # MediaPipe's own full-range graph, as the boxes were measured (see synth.GRACE_HOPPER_FACE).
    with mp.solutions.face_detection.FaceDetection(model_selection=1) as fd:
        result = fd.process(image)
    found = [d.location_data.relative_bounding_box for d in result.detections or []]
    ious = [gt.iou(Box.from_xywh(b.xmin * 640, b.ymin * 480, b.width * 640, b.height * 480)) for b in found]
    assert max(ious, default=0.0) > 0.5


def _audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_write_clip(tmp_path: Path, suffix: str) -> None:
    path = ((0.0, 80, 120, 60), (1.5, 240, 120, 60))
    scene = Scene(320, 240, 10, 1.5, faces=(FaceTrack(0, 0.0, 1.5, path),))
    gt = write_clip(tmp_path / f"a{suffix}", scene)
    assert len(gt.frames) == 15 and [f.index for f in gt.frames] == list(range(15))
    with av.open(str(tmp_path / f"a{suffix}")) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (a.codec_context.name, a.rate, a.channels) == ("aac", 48000, 2)
        assert [f.pts for f in c.decode(v)] == [f.pts for f in gt.frames]
        assert c.duration / 1e6 == pytest.approx(1.5, abs=0.05)
    assert gt.frames[-1].time == pytest.approx(1.4, abs=0.002)
    assert all(len(f.boxes) == 1 for f in gt.frames)
    # Same scene, same audio: tests compare audio packets of input and output.
    write_clip(tmp_path / f"b{suffix}", scene)
    assert _audio_packets(tmp_path / f"a{suffix}") == _audio_packets(tmp_path / f"b{suffix}")


def test_write_clip_vfr_rotation_no_audio(tmp_path: Path) -> None:
    scene = Scene(320, 240, 20, 1.0, faces=(FaceTrack(0, 0.0, 1.0, ((0.0, 160, 120, 80),)),))
    gt = write_clip(tmp_path / "v.mp4", scene, vfr=True, rotation=90, audio=False)
    steps = np.diff([f.pts for f in gt.frames])
    assert (steps > 0).all() and len(set(steps.tolist())) > 2
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert not c.streams.audio
        assert next(c.decode(video=0)).rotation == 90
    assert gt.rotation == 90


def test_ground_truth_json_round_trip(tmp_path: Path) -> None:
    scene = Scene(160, 120, 5, 1.0, faces=(FaceTrack(0, 0.0, 1.0, ((0.0, 80, 60, 33.3),)),))
    gt = write_clip(tmp_path / "c.mkv", scene)
    gt.to_json(tmp_path / "gt.json")
    assert GroundTruth.from_json(tmp_path / "gt.json") == gt
    data = json.loads((tmp_path / "gt.json").read_text())
    assert {"width", "height", "fps", "frames"} <= data.keys()
    assert data["frames"][0].keys() >= {"index", "time", "boxes"} and len(data["frames"][0]["boxes"][0]) == 4
    assert gt.time_base == Fraction(1, 1000)


@pytest.mark.skipif(not (SAMPLES / "sample.json").exists(), reason="samples not generated")
def test_bundled_samples_match_their_ground_truth() -> None:
    from PIL import Image, ImageOps

    gt = GroundTruth.from_json(SAMPLES / "sample.json")
    with av.open(str(SAMPLES / "sample.mp4")) as c:
        pts = sorted(p.pts for p in c.demux(c.streams.video[0]) if p.pts is not None)
        assert c.streams.audio
    assert pts == [f.pts for f in gt.frames] and len(pts) == 240
    photo = json.loads((SAMPLES / "photo.json").read_text())
    with Image.open(SAMPLES / "photo.jpg") as im:
        assert im.getexif().get(0x0112) == 6
        assert ImageOps.exif_transpose(im).size == (photo["width"], photo["height"])
    assert len(photo["boxes"]) == 3
