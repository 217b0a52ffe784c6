"""Temporal safety end to end: real files through ``anonymize_video``, judged on output pixels.

The real detector runs; only chosen frames are hidden from it, so the tracker must coast through
missed detections, backfill a face before its first detection and end tracks at a scene cut.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamguard import Config, TrackConfig, anonymize_video, synth
from streamguard.anonymize import head_box
from streamguard.detect import FaceDetector
from streamguard.scenecut import SceneCutDetector
from streamguard.types import Box, Detection

from .pixels import assert_destroyed, crop, decode_rgb

W, H, FPS = 640, 360, 30
# One face crossing the frame at ~7 px per frame: coasting must follow it, not just hold still.
MOVING = synth.Scene(W, H, FPS, 1.5, seed=21, faces=(
    synth.FaceTrack(0, 0.0, 1.5, ((0.0, 150, 180, 130), (1.5, 470, 190, 130))),))
# A face walking in through the left edge (~9 px per frame), fully visible from about frame 15.
ENTERING = synth.Scene(W, H, FPS, 1.5, seed=22, faces=(
    synth.FaceTrack(1, 0.0, 1.5, ((0.0, -80, 180, 120), (1.5, 340, 190, 120))),))
CUT_AT = 0.75
# Shot A's face on the left, shot B's on the right: after the cut nothing may stay on the left.
CUT = synth.Scene(W, H, FPS, 1.5, seed=23, cuts=(CUT_AT,), faces=(
    synth.FaceTrack(0, 0.0, CUT_AT, ((0.0, 170, 180, 130), (CUT_AT, 190, 180, 130))),
    synth.FaceTrack(1, CUT_AT, 1.5, ((CUT_AT, 470, 180, 110), (1.5, 450, 185, 110))),
))
DROPPED = range(15, 20)  # five consecutive frames with no detection
NOT_LIVE = Config(track=TrackConfig(lookahead=0))  # tracking and hold, no backfill
NO_HOLD = Config(track=TrackConfig(hold=0, lookahead=0))


class Blinking:
    """The real detector, blind on chosen frames (``DetectStage`` calls it once per frame, in order)."""

    def __init__(self, inner: FaceDetector, blind: Container[int]) -> None:
        self.inner = inner
        self.blind = blind
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        index, self.calls = self.calls, self.calls + 1
        return [] if index in self.blind else self.inner.detect(image)

    def close(self) -> None:
        pass  # the session fixture owns the real detector


@dataclass
class Run:
    gt: synth.GroundTruth
    original: list[np.ndarray]
    output: list[np.ndarray]
    report: dict[str, Any]

    def regions(self, index: int) -> list[dict[str, Any]]:
        frame = self.report["frames"][index]
        assert frame["index"] == index
        return frame["regions"]

    def sources(self, index: int) -> set[str]:
        return {r["source"] for r in self.regions(index)}

    def face(self, index: int, k: int = 0) -> Box:
        return self.gt.frames[index].boxes[k]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, synth.GroundTruth]]:
    folder = tmp_path_factory.mktemp("temporal")
    out = {}
    for name, scene in (("moving", MOVING), ("entering", ENTERING), ("cut", CUT)):
        path = folder / f"{name}.mp4"
        out[name] = path, synth.write_clip(path, scene, audio=False)
    return out


@pytest.fixture(scope="module")
def run(clips, detector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``run(clip, blind_frames, config)``: anonymize, decode both files, read the report."""
    folder = tmp_path_factory.mktemp("temporal-out")
    decoded: dict[str, list[np.ndarray]] = {}

    def _run(name: str, blind: Container[int] = (), config: Config | None = None) -> Run:
        src, gt = clips[name]
        out = folder / f"{name}-{len(list(folder.iterdir()))}.mp4"
        report = out.with_suffix(".json")
        anonymize_video(src, out, config, detector=Blinking(detector, blind), report=report)
        if name not in decoded:
            decoded[name] = decode_rgb(src)
        output = decode_rgb(out)
        assert len(output) == len(decoded[name]) == len(gt.frames)
        return Run(gt, decoded[name], output, json.loads(report.read_text()))

    yield _run


def exposed(r: Run, index: int, k: int = 0) -> bool:
    try:
        assert_destroyed(r.original[index], r.output[index], r.face(index, k))
    except AssertionError:
        return True
    return False


