"""Start-up: the tracker's libraries (filterpy, scipy) load beside the first frame's work, never
in front of it, and never late: a track that needs them waits, so every frame is still covered."""

from __future__ import annotations

import atexit
import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamguard import anonymize_video, api, cli, track

from .pixels import assert_destroyed, decode_rgb

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: Imported by filterpy.kalman (filterpy.stats), 0.7 s of a 1.6 s run when they were on the critical path.
HEAVY = ("filterpy", "filterpy.kalman", "scipy.stats", "scipy.optimize")


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter: nothing imported yet, as when the command starts."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


def test_importing_streamguard_does_not_import_the_tracker_libraries() -> None:
    r = _fresh(f"""
        import sys
        import streamguard, streamguard.api, streamguard.cli, streamguard.lookahead, streamguard.track
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
    """)
    assert r.returncode == 0, r.stderr[-3000:]


def test_a_tracker_made_while_they_load_waits_for_them() -> None:
    """The first detection arrives while the background import runs: its track is made, not skipped."""
    r = _fresh("""
        import sys
        from streamguard.track import Tracker, preload
        from streamguard.types import Box, Detection

        preload()
        assert "scipy.stats" not in sys.modules or "filterpy.kalman" not in sys.modules
        tracker = Tracker()
        face = Box(100, 100, 140, 140)
        (first,) = tracker.update([Detection(face, 0.9)], 0.0)
        assert first.matched and first.box.intersection(face) == face.area, first
        moved = Box(103, 101, 143, 141)
        (second,) = tracker.update([Detection(moved, 0.9)], 1 / 30)  # matched: scipy.optimize
        assert second.id == first.id and second.matched, second
        (coasting,) = tracker.update([], 2 / 30)
        assert coasting.box.intersection(moved) == moved.area, coasting
    """)
    assert r.returncode == 0, r.stderr[-3000:]


def test_the_command_in_a_fresh_process_covers_the_first_frames(face_clip, workdir) -> None:
    """End to end from a cold start, where the import is still running when the first faces are found."""
    src, gt = face_clip
    out = workdir / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "streamguard", str(src), "-o", str(out), "-q"],
                       cwd=workdir, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == len(gt.frames)
    for i in range(5):
        for box in gt.frames[i].boxes:
            assert_destroyed(original[i], anonymized[i], box, f"frame {i} box {box}")


def test_a_video_job_starts_the_import_before_loading_the_detector(face_clip, workdir, monkeypatch) -> None:
    calls: list[str] = []
    preload, create = track.preload, api.create_detector

    def recording_preload() -> None:
        calls.append("preload")
        preload()

    def recording_create(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append("detector")
        return create(*args, **kwargs)

    monkeypatch.setattr("streamguard.track.preload", recording_preload)
    monkeypatch.setattr("streamguard.api.create_detector", recording_create)
    anonymize_video(face_clip[0], workdir / "out.mp4")
    assert calls[:2] == ["preload", "detector"], calls


def test_only_the_command_skips_the_collection_at_exit(monkeypatch) -> None:
    """A program calling main() keeps its exit as it was; the command's own process skips the
    garbage collections that would only walk the imports' objects."""
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert registered == []
    monkeypatch.setattr(sys, "argv", ["streamguard", "--version"])
    with pytest.raises(SystemExit):
        cli.main()
    assert registered == [gc.freeze]
