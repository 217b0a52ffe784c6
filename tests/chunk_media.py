"""Clips for the chunked and distributed tests: faces that move across the chunk borders."""

from __future__ import annotations

from pathlib import Path

import av

from streamguard import synth

#: 6 s at 480x270 (keyframes every 2 s from synth): cut in 3 the borders fall on the keyframes at
#: 2 s and 4 s, and the last chunk's worker has to seek (to the keyframe at 2 s) for its warm-up.
BORDER_SCENE = synth.Scene(
    width=480,
    height=270,
    fps=30,
    duration=6.0,
    seed=11,
    faces=(
        # Walks across the whole frame, through both borders.
        synth.FaceTrack(0, 0.0, 6.0, ((0.0, 50, 120, 80), (6.0, 430, 150, 80))),
        # Comes in through the left edge just before the first border, fast.
        synth.FaceTrack(1, 1.8, 6.0, ((1.8, -20, 200, 70), (2.6, 150, 190, 70), (6.0, 260, 190, 70))),
    ),
)

SHORT_SCENE = synth.Scene(
    width=320,
    height=240,
    fps=30,
    duration=1.0,
    seed=4,
    faces=(synth.FaceTrack(0, 0.0, 1.0, ((0.0, 120, 110, 70), (1.0, 200, 110, 70))),),
)


def border_clip(folder: Path, name: str = "border.mp4") -> tuple[Path, synth.GroundTruth]:
    path = folder / name
    return path, synth.write_clip(path, BORDER_SCENE, crf=28)


def short_clip(folder: Path, name: str = "short.mp4") -> Path:
    path = folder / name
    synth.write_clip(path, SHORT_SCENE, crf=30)
    return path


def video_rotation(path: Path) -> int:
    with av.open(str(path)) as c:
        return int(next(c.decode(video=0)).rotation or 0)


def packet_times(path: Path) -> list[tuple[int, int]]:
    """(pts, dts) of every video packet in file order."""
    with av.open(str(path)) as c:
        return [(int(p.pts), int(p.dts)) for p in c.demux(c.streams.video[0]) if p.dts is not None]
