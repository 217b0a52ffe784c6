"""One long video in parallel pieces: plan chunks, anonymize each on its own, join them losslessly.

::

    plan_chunks     demux the video packets (no decoding): every frame's pts, the keyframes
    anonymize_chunk decode from a keyframe before the chunk (tracker warm-up), run the same
                    stages as a single pass, encode only the chunk's own frames (video only)
    join_chunks     stream-copy the chunks' packets into one file (no re-encode) and copy the
                    input's audio and subtitles once, packet for packet, as a single pass does

Chunk ``k`` owns the frames whose pts lies in ``[start_k, start_{k+1})``. Its worker feeds the
stages from ``hold + lookahead + sweep`` seconds before ``start_k`` (so faces seen just before the
border are tracked and held as in one pass) to ``lookahead`` seconds after its end (so a face
detected just after the border is backfilled into this chunk's last frames); frames outside its
own range are dropped after tracking and never encoded. Each chunk is encoded with the single
pass's encoder settings and time base, keeping every pts, so the joined file has the same frame
count, timestamps, rotation and audio as a single pass. Chunk files go to a hidden work folder
next to the output, each renamed into place only when complete, with a manifest that lets an
interrupted run skip finished chunks; the folder is removed once the joined file is in place.

Planning and one chunk's work are here; the join is in :mod:`.join`, the work folder and its
manifest in :mod:`.workdir`.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..anonymize import Anonymizer
from ..api import build_stages
from ..config import Config
from ..detect import FaceDetector, create_detector
from ..errors import InputError
from ..pipeline import Pipeline, RunStats
from ..sinks import VideoFileSink
from ..sources import (
    VideoFileSource,
    VideoInfo,
    _video_stream,
    _why,
    open_input,
    probe_video,
    short_of,
    stamped_by_dts,
)
from ..types import Frame, Stage

__all__ = [
    "CHUNKABLE_SUFFIXES",
    "MIN_CHUNK_SECONDS",
    "ChunkSpec",
    "ChunkPlan",
    "ChunkResult",
    "plan_chunks",
    "anonymize_chunk",
    "chunk_offset",
    "video_seconds",
]

log = logging.getLogger(__name__)

#: Outputs a chunked run can produce: H.264 in mp4/mov/m4v/mkv (webm and avi use other codecs
#: and run in one piece).
CHUNKABLE_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv"})
#: Shortest chunk worth a worker: each costs a warm-up (about 1.3 s of video detected again)
#: and a worker start.
MIN_CHUNK_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """One chunk: the pts range it owns and what its worker decodes. Pts in the stream time base."""

    index: int
    #: First own pts (inclusive); own frames have ``start <= pts < end``.
    start: int
    #: End of the own range (exclusive); None for the last chunk.
    end: int | None
    #: Index of the first own frame in the whole video, and the number of own frames.
    first_index: int
    frames: int
    #: Keyframe pts to seek to before decoding; None decodes from the file's start.
    seek: int | None
    #: First pts handed to the stages (warm-up), and that frame's index in the whole video.
    feed_from: int
    feed_first_index: int
    #: Stop decoding at the first pts at or past this (look-ahead after ``end``); None: to the end.
    feed_until: int | None

    def owns(self, pts: int) -> bool:
        return pts >= self.start and (self.end is None or pts < self.end)


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    time_base: Fraction
    fps: Fraction
    frames: int
    duration: float
    chunks: tuple[ChunkSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "time_base": str(self.time_base),
            "fps": str(self.fps),
            "frames": self.frames,
            "duration": self.duration,
            "chunks": [dataclasses.asdict(c) for c in self.chunks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkPlan:
        return cls(
            Fraction(data["time_base"]),
            Fraction(data["fps"]),
            int(data["frames"]),
            float(data["duration"]),
            tuple(ChunkSpec(**c) for c in data["chunks"]),
        )


@dataclass(frozen=True, slots=True)
class ChunkResult:
    index: int
    frames: int
    damaged: int
    seconds: float
    stats: RunStats | None = field(default=None, compare=False)


# -- planning --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Scan:
    pts: list[int]  # every frame's pts, sorted (presentation order)
    keyframes: list[int]  # sorted
    info: VideoInfo


def _scan(path: Path) -> _Scan | None:
    """Every video packet's pts and keyframe flag, without decoding. None if a packet has no pts."""
    info = probe_video(path)
    pts: list[int] = []
    keys: list[int] = []
    with open_input(path) as c:
        stream = _video_stream(c, path)
        if stamped_by_dts(c, stream) or c.format.name == "mpeg":
            # Their packets' pts are not the frames' times (see stamped_by_dts); in an MPEG
            # program stream (.mpg) the decoded frames' came out of a chunk's planned range.
            return None
        try:
            for pkt in c.demux(stream):
                if pkt.is_corrupt:
                    raise InputError(f"{path}: file is truncated or damaged: incomplete video packet")
                if pkt.size == 0 and pkt.pts is None and pkt.dts is None:
                    continue  # the demuxer's end-of-stream flush
                if pkt.pts is None:
                    return None  # raw streams: timestamps only exist once decoded
                pts.append(int(pkt.pts))
                if pkt.is_keyframe:
                    keys.append(int(pkt.pts))
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{path}: cannot read video packets: {_why(e)}") from e
        declared = stream.frames
    if not pts:
        raise InputError(f"{path}: video stream has no frames")
    if declared and short_of(declared, len(pts)):
        raise InputError(f"{path}: file is truncated or damaged: {len(pts)} of {declared} frames present")
    pts.sort()
    keys.sort()
    if len(set(pts)) != len(pts):
        return None  # duplicate timestamps: chunk borders would be ambiguous
    return _Scan(pts, keys, info)


