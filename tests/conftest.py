"""Fixtures: short clips and photos with real public-domain faces, built with PyAV on first use."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamguard import synth
from streamguard.detect import BlazeFaceDetector

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_media"

# Faces large enough for a whole-frame detector; small-face recall has its own tests.
SMALL_SCENE = synth.Scene(
    width=640,
    height=360,
    fps=30,
    duration=1.5,
    seed=3,
    faces=(
        synth.FaceTrack(0, 0.0, 1.5, ((0.0, 180, 170, 150), (1.5, 260, 180, 150))),
        synth.FaceTrack(1, 0.0, 1.5, ((0.0, 500, 160, 110), (1.5, 470, 170, 110))),
    ),
)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def face_clip(media_dir: Path) -> tuple[Path, synth.GroundTruth]:
    """1.5 s of 640x360 at 30 fps, two faces, AAC audio."""
    path = media_dir / "faces.mp4"
    return path, synth.write_clip(path, SMALL_SCENE)


@pytest.fixture(scope="session")
def rotated_clip(media_dir: Path) -> tuple[Path, synth.GroundTruth]:
    """The same scene stored sideways with a 90 degree display matrix, as a phone records portrait video."""
    path = media_dir / "rotated.mp4"
    return path, synth.write_clip(path, SMALL_SCENE, rotation=90)


@pytest.fixture(scope="session")
def vfr_clip(media_dir: Path) -> tuple[Path, synth.GroundTruth]:
    path = media_dir / "vfr.mkv"
    return path, synth.write_clip(path, SMALL_SCENE, vfr=True)


@pytest.fixture(scope="session")
def detector() -> Iterator[BlazeFaceDetector]:
    d = BlazeFaceDetector()
    yield d
    d.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def copy_of(tmp_path: Path):
    """Copy a file into this test's folder (so outputs land beside it, not in shared fixtures)."""

    def _copy(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copyfile(src, dst)
        return dst

    return _copy


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every test must end with no pipeline thread still running."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("streamguard-") and t.is_alive()]
    assert not left, f"threads still running: {left}"
