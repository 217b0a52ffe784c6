"""``streamguard live``: a webcam anonymized in real time, to a preview window, a virtual camera
and/or a recording. A thin layer over :mod:`.session`.

Exit codes as for files: 0 done (Ctrl-C, SIGTERM, ``q``, closing the preview and ``--duration``
are normal ends: the recording is finished and kept), 2 bad usage, 3 bad input file, 4 output
problem, 5 detector model problem, 6 camera, virtual camera or display unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..api import VIDEO_SUFFIXES, output_suffix
from ..cli import EXIT_OK, signals_to_stop
from ..config import Config
from ..errors import StreamguardError, UsageError
from ..options import add_anonymize_options, config_from_args, positive_float
from .cameras import StandInCamera, open_source, parse_size
from .detector import LIVE_DETECT
from .session import MAX_DETECT_AGE, LiveSession
from .sinks import RECORD_PRESET, PreviewWindow, RecordSink, VirtualCamSink
from .stats import LiveStats

__all__ = ["main", "build_parser"]

log = logging.getLogger("streamguard")


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _set_default(p: argparse.ArgumentParser, dest: str, value: Any, help_text: str) -> None:
    """Change a shared option's default (and its help) for live mode."""
    for action in p._actions:  # argparse has no public way to reach an added option
        if action.dest == dest:
            action.default, action.help = value, help_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamguard live",
        description="Blur every face of a webcam in real time: a preview window, a virtual camera for "
        "meetings and/or a recording. A raw camera picture is never shown: until faces have been "
        "found, and whenever face detection stalls, the whole picture is hidden.",
    )
    c = p.add_argument_group("camera")
    c.add_argument("--camera", default="0", metavar="INDEX|DEVICE|FILE",
                   help="camera index (default 0), a device such as /dev/video2, or a video file played "
                   "as if it were a camera")
    c.add_argument("--size", type=_size, metavar="WxH",
                   help="capture size, e.g. 1280x720; the camera must support it (default: ask for "
                   "1280x720, take what it offers)")
    c.add_argument(
        "--fps", type=positive_float, help="capture frame rate (default: the camera's, or the file's)"
    )
    c.add_argument("--loop", action="store_true", help="with a video file: start over at the end")
    o = p.add_argument_group("output (at least one)")
    o.add_argument("--preview", action="store_true",
                   help="show the anonymized picture in a window (q/Esc quits, b toggles outlines)")
    o.add_argument("--virtual-cam", action="store_true",
                   help="send the anonymized picture to a virtual camera for meeting apps "
                   "(needs pip install 'streamguard[live]')")
    o.add_argument("--virtual-cam-device", metavar="DEVICE",
                   help="which virtual camera, e.g. /dev/video10 (default: the first one found)")
    o.add_argument("--record", type=Path, metavar="OUT.mp4", help="also record the anonymized picture")
    o.add_argument("--overwrite", action="store_true", help="replace the --record file if it exists")
    r = p.add_argument_group("run")
    r.add_argument("--duration", type=positive_float, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C or the preview is closed)")
    r.add_argument("--max-detect-age", type=positive_float, default=MAX_DETECT_AGE, metavar="S",
                   help="hide the whole picture when face detection has delivered nothing for S seconds "
                   f"(default {MAX_DETECT_AGE})")
    r.add_argument("--wait", action="store_true",
                   help="hold each frame until face detection has looked at it (or a newer frame): only "
                   "faces are blurred, at one to two detection times of latency, and a face the "
                   "detector misses is shown (default: show each frame at once, with every part of "
                   "the picture that changed since detection last looked blurred as well)")
    add_anonymize_options(p)
    _set_default(p, "detection", LIVE_DETECT.preset,
                 "how hard to look for small faces: fast (live default: faces from 32 px, about 150 ms "
                 "of one CPU core per 720p frame), balanced or thorough (2-3 times slower: more of the "
                 "picture hidden)")
    _set_default(p, "detect_every", 1,
                 "start the detector at most every K-th camera frame (default 1: as often as it can); "
                 "saves CPU, but gaps longer than --max-detect-age hide the picture")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def _summary(stats: LiveStats, record: RecordSink | None, written: Path | None) -> str:
    text = (f"streamguard live: {stats.frames_out} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps), "
            f"{stats.frames_dropped} dropped, latency p50 {stats.latency_ms(50):.0f} ms / "
            f"p95 {stats.latency_ms(95):.0f} ms, detection {stats.detect_ms:.0f} ms, "
            f"picture hidden on {stats.curtain_frames} frames")
    if written is not None and record is not None:
        text += f"; recorded {record.frames} frames to {written}"
        if record.dropped:
            text += f" ({record.dropped} left out: the encoder fell behind)"
    return text


