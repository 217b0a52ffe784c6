"""Issue 8: the input file cut short or deleted while it is being read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from streamguard import Config, DetectConfig, anonymize_video, synth
from streamguard.errors import InputError

from .pixels import video_pts

FAST = Config(detect=DetectConfig(preset="fast"))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s at 320x180: long enough that the reader is far from the end when the file changes."""
    scene = synth.Scene(width=320, height=180, fps=30, duration=6.0, seed=3, faces=(
        synth.FaceTrack(0, 0.0, 6.0, ((0.0, 100, 90, 70), (6.0, 220, 90, 70))),))
    path = tmp_path_factory.mktemp("changes") / "long.mp4"
    synth.write_clip(path, scene, crf=30)
    return path


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def test_input_cut_short_while_read_is_refused_and_leaves_nothing(long_clip, tmp_path):
    src = _copy(long_clip, tmp_path)
    out = tmp_path / "out.mp4"
    cut = threading.Event()

    def progress(done: int) -> None:
        if not cut.is_set():  # as a download that is replaced, or a disk that fails, would
            with open(src, "r+b") as f:
                f.truncate(src.stat().st_size // 3)
            cut.set()

    with pytest.raises(InputError, match="truncated|cannot decode") as e:
        anonymize_video(src, out, FAST, progress=progress)
    assert str(src) in str(e.value) and "\n" not in str(e.value)
    assert cut.is_set()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name], "output or temporary file left"


def test_input_deleted_while_read_is_still_processed_whole(long_clip, tmp_path):
    # An open file stays readable after unlink (POSIX): the run completes with every frame.
    src = _copy(long_clip, tmp_path)
    expected = video_pts(src)
    out = tmp_path / "out.mp4"

    def progress(done: int) -> None:
        if src.exists():
            os.unlink(src)

    result = anonymize_video(src, out, FAST, progress=progress)
    assert not src.exists()
    assert video_pts(result.output) == expected