def test_face_stays_covered_through_five_missed_detections(run) -> None:
    r = run("moving", DROPPED)
    for i in range(len(r.output)):
        assert_destroyed(r.original[i], r.output[i], r.face(i), f"frame {i}")
    # The detector really saw the face around the gap, and the report says why it stayed covered.
    assert r.sources(DROPPED[0] - 1) == r.sources(DROPPED[-1] + 1) == {"detection"}
    for i in DROPPED:
        # Coasting covers them; the bridge between the two sightings may add backfill.
        assert "prediction" in r.sources(i) and r.sources(i) <= {"prediction", "backfill"}, i
    ids = {reg["track_id"] for i in range(len(r.output)) for reg in r.regions(i)}
    assert len(ids) == 1, f"one face, one track through the gap, got {ids}"
    assert r.report["summary"]["prediction"] >= len(DROPPED)


def test_without_hold_the_same_frames_are_exposed(run) -> None:
    # Proves the test above can fail, and that --hold 0 turns coasting off.
    r = run("moving", DROPPED, NO_HOLD)
    for i in DROPPED:
        assert exposed(r, i), f"frame {i} should show the face with hold 0"
        assert r.regions(i) == []
    for i in (DROPPED[0] - 1, DROPPED[-1] + 1):
        assert_destroyed(r.original[i], r.output[i], r.face(i), f"frame {i}")
    assert r.report["summary"]["prediction"] == 0


def _entering_frames(gt: synth.GroundTruth) -> tuple[int, list[int]]:
    """The first frame showing the whole face, and every frame showing at least 40% of its width."""
    widths = [f.boxes[0].width if f.boxes else 0.0 for f in gt.frames]
    full = max(widths)
    first_full = next(i for i, w in enumerate(widths) if w >= full - 0.5)
    return first_full, [i for i, w in enumerate(widths) if w >= 0.4 * full]


def test_entering_face_covered_from_its_first_visible_frame(run, clips) -> None:
    first_full, visible = _entering_frames(clips["entering"][1])
    assert 0 < visible[0] < first_full < 20
    born = first_full + 3  # the detector is blind until three frames after the face is all in
    r = run("entering", range(born))
    for i in visible:
        assert_destroyed(r.original[i], r.output[i], r.face(i), f"frame {i}")
    assert "detection" in r.sources(born), "the face is detected once the detector may see it"
    for i in visible:
        if i < born:
            assert r.sources(i) == {"backfill"}, i
    track = {reg["track_id"] for reg in r.regions(born)}
    assert {reg["track_id"] for reg in r.regions(visible[0])} == track, "backfilled by the same track"
    assert r.report["summary"]["backfill"] >= born - visible[0]


def test_entering_face_exposed_without_lookahead(run, clips) -> None:
    # The control: tracking alone cannot cover the frames before the first detection.
    first_full, _ = _entering_frames(clips["entering"][1])
    born = first_full + 3
    r = run("entering", range(born), NOT_LIVE)
    for i in range(first_full, born):
        assert exposed(r, i), f"frame {i} should show the face without backfill"
    assert_destroyed(r.original[born], r.output[born], r.face(born))
    assert r.report["summary"]["backfill"] == 0


def _cut_frame(gt: synth.GroundTruth) -> int:
    return next(i for i, f in enumerate(gt.frames) if f.time >= CUT_AT - 1e-6)


def _old_shot_regions(r: Run, cut: int, frames: range) -> list[tuple[int, dict[str, Any]]]:
    """Regions on ``frames`` that belong to a track of the first shot or lie over its face."""
    old_ids = {reg["track_id"] for i in range(cut) for reg in r.regions(i)}
    old_face = head_box(r.face(cut - 1), 0.5)
    return [(i, reg) for i in frames for reg in r.regions(i)
            if reg["track_id"] in old_ids or Box(*reg["box"]).intersection(old_face) > 0]


def test_track_ends_at_scene_cut(run, clips) -> None:
    cut = _cut_frame(clips["cut"][1])
    r = run("cut")
    assert r.regions(cut - 1), "shot A's face is covered up to the cut"
    after = range(cut, cut + 6)  # hold (0.5 s) would otherwise carry it 15 frames
    assert _old_shot_regions(r, cut, after) == []
    old_face = r.face(cut - 1)
    for i in after:
        # Where shot A's face was, the picture is left alone; shot B's face is covered at once.
        diff = np.abs(crop(r.original[i], old_face).astype(int) - crop(r.output[i], old_face).astype(int))
        assert diff.mean() < 4.0, f"frame {i}: old face area changed by {diff.mean():.1f}"
        assert_destroyed(r.original[i], r.output[i], r.face(i), f"frame {i}")


def test_without_cut_detection_the_old_track_would_coast_on(run, clips, monkeypatch) -> None:
    # The control for the test above: with cuts never detected the old face's blur stays.
    monkeypatch.setattr(SceneCutDetector, "__call__", lambda self, image: False)
    cut = _cut_frame(clips["cut"][1])
    r = run("cut")
    carried = _old_shot_regions(r, cut, range(cut, cut + 6))
    assert {i for i, _ in carried} == set(range(cut, cut + 6))