def _run(args: argparse.Namespace, config: Config, stop: threading.Event) -> tuple[LiveStats, str]:
    with contextlib.ExitStack() as stack:
        if args.preview:
            PreviewWindow.check_display()  # before anything slow: fail fast
        source = open_source(args.camera, size=args.size, fps=args.fps, loop=args.loop)
        stack.callback(source.close)
        if args.loop and not isinstance(source, StandInCamera):
            log.warning("--loop applies to video files only; ignored for %s", source.name)
        sinks: list[Any] = []
        if args.virtual_cam:
            cam = VirtualCamSink(source.width, source.height, source.fps, device=args.virtual_cam_device)
            stack.callback(cam.close)
            sinks.append(cam)
        record = None
        if args.record is not None:
            encode = replace(config.encode, preset=RECORD_PRESET)
            record = RecordSink(args.record, source.width, source.height, source.fps, encode,
                                overwrite=args.overwrite)
            sinks.append(record)
        preview = None
        if args.preview:
            preview = PreviewWindow(stop, margin=config.anonymize.margin)
            stack.callback(preview.close)
            sinks.append(preview)
        ok = False
        try:
            session = LiveSession(source, config, sinks, max_detect_age=args.max_detect_age, wait=args.wait)
            if not args.quiet:
                to = [f"virtual camera {s.device}" for s in sinks if isinstance(s, VirtualCamSink)]
                if record is not None:
                    to.append(str(record.path))
                if preview is not None:
                    to.append("preview (q quits)")
                print(f"streamguard live: {source.name} {source.width}x{source.height} at {source.fps:g} fps "
                      f"-> {', '.join(to)}; Ctrl-C stops", file=sys.stderr)
            stats = session.run(stop, duration=args.duration)
            ok = True
        finally:
            # Every recorded frame is protected, so whatever was recorded is kept, even after an error.
            written = None
            if record is not None:
                try:
                    written = record.close(success=True)
                except StreamguardError:
                    if ok:
                        raise
                    log.debug("recording not kept", exc_info=True)
        return stats, _summary(stats, record, written)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="streamguard: %(message)s")
    if not (args.preview or args.virtual_cam or args.record):
        parser.error("nothing to show: give --preview, --virtual-cam and/or --record OUT.mp4")
    # Containers whose results are rewrapped (.mpg) cannot be recorded into as named.
    writable = sorted(s for s in VIDEO_SUFFIXES if output_suffix(s) == s)
    if args.record is not None and args.record.suffix.lower() not in writable:
        parser.error(f"--record: {args.record}: use a video file name ({', '.join(writable)})")
    if args.virtual_cam_device and not args.virtual_cam:
        parser.error("--virtual-cam-device needs --virtual-cam")
    try:
        config = config_from_args(args)
    except UsageError as e:
        parser.error(str(e))
    stop = threading.Event()
    with signals_to_stop(stop):
        try:
            _, summary = _run(args, config, stop)
        except StreamguardError as e:
            print(f"streamguard: error: {e}", file=sys.stderr)
            return e.exit_code
    if not args.quiet:
        print(summary, file=sys.stderr)
    return EXIT_OK
