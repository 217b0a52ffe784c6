"""Where protected frames go: a video file (with the input's audio copied), or memory.

Every sink refuses a frame the anonymizer has not marked protected: a bug
upstream must stop the run, not leak a face.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import av.error

from .colour import from_frame
from .config import EncodeConfig
from .errors import InputError, OutputError, UnprotectedFrameError
from .sources import VideoInfo, _video_stream, _why, open_input
from .types import Frame

__all__ = ["AtomicPath", "VideoFileSink", "MemorySink", "UnprotectedFrameError", "require_protected"]

log = logging.getLogger(__name__)

#: Stream metadata that says nothing about who, where or with what device.
_SAFE_STREAM_TAGS = ("language", "title")


def require_protected(frame: Frame) -> None:
    """Fail closed: raise unless the anonymizer has marked ``frame`` protected."""
    if not frame.protected:
        raise UnprotectedFrameError(f"frame {frame.index} reached the sink unprotected")


def _umask() -> int:
    """This process's umask, without changing it (Linux reports it in /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


class AtomicPath:
    """A temporary file beside ``final`` that becomes ``final`` only on :meth:`commit`."""

    def __init__(self, final: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        if self.final.exists() and not overwrite:
            raise OutputError(f"{self.final}: already exists (use --overwrite to replace it)")
        folder = self.final.parent
        if not folder.is_dir():
            raise OutputError(f"{self.final}: folder {folder} does not exist")
        try:
            # Same folder, so the final rename is atomic; hidden, and ends in the real
            # suffix so libav picks the right container.
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.final.stem}.", suffix=f".part{self.final.suffix}", dir=folder
            )
        except OSError as e:
            raise OutputError(f"{self.final}: cannot write in {folder}: {e.strerror}") from e
        os.close(fd)
        self.tmp = Path(tmp)
        self.done = False
        # mkstemp makes the file 0600; the result should get the permissions any new file of
        # this user gets (shared newsroom folders, a web server publishing it).
        try:
            os.chmod(self.tmp, 0o666 & ~_umask())
        except OSError:
            pass

    def commit(self) -> Path:
        if self.final.exists() and not self.overwrite:
            self.abort()
            raise OutputError(f"{self.final}: appeared while processing; not replaced (use --overwrite)")
        try:
            os.replace(self.tmp, self.final)
        except OSError as e:
            self.abort()
            raise OutputError(f"{self.final}: cannot move the result into place: {e.strerror}") from e
        self.done = True
        return self.final

    def abort(self) -> None:
        if not self.done:
            self.done = True
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass


#: Muxers that lose frame times of re-encoded video: MPEG program streams (.mpg, .vob) write
#: H.264 frames without them, ASF (.wmv) shifts them by a frame (``api.output_suffix``).
_NO_FRAME_TIMES = frozenset({"mpeg", "vob", "dvd", "svcd", "vcd", "mpeg1system", "asf", "asf_stream"})


def _track_kind(s: av.stream.Stream) -> str:
    if s.type == "video":
        return "cover picture" if s.disposition & av.stream.Disposition.attached_pic else "a second video"
    kinds = {"data": "data (timecode, camera metadata)", "attachment": "attachments (fonts)"}
    return kinds.get(s.type, s.type)


