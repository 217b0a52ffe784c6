"""Where frames come from: video files (PyAV)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from .colour import to_frame
from .errors import InputError, existing_file
from .types import Frame

__all__ = ["ColourTags", "VideoInfo", "VideoFileSource", "probe_video", "open_input"]

log = logging.getLogger(__name__)

#: Refuse frames larger than this before decoding one (8K is 33 Mpx).
MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True, slots=True)
class ColourTags:
    """What the input says its YUV values mean (libav's numbers; 2 is "unspecified"). The output's
    values mean the same (``colour``), so it is tagged alike: untagged, a BT.709 phone clip's red
    reads (251, 27, 27) in one player and (232, 5, 29) in another."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2


@dataclass(frozen=True, slots=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int | None  # estimate: containers do not always say
    duration: float | None
    codec: str
    audio_streams: int
    colour: ColourTags = ColourTags()
    #: Width of a stored pixel against its height when not square (anamorphic DV, PAL 16:9).
    sample_aspect: Fraction | None = None


def _why(e: BaseException) -> str:
    if isinstance(e, av.error.FFmpegError):
        text = e.strerror or str(e)
    elif isinstance(e, OSError) and e.strerror:
        text = e.strerror
    else:
        text = str(e) or type(e).__name__
    return text[0].lower() + text[1:] if text else "unknown error"


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a media file for reading, with a one-line :class:`InputError` for every way it can fail."""
    p = existing_file(path, "media file")
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot open as media: {_why(e)}") from e
    if container.format.name == "tty":
        # libav renders any text file as an "ANSI art" video; nobody means that.
        container.close()
        raise InputError(f"{p}: cannot open as media: a text file, not a video")
    return container


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    for s in container.streams.video:
        # Cover art is a video stream holding one picture; it is not the video.
        if s.disposition & av.stream.Disposition.attached_pic:
            continue
        return s
    if not container.streams:
        raise InputError(f"{path}: no audio or video streams found: file is truncated or not media")
    raise InputError(f"{path}: no video stream")


def _info(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> VideoInfo:
    cc = stream.codec_context
    if not cc.width or not cc.height:
        raise InputError(f"{path}: video stream has no picture size")
    if cc.width * cc.height > MAX_PIXELS:
        raise InputError(f"{path}: video is {cc.width}x{cc.height}, larger than streamguard supports")
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(30)
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    frames = stream.frames or (round(duration * fps) if duration else None)
    sar = cc.sample_aspect_ratio or stream.sample_aspect_ratio
    return VideoInfo(
        path=path,
        width=cc.width,
        height=cc.height,
        fps=Fraction(fps),
        time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
        frames=frames or None,
        duration=duration,
        codec=cc.name,
        audio_streams=len(container.streams.audio),
        colour=ColourTags(cc.color_primaries, cc.color_trc, cc.colorspace),
        sample_aspect=Fraction(sar) if sar and sar > 0 and sar != 1 else None,
    )


def _track_seconds(stream: av.video.stream.VideoStream) -> float | None:
    """How long the video track says it is: the DURATION tag Matroska muxers write per track (not
    the container's duration, which an audio track may make longer, nor a duration libav
    estimated from the bit rate, as it does for MPEG-TS), else None."""
    tag = stream.metadata.get("DURATION")
    try:
        h, m, sec = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Facts about a video file without decoding it."""
    p = Path(path)
    with open_input(p) as c:
        return _info(c, _video_stream(c, p), p)


def stamped_by_dts(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    """Whether a video's frames must be timed by their decode stamps, not their pts.

    AVI stores no presentation times: libavformat stamps each packet dts + 1 in decode order,
    so with B-frames the decoder hands frames back in display order carrying shuffled stamps
    (1, 4, 3, 5, 2, ...), which an encoder refuses. The decode stamps they carry run in order
    (ffmpeg's best-effort timestamp picks them), late by the decoder's delay: AVI holds one
    frame per packet at a constant rate, so the k-th frame shown came out with packet k + delay.
    """
    return container.format.name == "avi" and bool(stream.codec_context.has_b_frames)


def short_of(declared: int, count: int) -> bool:
    """Whether ``count`` frames (or packets) fall short of the ``declared`` number: a cut-off file.

    Four frames of slack: AVI indexes count empty "drop frame" chunks the demuxer skips, one per
    frame of an Xvid encoder's B-frame delay (3 in a 51-frame camcorder clip, whatever its length).
    """
    return count < declared - max(0.02 * declared, 4)


class VideoFileSource:
    """Decodes a video file to RGB frames, in presentation order, with their timestamps."""

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int = 0, seek_pts: int | None = None
    ) -> None:
        self.path = Path(path)
        #: Start decoding at the keyframe at or before this pts (stream time base) instead of the
        #: first frame; frame indices then count from there (chunked processing renumbers them).
        self.seek_pts = seek_pts
        #: Frames the decoder flagged as corrupt (error-concealed); the anonymizer curtains them.
        self.damaged_frames = 0
        self._container = open_input(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            self.info = _info(self._container, self._stream, self.path)
            # Frame threads decode in parallel with our Python work (GIL released in libav).
            self._stream.thread_type = "AUTO"
            if threads:
                self._stream.codec_context.thread_count = threads
        except BaseException:
            self._container.close()
            raise

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(1, round(1 / (self.info.fps * tb))) if self.info.fps else 1
        by_dts = stamped_by_dts(self._container, self._stream)
        first_dts: int | None = None
        delay: int | None = None
        first_pts: int | None = None
        last_pts: int | None = None
        warned = False  # of a frame stamped out of order: once a file
        index = 0
        packets = 0  # read, the ones an edit list leaves out of the picture included
        try:
            if self.seek_pts is not None:
                self._container.seek(self.seek_pts, backward=True, any_frame=False, stream=self._stream)
            for packet in self._container.demux(self._stream):
                if packet.is_corrupt:
                    # The demuxer read less than the index promised: a cut-off file.
                    raise InputError(f"{self.path}: file is truncated or damaged: incomplete video packet")
                if first_dts is None:
                    first_dts = packet.dts
                if packet.size or packet.dts is not None:  # not the demuxer's closing empty packet
                    packets += 1
                for vf in packet.decode():
                    pts = vf.pts
                    if by_dts:
                        if delay is None and vf.dts is not None:
                            delay = vf.dts - (first_dts or 0)
                        pts = None if vf.dts is None else vf.dts - (delay or 0)
                    if pts is None:
                        # Raw streams (e.g. .h264) carry no timestamps, nor do the frames an AVI's
                        # decoder flushes at the end: count frames at the nominal rate.
                        pts = 0 if last_pts is None else last_pts + step
                    elif last_pts is not None and pts <= last_pts:
                        # Frames come in display order, so time must move on: an encoder takes
                        # only increasing stamps, and one bad stamp must not lose the whole file.
                        # One tick on, so the frames after it keep their own times.
                        if not warned:
                            warned = True
                            log.warning("%s: frame %d is stamped %.3f s, not after the frame before it "
                                        "(%.3f s): timed just after it", self.path, index,
                                        float(pts * tb), float(last_pts * tb))
                        pts = last_pts + 1
                    last_pts = pts
                    first_pts = pts if first_pts is None else first_pts
                    damaged = bool(vf.is_corrupt)
                    if damaged:
                        self.damaged_frames += 1
                    image, planes = to_frame(vf)
                    if planes is not None:
                        # The planes go on beside the RGB copy, so the frame can wait and be
                        # encoded without converting back (colour.pack); read-only, so nothing
                        # can draw on a copy that would then be dropped.
                        image.flags.writeable = False
                    yield Frame(
                        image=image,
                        packed=planes,
                        index=index,
                        pts=pts,
                        time_base=tb,
                        rotation=int(vf.rotation) % 360 if vf.rotation else 0,
                        # Concealed decode errors: smeared blocks can hide a face from the
                        # detector while still showing it, so such a frame is covered whole.
                        damaged=damaged,
                    )
                    index += 1
        except (av.error.FFmpegError, OSError) as e:
            where = f" after frame {index}" if index else ""
            raise InputError(f"{self.path}: cannot decode video{where}: {_why(e)}") from e
        if index == 0:
            raise InputError(f"{self.path}: video stream has no frames")
        if self.seek_pts is None:
            self._check_whole(index, packets, first_pts, last_pts)

    def _check_whole(self, frames: int, packets: int, first_pts: int | None, last_pts: int | None) -> None:
        """Raise if the file ended before its own header says it does: libav stops quietly at a
        cut-off mdat or Matroska cluster, and a cut-off file must not pass for the whole video."""
        declared = self._stream.frames
        if declared:
            # The index's count, against the packets read and the frames decoded: a trimmed clip's
            # edit list hides the frames before its cut (decoded, not shown), so only both
            # falling short is a cut-off file. A file cut inside its last packet is caught
            # above (the demuxer flags the short packet).
            if short_of(declared, frames) and short_of(declared, packets):
                raise InputError(
                    f"{self.path}: file is truncated or damaged: decoded {frames} of {declared} frames"
                )
            return
        # No count (Matroska, WebM): the track's own duration, where its muxer wrote one.
        expected = _track_seconds(self._stream)
        if not expected or first_pts is None or last_pts is None:
            return
        tb, fps = self.info.time_base, self.info.fps or Fraction(30)
        end = float(last_pts * tb + 1 / fps)
        slack = max(2 / float(fps), 0.02 * expected)
        # Whether the duration counts from the first frame or from zero, a whole file reaches it.
        if end < expected - slack and end - float(first_pts * tb) < expected - slack:
            raise InputError(
                f"{self.path}: file is truncated or damaged: video ends at {end:.2f} s of {expected:.2f} s"
            )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