def warm_up_seconds(config: Config, fps: float) -> float:
    """Seconds of frames a chunk's worker tracks before its first own frame.

    A face last seen up to ``hold`` before the border is still covered after it, a face found by
    the spread sweep up to ``sweep_period`` late must have been looked for, and the look-ahead
    gives the Kalman filters the same recent history (velocity) as in one pass.
    """
    t = config.track
    return t.hold + t.ahead + config.detect.sweep_period + (t.detect_every + 1) / fps


def look_ahead_seconds(config: Config, fps: float) -> float:
    """Seconds of frames a chunk's worker tracks after its last own frame: a face first detected
    up to ``lookahead`` after the border is backfilled into the chunk's last frames."""
    t = config.track
    return t.ahead + (t.detect_every + 1) / fps


def plan_chunks(
    path: str | os.PathLike[str],
    config: Config,
    *,
    chunk_seconds: float | None = None,
    chunks: int | None = None,
) -> ChunkPlan | None:
    """Cut a video into chunks of about ``chunk_seconds`` (or into ``chunks`` equal parts).

    Borders go to a keyframe when one is within a quarter chunk of the ideal place, else to the
    nearest frame (the worker seeks to an earlier keyframe anyway). None when the video cannot be
    chunked (no timestamps in the packets) or would make a single chunk.
    """
    p = Path(path)
    scan = _scan(p)
    if scan is None:
        return None
    tb, info = scan.info.time_base, scan.info
    fps = float(info.fps) or 30.0
    first, last = scan.pts[0], scan.pts[-1]
    span = float((last - first) * tb) + 1 / fps
    if chunks is None:
        if not chunk_seconds or chunk_seconds <= 0:
            return None
        chunks = max(1, round(span / chunk_seconds))
    chunks = min(chunks, len(scan.pts))
    if chunks < 2:
        return None
    step = span / chunks
    borders = [first]
    for j in range(1, chunks):
        ideal = first + round(j * step / tb)
        k = bisect.bisect_left(scan.keyframes, ideal)
        near = [scan.keyframes[i] for i in (k - 1, k) if 0 <= i < len(scan.keyframes)]
        key = min(near, key=lambda v: abs(v - ideal)) if near else None
        if key is not None and abs(float((key - ideal) * tb)) <= step / 4:
            b = key
        else:
            i = min(bisect.bisect_left(scan.pts, ideal), len(scan.pts) - 1)
            b = scan.pts[i]
        if b > borders[-1]:
            borders.append(b)
    if len(borders) < 2:
        return None
    warm = round(warm_up_seconds(config, fps) / tb)
    ahead = round(look_ahead_seconds(config, fps) / tb)
    specs = []
    for k, start in enumerate(borders):
        end = borders[k + 1] if k + 1 < len(borders) else None
        first_index = bisect.bisect_left(scan.pts, start)
        end_index = len(scan.pts) if end is None else bisect.bisect_left(scan.pts, end)
        feed_first_index = bisect.bisect_left(scan.pts, start - warm) if k else 0
        feed_from = scan.pts[feed_first_index]
        ki = bisect.bisect_right(scan.keyframes, feed_from) - 1
        seek = scan.keyframes[ki] if ki > 0 else None  # the first keyframe: decode from the start
        specs.append(
            ChunkSpec(
                index=k,
                start=start,
                end=end,
                first_index=first_index,
                frames=end_index - first_index,
                seek=seek,
                feed_from=feed_from,
                feed_first_index=feed_first_index,
                feed_until=None if end is None or end + ahead > last else end + ahead,
            )
        )
    return ChunkPlan(tb, info.fps, len(scan.pts), span, tuple(specs))