class _Passthrough:
    """Audio and (with ``keep_metadata``) subtitle packets of the input, read by a second demuxer,
    and its chapter marks.

    Reading them apart from the video keeps the frame pipeline free of packets
    and lets the muxer interleave by time: packets up to the latest encoded
    video time are written as video goes out.
    """

    def __init__(
        self, input_path: Path, output: av.container.OutputContainer, keep_metadata: bool, label: Path
    ) -> None:
        self._path = input_path
        self._container = open_input(input_path)
        self._map: dict[int, av.stream.Stream] = {}
        supported = output.supported_codecs
        dropped = 0
        main = _video_stream(self._container, input_path).index
        others: list[str] = []
        for s in self._container.streams:
            if s.type not in ("audio", "subtitle"):
                if s.index != main:
                    others.append(_track_kind(s))
                continue
            if s.type == "subtitle" and not keep_metadata:
                dropped += 1
                continue
            # Some muxers list none of what they hold (MPEG-TS: not even H.264 or AAC), so audio
            # is tried whatever the list says: a muxer that refuses it does so at the header.
            if s.type == "subtitle" and s.codec_context.name not in supported:
                log.warning(
                    "%s: %s subtitles cannot be stored in this container; not copied",
                    input_path,
                    s.codec_context.name,
                )
                continue
            try:
                out = output.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError) as e:
                if s.type == "audio":
                    # Dropping sound silently would be a broken output; say what would work.
                    other = ".avi" if label.suffix.lower() == ".mkv" else ".mkv"  # WMA: AVI
                    raise OutputError(
                        f"{label}: a {output.format.name} file cannot hold the input's "
                        f"{s.codec_context.name} audio ({_why(e)}); choose a {other} output"
                    ) from e
                # e.g. a subtitle codec the output container cannot hold.
                log.warning("%s: stream %d (%s) not copied: %s", input_path, s.index, s.type, _why(e))
                continue
            name = s.codec_context.name
            if output.format.name == "mp4" and (name.startswith("pcm_") or name == "vorbis"):
                # Copied as asked, but MP4's PCM ('ipcm') and Vorbis are newer than most players.
                log.warning("%s: %s audio in an .mp4 plays in few players; .mov or .mkv holds it "
                            "everywhere", label, name)
            out.metadata.clear()
            for key, value in s.metadata.items():
                if keep_metadata or key in _SAFE_STREAM_TAGS:
                    out.metadata[key] = value
            out.disposition = s.disposition
            self._map[s.index] = out
        if dropped:
            # Drones and dashcams write where they are, second by second, into a subtitle track,
            # and any subtitle can name who speaks: metadata, kept only when asked for.
            log.warning("%s: %d subtitle stream(s) not copied (they can hold places and names; "
                        "--keep-metadata copies them)", input_path, dropped)
        if others:
            # Not anonymized, so not written; said, as a user may expect them (a phone's timecode).
            log.warning("%s: %d other track(s) not copied: %s", input_path, len(others),
                        ", ".join(sorted(set(others))))
        self._copy_chapters(output, keep_metadata)
        self._packets: Iterator[av.Packet] | None = (
            self._container.demux([self._container.streams[i] for i in self._map]) if self._map else None
        )
        self._pending: av.Packet | None = None

    def _copy_chapters(self, output: av.container.OutputContainer, keep_metadata: bool) -> None:
        """The input's chapter marks; their titles only with ``keep_metadata``."""
        chapters = self._container.chapters()
        if not chapters:
            return
        titled = sum(1 for c in chapters if c["metadata"])
        if not keep_metadata:
            # Marks say where a recording's parts begin; titles can say who and where.
            chapters = [{**c, "metadata": {}} for c in chapters]
            if titled:
                log.warning("%s: %d chapter title(s) not copied, only where chapters begin (titles can "
                            "name people and places; --keep-metadata copies them)", self._path, titled)
        try:
            output.set_chapters(chapters)
        except (ValueError, TypeError, av.error.FFmpegError) as e:
            log.warning("%s: %d chapter(s) not copied: %s", self._path, len(chapters), e)

    def mux_until(self, output: av.container.OutputContainer, seconds: float | None) -> None:
        """Write passthrough packets up to ``seconds`` (all that remain if None)."""
        while self._packets is not None:
            pkt = self._pending
            self._pending = None
            if pkt is None:
                try:
                    pkt = next(self._packets)
                except StopIteration:
                    self._packets = None
                    return
            if pkt.dts is None:
                # The demuxer's end-of-stream flush packets hold no data.
                continue
            if pkt.is_corrupt:
                # Shorter than the index says: the input is cut off (e.g. mid-fragment).
                raise InputError(
                    f"{self._path}: file is truncated or damaged: incomplete {pkt.stream.type} packet"
                )
            if seconds is not None and pkt.time_base is not None and float(pkt.dts * pkt.time_base) > seconds:
                self._pending = pkt
                return
            pkt.stream = self._map[pkt.stream.index]
            output.mux(pkt)

    def close(self) -> None:
        self._container.close()


