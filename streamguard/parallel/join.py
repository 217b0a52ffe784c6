"""Joining a video's chunks: their packets stream-copied into one file, no re-encode.

The input's audio (and subtitles, when kept) are copied once, packet for packet, as a single pass
does, and only the dts of each chunk's first packets are rewritten so that they keep increasing across the
joins (see :func:`join_chunks`).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..config import Config
from ..errors import Cancelled, ChunkError, OutputError
from ..sinks import VideoFileSink
from ..sources import VideoInfo, _why, probe_video
from .chunks import ChunkPlan, chunk_offset

__all__ = ["join_chunks"]


class _RemuxSink(VideoFileSink):
    """A :class:`VideoFileSink` whose video packets come already encoded (stream copy)."""

    def __init__(
        self, output: Path, info: VideoInfo, config: Any, *, template: av.stream.Stream, overwrite: bool
    ) -> None:
        self._template = template
        super().__init__(output, info, config, overwrite=overwrite, copy_audio=True)

    def _add_video(self) -> av.video.stream.VideoStream:
        s = self._container.add_stream_from_template(self._template)
        # As the single pass: the input's time base, no stream tags but the muxer's own.
        s.time_base = self.info.time_base
        s.codec_context.framerate = self.info.fps
        s.metadata.clear()
        return s

    def write_packet(self, packet: av.Packet) -> None:
        packet.stream = self._stream
        try:
            self._mux([packet])
        except av.error.FFmpegError as e:
            raise OutputError(f"{self.path}: cannot write joined video: {_why(e)}") from e
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write: {_why(e)}") from e
        self.frames += 1

    def _finish(self) -> None:
        if self.frames == 0:
            raise OutputError(f"{self.path}: no frames to write")
        try:
            if self._passthrough is not None:
                self._passthrough.mux_until(self._container, None)
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"{self.path}: cannot finish output: {_why(e)}") from e


def _chunk_packets(path: Path) -> Iterator[av.Packet]:
    try:
        with av.open(str(path)) as c:
            for pkt in c.demux(c.streams.video[0]):
                if pkt.dts is None and pkt.pts is None:
                    continue  # the demuxer's end-of-stream flush
                if pkt.dts is None or pkt.pts is None:
                    raise ChunkError(f"{path}: chunk packet without timestamps")
                yield pkt
    except (av.error.FFmpegError, OSError) as e:
        raise ChunkError(f"{path}: cannot read chunk: {_why(e)}") from e


#: Most packets an H.264 encoder delays (B-frame reorder depth) that a join has to re-time.
_MAX_LEAD = 16


def join_chunks(
    input_path: str | os.PathLike[str],
    plan: ChunkPlan,
    chunk_paths: list[Path],
    output: str | os.PathLike[str],
    config: Config,
    *,
    overwrite: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Stream-copy the chunks' video into ``output`` with the input's audio; returns the frame count.

    Each chunk starts with an IDR frame, so it decodes on its own. Only the dts of a chunk's
    first packets (those the encoder's B-frame delay put before its first pts) are rewritten, to
    the pts of the frames just before the chunk, as one encoder would have given them: dts stay
    increasing and below pts. Refuses chunks with frames outside their range or other settings.
    """
    src = Path(input_path)
    if len(chunk_paths) != len(plan.chunks):
        raise ChunkError(f"{output}: {len(chunk_paths)} chunk files for {len(plan.chunks)} chunks")
    info = probe_video(src)
    try:
        first = av.open(str(chunk_paths[0]))
    except (av.error.FFmpegError, OSError) as e:
        raise ChunkError(f"{chunk_paths[0]}: cannot read chunk: {_why(e)}") from e
    with first:
        template = first.streams.video[0]
        extradata = template.codec_context.extradata
        chunk_tb = Fraction(template.time_base)
        sink = _RemuxSink(Path(output), info, config.encode, template=template, overwrite=overwrite)
    ok = False
    frames = 0
    try:
        recent: deque[int] = deque(maxlen=_MAX_LEAD)  # the latest pts written, in order
        last_dts: int | None = None

        def emit(pkt: av.Packet, dts: int) -> None:
            nonlocal last_dts
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
            if dts > pkt.pts:
                raise ChunkError(f"{output}: cannot join the chunks: timestamps do not fit")
            pkt.dts = last_dts = dts
            sink.write_packet(pkt)

        for spec, path in zip(plan.chunks, chunk_paths, strict=True):
            if stop is not None and stop.is_set():
                raise Cancelled("join stopped")
            try:
                with av.open(str(path)) as c:
                    s = c.streams.video[0]
                    same = Fraction(s.time_base) == chunk_tb and s.codec_context.extradata == extradata
            except (av.error.FFmpegError, OSError) as e:
                raise ChunkError(f"{path}: cannot read chunk: {_why(e)}") from e
            if not same:
                raise ChunkError(
                    f"{path}: chunk encoded with other settings than the first; "
                    "every worker needs the same streamguard and PyAV versions"
                )
            lo = spec.start * plan.time_base
            hi = None if spec.end is None else spec.end * plan.time_base
            offset = chunk_offset(spec) * plan.time_base / chunk_tb
            if offset.denominator != 1:
                raise ChunkError(f"{path}: chunk time base {chunk_tb} does not fit the input's")
            floor = recent[-1] if recent else None
            chunk_pts: list[int] = []
            leading: list[av.Packet] | None = []
            p0 = None
            for pkt in _chunk_packets(path):
                pkt.pts += int(offset)
                pkt.dts += int(offset)
                # As from the encoder: no duration, so the muxer times the last frame as in one pass.
                pkt.duration = 0
                pts = int(pkt.pts)
                t = pts * chunk_tb
                if t < lo or (hi is not None and t >= hi) or (floor is not None and pts <= floor):
                    raise ChunkError(f"{path}: chunk {spec.index} holds a frame outside its range")
                chunk_pts.append(pts)
                if leading is not None:
                    p0 = pts if p0 is None else p0
                    if pkt.dts < p0 and len(leading) < _MAX_LEAD:
                        leading.append(pkt)
                        continue
                    _emit_leading(leading, recent, emit)
                    leading = None
                emit(pkt, int(pkt.dts))
            if leading:
                _emit_leading(leading, recent, emit)
            if not chunk_pts:
                raise ChunkError(f"{path}: chunk {spec.index} holds no frames")
            chunk_pts.sort()
            if len(set(chunk_pts)) != len(chunk_pts):
                raise ChunkError(f"{path}: chunk {spec.index} repeats a frame")
            recent.extend(chunk_pts[-_MAX_LEAD:])
            frames += len(chunk_pts)
        ok = True
    finally:
        written = sink.close(success=ok)
    assert written is not None
    return frames


def _emit_leading(
    leading: list[av.Packet], recent: deque[int], emit: Callable[[av.Packet, int], None]
) -> None:
    """A chunk's first packets: dts from the frames before the chunk (the first chunk keeps its own)."""
    n = len(leading)
    for i, pkt in enumerate(leading):
        dts = recent[len(recent) - n + i] if len(recent) >= n else int(pkt.dts)
        emit(pkt, dts)