def video_seconds(path: str | os.PathLike[str]) -> float | None:
    """Duration from the container header (no demuxing), or None."""
    try:
        return probe_video(path).duration
    except InputError:
        return None


# -- one chunk ---------------------------------------------------------------------------------------


class _ChunkFrames:
    """The decoded frames a chunk's stages see: from ``feed_from`` to ``feed_until``, numbered as
    in the whole video."""

    def __init__(self, source: VideoFileSource, spec: ChunkSpec) -> None:
        self.source = source
        self.spec = spec

    def __iter__(self) -> Iterator[Frame]:
        spec = self.spec
        index = spec.feed_first_index
        last: int | None = None
        frames = iter(self.source)
        try:
            for frame in frames:
                pts = frame.pts
                assert pts is not None  # planning refused streams without timestamps
                if pts < spec.feed_from or (last is not None and pts <= last):
                    continue  # decoded only to reach the warm-up (or a leading picture of an open GOP)
                if spec.feed_until is not None and pts >= spec.feed_until:
                    return
                last = pts
                frame.index = index
                index += 1
                yield frame
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()


class _Shifted:
    """Writes frames with pts counted from ``offset``: an MP4 whose first pts is not zero stores
    that start in its movie time scale (milliseconds), which would round it; the join adds it back."""

    def __init__(self, sink: VideoFileSink, offset: int) -> None:
        self.sink = sink
        self.offset = offset

    def write(self, frame: Frame) -> None:
        assert frame.pts is not None
        frame.pts -= self.offset
        self.sink.write(frame)


class _KeepOwn(Stage):
    """After tracking: hands on only the chunk's own frames (warm-up and look-ahead are dropped)."""

    def __init__(self, spec: ChunkSpec) -> None:
        self.spec = spec
        self.damaged = 0
        self.frames = 0

    def process(self, frame: Frame) -> list[Frame]:
        assert frame.pts is not None
        if not self.spec.owns(frame.pts):
            return []
        self.frames += 1
        self.damaged += frame.damaged
        return [frame]


def chunk_offset(spec: ChunkSpec) -> int:
    """What a chunk file's pts are counted from (stream time base): the first chunk keeps the
    input's pts, as a single pass does; the others start at zero."""
    return spec.start if spec.index else 0


def chunk_stages(
    config: Config, detector: FaceDetector, spec: ChunkSpec, fps: float
) -> tuple[list[Stage], _KeepOwn]:
    """The single pass's stages with the own-range filter just before the anonymizer."""
    stages = build_stages(config, detector, fps=fps)
    keep = _KeepOwn(spec)
    at = next((i for i, s in enumerate(stages) if isinstance(s, Anonymizer)), len(stages))
    stages.insert(at, keep)
    return stages, keep


def anonymize_chunk(
    input_path: str | os.PathLike[str],
    spec: ChunkSpec,
    chunk_path: str | os.PathLike[str],
    config: Config,
    *,
    detector: FaceDetector | None = None,
    progress: Callable[[int], Any] | None = None,
    stop: threading.Event | None = None,
) -> ChunkResult:
    """Anonymize one chunk into a video-only file at ``chunk_path`` (renamed into place when
    complete, replacing an earlier attempt's: a retried chunk cannot duplicate frames)."""
    t0 = time.perf_counter()
    enc = dataclasses.replace(config.encode, keep_metadata=False)
    own_detector = detector is None
    det = detector or create_detector(config.detect)
    try:
        with VideoFileSource(input_path, threads=config.encode.threads, seek_pts=spec.seek) as source:
            stages, keep = chunk_stages(config, det, spec, float(source.info.fps))
            sink = VideoFileSink(chunk_path, source.info, enc, overwrite=True, copy_audio=False)
            ok = False
            try:
                shifted = _Shifted(sink, chunk_offset(spec))
                frames = _ChunkFrames(source, spec)
                stats = Pipeline(frames, stages, shifted, progress=progress, stop=stop).run()
                ok = True
            finally:
                sink.close(success=ok)
    finally:
        if own_detector:
            det.close()
    if keep.frames != spec.frames:
        log.warning(
            "%s: chunk %d decoded %d of its %d frames", input_path, spec.index, keep.frames, spec.frames
        )
    return ChunkResult(spec.index, keep.frames, keep.damaged, time.perf_counter() - t0, stats)