class VideoFileSink:
    """Encodes protected frames to H.264 and copies every audio stream packet for packet.

    Written to a temporary name in the output folder and renamed on success;
    :meth:`close` with ``success=False`` removes it.
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        info: VideoInfo,
        config: EncodeConfig | None = None,
        *,
        overwrite: bool = False,
        copy_audio: bool = True,
    ) -> None:
        self.config = config or EncodeConfig()
        self.info = info
        self._target = AtomicPath(output, overwrite=overwrite)
        self.path = self._target.final
        self._closed = False
        self._result: Path | None = None
        self.frames = 0
        self._started = False  # a packet muxed: the container's header is written
        try:
            self._container = av.open(str(self._target.tmp), mode="w")
            # Video first, then the copied streams in input order, as players expect.
            self._stream = self._add_video()
            self._passthrough = (
                _Passthrough(info.path, self._container, self.config.keep_metadata, self.path)
                if copy_audio
                else None
            )
            if self.config.keep_metadata:
                with open_input(info.path) as src:
                    self._container.metadata.update(src.metadata)
        except av.error.FFmpegError as e:
            self._target.abort()
            raise OutputError(f"{self.path}: cannot create output: {_why(e)}") from e
        except ValueError as e:
            # PyAV: no container for this suffix, or one that cannot hold H.264 (e.g. .gif).
            self._target.abort()
            kind = self.path.suffix or "a file without suffix"
            raise OutputError(f"{self.path}: cannot write a video as {kind}: {e}") from e
        except BaseException:
            self._target.abort()
            raise

    def _add_video(self) -> av.video.stream.VideoStream:
        info, cfg = self.info, self.config
        if self.path.suffix.lower() == ".webm":
            # WebM holds only VP8/VP9/AV1; realtime VP9 keeps the cost near x264 veryfast.
            codec = "libvpx-vp9"
            options = {"crf": str(min(63, cfg.crf + 11)), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif self.path.suffix.lower() == ".avi":
            # libav reads H.264 in AVI back one frame late (pts = dts + 1), so an AVI keeps
            # AVI's own codec: MPEG-4 Part 2 at a quality scale mapped from the CRF.
            codec = "mpeg4"
            options = {"qscale": str(max(1, min(31, round(cfg.crf / 6))))}
        elif self._container.format.name in _NO_FRAME_TIMES:
            raise OutputError(
                f"{self.path}: a {self.path.suffix} file cannot keep every frame's time; "
                "choose a .mkv or .mp4 output"
            )
        else:
            codec = "libx264"
            options = {"crf": str(cfg.crf), "preset": cfg.preset}
        s = self._container.add_stream(codec, rate=info.fps)
        s.width, s.height = info.width, info.height
        # 4:2:0 needs even sizes; odd ones keep full chroma rather than losing a pixel row.
        s.pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
        # The input's time base, so every frame keeps its exact timestamp (VFR included).
        s.time_base = info.time_base
        s.codec_context.time_base = info.time_base
        s.codec_context.options = options
        # The input's colour tags: the values written mean what its values meant (``colour``),
        # in limited range whatever the input's (full-range pictures are converted, not copied).
        cc = s.codec_context
        tags = info.colour
        cc.color_primaries, cc.color_trc, cc.colorspace = tags.primaries, tags.transfer, tags.matrix
        cc.color_range = 1  # MPEG
        if info.sample_aspect is not None:
            # Non-square pixels (anamorphic DV, PAL 16:9) keep their shape, or the picture squashes.
            cc.sample_aspect_ratio = info.sample_aspect
        if cfg.threads:
            s.codec_context.thread_count = cfg.threads
        return s

    def write(self, frame: Frame) -> None:
        require_protected(frame)
        try:
            if self.frames == 0 and frame.rotation:
                # Keep the display matrix: a portrait phone clip stays portrait.
                self._stream.set_display_rotation(frame.rotation)
            vf = from_frame(frame, self._stream.pix_fmt)
            vf.pts = frame.pts
            vf.time_base = frame.time_base
            self._mux(self._stream.encode(vf))
        except av.error.FFmpegError as e:
            self._refused_header(e)
            raise OutputError(f"{self.path}: cannot encode frame {frame.index}: {_why(e)}") from e
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write: {_why(e)}") from e
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        for p in packets:
            if self._passthrough is not None and p.dts is not None and p.time_base is not None:
                self._passthrough.mux_until(self._container, float(p.dts * p.time_base))
            self._container.mux(p)
            self._started = True

    def _refused_header(self, e: av.error.FFmpegError) -> None:
        """Raise a clear error if the muxer refused to start the file (libav writes the header
        with the first packet, frames after the first): the container cannot hold these streams
        together, which "cannot encode frame 11: invalid argument" would not say."""
        if self._started:
            return
        held = ", ".join(f"{s.codec_context.name} {s.type}" for s in self._container.streams
                         if s is not self._stream)
        raise OutputError(
            f"{self.path}: a {self.path.suffix or 'suffix-less'} file cannot hold its video "
            f"{'with ' + held if held else 'as encoded'} ({_why(e)}); choose a .mkv output"
        ) from e

    def _finish(self) -> None:
        if self.frames == 0:
            raise OutputError(f"{self.path}: no frames to write")
        try:
            self._mux(self._stream.encode(None))
            if self._passthrough is not None:
                self._passthrough.mux_until(self._container, None)
        except av.error.FFmpegError as e:
            self._refused_header(e)
            raise OutputError(f"{self.path}: cannot finish output: {_why(e)}") from e
        except OSError as e:
            raise OutputError(f"{self.path}: cannot finish output: {_why(e)}") from e

    def _release(self) -> str | None:
        """Close both containers; the first failure's reason, if any (e.g. disk full at the trailer)."""
        reason = None
        closers = [self._container.close]
        if self._passthrough is not None:
            closers.insert(0, self._passthrough.close)
        for closer in closers:
            try:
                closer()
            except (av.error.FFmpegError, OSError) as e:
                reason = reason or _why(e)
        return reason

    def close(self, success: bool = True) -> Path | None:
        """Finish the file and move it into place (``success``), or throw it away. Idempotent."""
        if self._closed:
            return self._result
        self._closed = True
        try:
            if success:
                self._finish()
        except BaseException:
            self._release()
            self._target.abort()
            raise
        reason = self._release()
        if not success or reason:
            self._target.abort()
            if success:
                raise OutputError(f"{self.path}: cannot finish output: {reason}")
            return None
        self._result = self._target.commit()
        return self._result

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(success=exc_type is None)


class MemorySink:
    """Keeps protected frames in a list (tests, benchmarks, the web preview)."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        require_protected(frame)
        self.frames.append(frame)

    def close(self, success: bool = True) -> None:
        pass
