"""The library API every front end drives: anonymize a video file or a still image."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .anonymize import Anonymizer
from .config import Config
from .detect import (
    DetectionsToRegions,
    DetectStage,
    FaceDetector,
    StillDetector,
    SweepDetectStage,
    TiledDetector,
    create_detector,
)
from .detect.known import SURE_SCORE
from .errors import OutputError
from .gaps import GapStage
from .images import IMAGE_SUFFIXES, load_image, output_format, save_image
from .pipeline import Pipeline, RunStats
from .sinks import AtomicPath, VideoFileSink, require_protected
from .sources import VideoFileSource, VideoInfo
from .threads import quiet_native_pools
from .types import Frame, Stage

__all__ = [
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "VideoResult",
    "ImageResult",
    "anonymize_video",
    "anonymize_image",
    "anonymize_file",
    "default_output",
    "output_suffix",
    "build_stages",
    "is_image",
]

log = logging.getLogger(__name__)

#: Video files looked for in folders and taken by the web page (any file named on the command
#: line is tried): phones, cameras, camcorders (AVCHD .mts), dashcams (.ts), older tools.
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts",
                            ".3gp", ".flv", ".mpg", ".mpeg"})
#: Containers that cannot keep a re-encoded video's frame times (MPEG program streams; see
#: ``sinks``): their results are Matroska, which holds their MPEG audio, AC-3 and PCM. (A .wmv,
#: ASF, is refused as an output and needs one named: its WMA audio fits only an .avi.)
_REWRAPPED = {".mpg": ".mkv", ".mpeg": ".mkv", ".vob": ".mkv"}


def output_suffix(suffix: str) -> str:
    """The suffix of the result of an input with ``suffix``: its own, but for ``_REWRAPPED``."""
    return _REWRAPPED.get(suffix.lower(), suffix)


@dataclass(frozen=True, slots=True)
class VideoResult:
    output: Path
    info: VideoInfo
    stats: RunStats
    #: Frames the decoder flagged as corrupt; each was covered whole (fail closed).
    damaged_frames: int = 0


@dataclass(frozen=True, slots=True)
class ImageResult:
    output: Path
    #: Regions covered: every find, however unsure, and the gaps between covered heads.
    faces: int
    width: int
    height: int
    #: Of them, finds the models were sure of (``known.SURE_SCORE``, as video's sure faces); a
    #: photo of three people can have dozens of less certain finds covered beside them.
    sure: int = 0

    def summary(self) -> str:
        """What was covered, in a few words (``"3 face(s) covered"``)."""
        if self.sure == self.faces:
            return f"{self.faces} face(s) covered"
        return (f"{self.faces} region(s) covered: {self.sure} sure face(s) and "
                f"{self.faces - self.sure} less certain find(s)")


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def default_output(path: str | os.PathLike[str]) -> Path:
    """``<stem>.anonymized.<ext>`` beside the input (``.mkv`` for an ``.mpg``)."""
    p = Path(path)
    return p.with_name(f"{p.stem}.anonymized{output_suffix(p.suffix)}")


def build_stages(
    config: Config, detector: FaceDetector, *, fps: float | None = None, video: bool = True
) -> list[Stage]:
    """detect -> track (videos) -> gaps -> anonymize, as the options ask."""
    stages: list[Stage]
    if video and isinstance(detector, TiledDetector) and config.detect.sweep_period > 0:
        period = min(
            config.detect.sweep_period, config.track.hold, config.track.ahead or config.track.hold
        )
        stages = [SweepDetectStage(detector, fps=fps or 30.0, period=period, every=config.track.detect_every,
                                   levels=config.detect.levels)]
    elif video:
        stages = [DetectStage(detector, every=config.track.detect_every, levels=config.detect.levels)]
    else:
        # A photo is one frame: it gets the preset's finer, wider photo plan.
        stages = [DetectStage(StillDetector(detector) if isinstance(detector, TiledDetector) else detector,
                              levels=config.detect.levels, both=True)]
    if video:
        from .lookahead import TrackStage

        stages.append(TrackStage(config.track, fps=fps or 30.0))
    else:
        stages.append(DetectionsToRegions())
    # A face half hidden between covered ones (a crowd) is covered with them.
    stages.append(GapStage(config.anonymize, still=not video))
    # Videos are encoded as 4:2:0 (VideoFileSink): cover in the decoded planes, no RGB round trip.
    stages.append(Anonymizer(config.anonymize, planar=video))
    return stages


class _Recorder(Stage):
    """Hands each finished frame to a callback (the audit report)."""

    def __init__(self, add: Callable[[Frame], Any]) -> None:
        self.add = add

    def __call__(self, frame: Frame) -> Frame:
        self.add(frame)
        return frame


def _check_distinct(input_path: Path, output: Path) -> None:
    try:
        same = output.exists() and os.path.samefile(input_path, output)
    except OSError:
        same = False
    if same or input_path.resolve() == output.resolve():
        # An output problem (exit 4), even with --overwrite: the input is never touched.
        raise OutputError(f"{input_path}: output would overwrite the input; choose another -o")


def anonymize_video(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    *,
    overwrite: bool = False,
    detector: FaceDetector | None = None,
    progress: Callable[[int], Any] | None = None,
    on_start: Callable[[VideoInfo], Any] | None = None,
    stop: threading.Event | None = None,
    report: str | os.PathLike[str] | None = None,
) -> VideoResult:
    """Anonymize every face in a video file; audio is copied unchanged (subtitles too, with
    ``config.encode.keep_metadata``).

    The output appears under its final name only when complete. ``progress`` is
    called with the number of frames written; ``on_start`` with the input's facts
    before the first frame; setting ``stop`` cancels (raises :class:`Cancelled`).
    """
    config = config or Config()
    src_path = Path(input_path)
    out_path = Path(output) if output is not None else default_output(src_path)
    _check_distinct(src_path, out_path)
    own_detector = detector is None
    with VideoFileSource(src_path, threads=config.encode.threads) as source:
        from .track import preload

        preload()  # the tracker's 0.65 s of imports start now, beside the detector's loading
        if on_start is not None:
            on_start(source.info)
        det = detector or create_detector(config.detect)
        report_writer = None
        try:
            stages = build_stages(config, det, fps=float(source.info.fps))
            if report is not None:
                from .report import ReportWriter

                report_writer = ReportWriter(report, input_path=str(src_path))
                stages.append(_Recorder(report_writer.add))
            sink = VideoFileSink(out_path, source.info, config.encode, overwrite=overwrite)
            ok = False
            try:
                stats = Pipeline(source, stages, sink, progress=progress, stop=stop).run()
                ok = True
            finally:
                written = sink.close(success=ok)
                if report_writer is not None:
                    report_writer.close(success=ok)
        finally:
            if own_detector:
                det.close()
    assert written is not None
    if source.damaged_frames:
        log.warning(
            "%s: %d frame(s) were damaged in the input and have been covered whole",
            src_path,
            source.damaged_frames,
        )
    return VideoResult(output=written, info=source.info, stats=stats, damaged_frames=source.damaged_frames)


def anonymize_image(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    *,
    overwrite: bool = False,
    detector: FaceDetector | None = None,
    report: str | os.PathLike[str] | None = None,
) -> ImageResult:
    """Anonymize every face in a still image; EXIF, GPS and thumbnails are not written.

    ``report``: write the covered regions as a one-frame audit report (as for a video)."""
    config = config or Config()
    src_path = Path(input_path)
    out_path = Path(output) if output is not None else default_output(src_path)
    _check_distinct(src_path, out_path)
    fmt = output_format(out_path)
    loaded = load_image(src_path)
    if loaded.frames > 1:
        log.warning("%s: has %d frames; only the first is written", src_path, loaded.frames)
    report_writer = None
    if report is not None:
        from .report import ReportWriter

        # Made before the work, so a report folder that cannot be written fails first.
        report_writer = ReportWriter(report, input_path=str(src_path))
    det = detector or create_detector(config.detect)
    try:
        frame = Frame(image=loaded.rgb, index=0)
        with quiet_native_pools():  # the detector's own threads are the parallelism, as in Pipeline.run
            for stage in build_stages(config, det, video=False):
                frame = stage(frame)
    finally:
        if detector is None:
            det.close()
    require_protected(frame)
    target = AtomicPath(out_path, overwrite=overwrite)
    try:
        save_image(loaded, frame.image, target.tmp, fmt)
    except BaseException:
        target.abort()
        raise
    written = target.commit()
    if report_writer is not None:
        report_writer.add(frame)
        report_writer.close(success=True)
    return ImageResult(output=written, faces=len(frame.regions), width=frame.width, height=frame.height,
                       sure=sum(r.score >= SURE_SCORE and r.source == "detection" for r in frame.regions))


def anonymize_file(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    **kwargs: Any,
) -> VideoResult | ImageResult:
    """Dispatch on the file type: images by suffix, everything else as video."""
    if is_image(input_path):
        kwargs = {k: v for k, v in kwargs.items() if k in ("overwrite", "detector", "report")}
        return anonymize_image(input_path, output, config, **kwargs)
    return anonymize_video(input_path, output, config, **kwargs)
