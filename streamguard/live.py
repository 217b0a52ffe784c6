"""Live mode: a camera (or a video file standing in for one) anonymized in real time.

::

    capture thread --newest frame--> output loop (caller's thread) --> sinks
                         \\                  ^  (preview, virtual camera, recorder)
                          `-> detector thread: tracker state as of its last detection

Latency, not backlog: the capture thread keeps only the newest frame, so when the
output is slower than the camera, stale frames are dropped (and counted), never
queued. The detector runs in its own thread on the newest frame; its results
update a :class:`~streamguard.track.Tracker` on the *detected* frame's capture
time, and the output loop extrapolates a copy of that tracker to each output
frame's capture time. So every output frame is covered, even though detection
runs at a few Hz while the camera runs at 30 fps.

Fails closed: until the first detection result exists, whenever the detector has
delivered nothing for longer than ``max_detect_age``, when it raised, or when the
picture jumped (scene cut, a looped file restarting) and no detection of the new
picture exists yet, the whole output frame is hidden behind a privacy curtain
with a notice. Sinks refuse frames the session has not marked protected.
"""

from __future__ import annotations

import copy
import logging
import os
import queue
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .anonymize import Anonymizer, curtain, draw_outline
from .api import VIDEO_SUFFIXES
from .config import Config, DetectConfig, EncodeConfig
from .detect import FaceDetector, create_detector, detect_upright
from .errors import DeviceError, InputError
from .sinks import UnprotectedFrameError, VideoFileSink
from .sources import VideoFileSource, VideoInfo
from .track import SceneCutDetector, Tracker
from .types import Box, Frame, Region

__all__ = [
    "LIVE_DETECT",
    "MAX_DETECT_AGE",
    "LiveSource",
    "StandInCamera",
    "CameraSource",
    "open_source",
    "FrameInfo",
    "LiveStats",
    "LiveSession",
    "RecordSink",
    "VirtualCamSink",
    "PreviewWindow",
    "live_config",
    "create_live_detector",
    "parse_size",
    "draw_notice",
]

log = logging.getLogger(__name__)

#: Detector settings for live use. The tiled "fast" preset still finds faces down to 32 px at
#: up to 1080p (BlazeFace on the whole frame finds nothing under ~1/10 of the frame height) and is
#: the only preset that keeps up: on the 2-core development machine (shared, so on the slow side)
#: it took 55-95 ms per 640x480 frame and 140-210 ms per 1280x720 frame, within ``MAX_DETECT_AGE``;
#: "balanced" took 2-3 times that, which would keep the curtain down most of the time.
LIVE_DETECT = DetectConfig(preset="fast")
#: Seconds without a new detection result after which the picture is curtained.
MAX_DETECT_AGE = 0.25
#: CPU priority (Linux nice increment) of the detector's threads. On a busy CPU the capture and
#: output threads, a few ms per frame, go first, so a slow detector costs detection rate (and, past
#: ``max_detect_age``, curtained frames), not output frame rate or latency. Not more (5 leaves the
#: detector a third of a normal thread's share), since a meeting app competes for the CPU too and a
#: starved detector means a curtained picture.
DETECT_NICE = 5
#: x264 preset of live recordings: a third of "veryfast"'s CPU per frame, left to the detector,
#: for files about three times larger.
RECORD_PRESET = "superfast"
#: Live frames carry their capture time in this time base (for the recorder).
TIME_BASE = Fraction(1, 90_000)
_POLL = 0.05  # seconds between stop checks while waiting
_JOIN = 5.0  # seconds to wait for a thread at shutdown (a real detection takes < 0.5 s)


# -- sources --------------------------------------------------------------------------------------


class LiveSource(Protocol):
    """A camera: ``read`` blocks until the next frame is captured."""

    name: str
    width: int
    height: int
    fps: float
    #: Increments when the picture jumps (a looped file restarting): old detections no longer apply.
    segment: int

    def read(self, stop: threading.Event) -> Frame | None:
        """The next frame with ``captured_at`` set (``time.monotonic()``), or None at the end/on stop."""
        ...

    def close(self) -> None: ...


class StandInCamera:
    """A video file played at its native rate on the wall clock, as if it were a camera.

    For demos, tests and benchmarks. Frames are decoded ahead and handed out when their
    presentation time comes; with ``loop`` the file starts over at the end (a new
    :attr:`segment`). ``fps`` replaces the file's own timing with a fixed rate. A display
    rotation is applied, so frames come out upright like a camera's.
    """

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = False, fps: float | None = None,
                 size: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        self.loop = loop
        self._src = VideoFileSource(self.path)  # InputError: missing, not media, no frames, ...
        info = self._src.info
        self._it = iter(self._src)
        try:
            # Decoded now: its display rotation tells which way up the camera "stands".
            self._pending: Frame | None = next(self._it)
        except BaseException:
            self._src.close()
            raise
        self._k = (self._pending.rotation // 90) % 4  # quarter turns to show the picture upright
        w, h = (info.height, info.width) if self._k % 2 else (info.width, info.height)
        self.name, self.width, self.height = str(self.path), w, h
        if size is not None and size != (w, h):
            self._src.close()
            raise DeviceError(f"{self.path}: does not support {size[0]}x{size[1]} (it delivers {w}x{h}); "
                              f"use --size {w}x{h} or leave --size out")
        self.fps = float(fps) if fps else float(info.fps)
        self._fixed_rate = fps is not None
        self.segment = 0
        #: Index in the file of the frame last returned by :meth:`read`.
        self.position = -1
        self._start: float | None = None
        self._offset = 0.0  # seconds of file time played in earlier loops
        self._first_time: float | None = None
        self._last_time = 0.0
        self._count = 0

    def _next_decoded(self) -> Frame | None:
        if self._pending is not None:
            f, self._pending = self._pending, None
            return f
        f = next(self._it, None)
        if f is not None or not self.loop or self.position < 0:
            return f
        # End of file: start over, one frame interval after the last frame.
        self._offset += self._last_time - (self._first_time or 0.0) + 1.0 / self.fps
        self._src.close()
        self._src = VideoFileSource(self.path)
        self._it = iter(self._src)
        self.segment += 1
        self.position = -1
        return next(self._it, None)

    def read(self, stop: threading.Event) -> Frame | None:
        f = self._next_decoded()
        if f is None:
            return None
        self.position += 1
        t = f.time if f.time is not None else self.position / self.fps
        if self._first_time is None:
            self._first_time = t
        self._last_time = t
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + (self._count / self.fps if self._fixed_rate
                             else self._offset + t - self._first_time)
        wait = due - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return None
        self._count += 1
        image = f.image if not self._k else np.ascontiguousarray(np.rot90(f.image, self._k))
        return Frame(image=image, index=self._count - 1, captured_at=time.monotonic())

    def close(self) -> None:
        self._src.close()


def _camera_backends() -> list[int]:
    if sys.platform.startswith("linux"):
        return [cv2.CAP_V4L2]
    if sys.platform == "darwin":
        return [cv2.CAP_AVFOUNDATION]
    if sys.platform == "win32":
        # DirectShow opens in well under a second; Media Foundation can take several.
        return [cv2.CAP_DSHOW, cv2.CAP_MSMF]
    return [cv2.CAP_ANY]


def _camera_fix() -> str:
    if sys.platform.startswith("linux"):
        return "list cameras with 'v4l2-ctl --list-devices' (package v4l-utils)"
    if sys.platform == "darwin":
        return "allow camera access for this terminal in System Settings > Privacy & Security > Camera"
    return "check Settings > Privacy > Camera allows desktop apps"


class CameraSource:
    """A real camera through OpenCV (V4L2 on Linux, AVFoundation on macOS, DirectShow/MSMF on Windows).

    ``size`` given: the camera must deliver exactly that (else :class:`DeviceError`); None asks
    for 1280x720 and takes what the camera offers. ``api_preference`` overrides the backend.
    """

    DEFAULT_SIZE = (1280, 720)
    #: A camera that delivers nothing for this long is gone (unplugged, taken by another program).
    MAX_SILENCE = 3.0

    def __init__(self, device: int | str, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 api_preference: int | None = None) -> None:
        self.device = device
        self.name = f"camera {device}" if isinstance(device, int) else str(device)
        self.segment = 0
        node = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if api_preference is None and sys.platform.startswith("linux"):
            self._check_node(node)
            self.name = f"camera {device} ({node})" if isinstance(device, int) else node
        backends = [api_preference] if api_preference is not None else _camera_backends()
        want_w, want_h = size or self.DEFAULT_SIZE
        # OpenCV prints multi-line warnings for a missing/busy camera; we say it in one line.
        prev = cv2.setLogLevel(0)
        try:
            cap, first = self._open(backends, want_w, want_h, fps)
        finally:
            cv2.setLogLevel(prev)
        self._cap = cap
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        if size is not None and (self.width, self.height) != size:
            cap.release()
            raise DeviceError(f"{self.name}: does not support {size[0]}x{size[1]} (it delivers "
                              f"{self.width}x{self.height}); use --size {self.width}x{self.height}")
        got = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(got) if got and 1 <= got <= 240 else float(fps or 30.0)
        if fps and abs(self.fps - fps) > 1:
            log.warning("%s: asked for %g fps, the camera runs at %g fps", self.name, fps, self.fps)

    def _check_node(self, node: str) -> None:
        p = Path(node)
        if not p.exists():
            raise DeviceError(f"{self.name}: no such camera ({node} does not exist); {_camera_fix()}, "
                              "or pass a video file to --camera to try streamguard without one")
        try:
            is_char = stat.S_ISCHR(p.stat().st_mode)
        except OSError:
            is_char = False
        if not is_char:
            raise DeviceError(f"{node}: not a camera device")
        if not os.access(node, os.R_OK | os.W_OK):
            raise DeviceError(f"{node}: permission denied; add yourself to the 'video' group "
                              "(sudo usermod -aG video $USER, then log in again)")

    def _open(self, backends: Sequence[int], w: int, h: int, fps: float | None) -> tuple[Any, np.ndarray]:
        for backend in backends:
            cap = cv2.VideoCapture(self.device, backend)
            if not cap.isOpened():
                cap.release()
                continue
            if backend in (cv2.CAP_V4L2, cv2.CAP_DSHOW):
                # Most USB webcams give 720p30 only as MJPEG; raw YUYV tops out near 10 fps over USB 2.
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue is latency too
            deadline = time.monotonic() + 2.0  # some cameras need a moment for their first frame
            while time.monotonic() < deadline:
                ok, img = cap.read()
                if ok and img is not None and img.size:
                    return cap, img
                time.sleep(0.05)
            cap.release()
            raise DeviceError(f"{self.name}: opened but delivers no frames: it is probably in use by "
                              "another program (close the meeting app or browser tab using it) or not a "
                              "capture device")
        raise DeviceError(f"{self.name}: cannot open (no such camera, or in use by another program); "
                          f"{_camera_fix()}")

    @staticmethod
    def _rgb(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.shape[2] == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def read(self, stop: threading.Event) -> Frame | None:
        if self._first is not None:
            img, self._first = self._first, None
            return Frame(image=self._rgb(img), index=0, captured_at=time.monotonic())
        since = time.monotonic()
        while not stop.is_set():
            ok, img = self._cap.read()
            now = time.monotonic()
            if ok and img is not None and img.size:
                if img.shape[:2] != (self.height, self.width):
                    img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
                return Frame(image=self._rgb(img), index=0, captured_at=now)
            if now - since > self.MAX_SILENCE:
                raise DeviceError(f"{self.name}: stopped delivering frames (unplugged, or taken by another "
                                  "program?)")
            stop.wait(0.02)
        return None

    def close(self) -> None:
        self._cap.release()


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ValueError otherwise."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 16 or int(h) < 16:
        raise ValueError(f"size must be WIDTHxHEIGHT like 1280x720, got {text!r}")
    return int(w), int(h)


def open_source(spec: str, *, size: tuple[int, int] | None = None, fps: float | None = None,
                loop: bool = False) -> LiveSource:
    """``--camera``: an index (``0``), a device (``/dev/video2``) or a video file (the stand-in camera)."""
    if spec.isdigit():
        return CameraSource(int(spec), size=size, fps=fps)
    p = Path(spec)
    if p.is_file():
        return StandInCamera(p, loop=loop, fps=fps, size=size)
    if spec.startswith("/dev/") or (p.exists() and not p.is_dir()):
        return CameraSource(spec, size=size, fps=fps)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a camera or a video file")
    if p.suffix.lower() in VIDEO_SUFFIXES:
        raise InputError(f"{p}: no such file")
    raise DeviceError(f"{spec}: no such camera or video file; pass a camera index (0, 1, ...), "
                      "a device such as /dev/video0, or a video file")


# -- the session ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What the session did with one output frame."""

    index: int
    captured_at: float
    #: Time the last sink returned (``time.monotonic()``).
    sent_at: float
    #: Why the whole picture was hidden, or None when faces were covered one by one.
    curtain: str | None
    faces: int
    #: Seconds since the detector last delivered a result, when the frame was rendered.
    detect_age: float | None
    #: Capture index of the frame whose detection the covered regions come from.
    detected_index: int | None
    segment: int

    @property
    def latency(self) -> float:
        return self.sent_at - self.captured_at


@dataclass(slots=True)
class LiveStats:
    frames_captured: int = 0
    frames_out: int = 0
    #: Captured frames never shown because a newer one had arrived (latency, not backlog).
    frames_dropped: int = 0
    curtain_frames: int = 0
    detections: int = 0
    detect_errors: int = 0
    detect_seconds: float = 0.0
    seconds: float = 0.0
    #: Capture-to-sink seconds of the most recent output frames.
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    curtain_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def detect_ms(self) -> float:
        return 1000 * self.detect_seconds / self.detections if self.detections else 0.0

    def latency_ms(self, percentile: float) -> float:
        return 1000 * float(np.percentile(self.latencies, percentile)) if self.latencies else 0.0


@dataclass(frozen=True, slots=True)
class _Captured:
    frame: Frame
    segment: int


@dataclass(frozen=True, slots=True)
class _Result:
    """The tracker as of one detection: never mutated once published."""

    tracker: Tracker
    time: float  # capture time of the detected frame
    index: int
    segment: int
    finished_at: float


class _Newest:
    """A one-frame mailbox: ``put`` replaces, so a slow reader skips stale frames instead of queueing them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: _Captured | None = None
        self._taken = True
        self.closed = False
        self.dropped = 0

    def put(self, item: _Captured) -> None:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._item, self._taken = item, False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def newer(self, after: int, timeout: float, *, take: bool = False) -> _Captured | None:
        """The newest frame if its index is above ``after`` (waits up to ``timeout``), else None."""
        def ready() -> bool:
            return self.closed or (self._item is not None and self._item.frame.index > after)

        with self._cond:
            self._cond.wait_for(ready, timeout)
            item = self._item
            if item is None or item.frame.index <= after:
                return None
            if take:
                self._taken = True
            return item


def draw_notice(image: np.ndarray, text: str) -> None:
    """``text`` on a dark band along the bottom of ``image`` (RGB, in place), where captions go:
    it stays readable in a meeting and keeps the middle of the hidden picture plain."""
    h, w = image.shape[:2]
    scale = max(0.4, w / 1400)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    if tw > 0.94 * w:  # long reasons: shrink to fit rather than run off the picture
        scale *= 0.94 * w / tw
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = th // 2 + 2
    top = max(0, h - th - base - 2 * pad)
    image[top:] //= 4
    cv2.putText(image, text, ((w - tw) // 2, h - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)


def _lower_priority() -> None:
    """Lower this thread's CPU priority by :data:`DETECT_NICE` (Linux: threads have their own nice
    value, and threads they start inherit it; elsewhere it would apply to the whole process)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + DETECT_NICE))
    except OSError as e:  # e.g. a sandbox that forbids it: run at normal priority
        log.debug("cannot lower the detector's priority: %s", e)


def create_live_detector(config: DetectConfig = LIVE_DETECT) -> FaceDetector:
    """``create_detector(config)``, built on a lower-priority thread: MediaPipe runs the model on
    worker threads it starts while being built, and they inherit that priority."""
    box: dict[str, Any] = {}

    def build() -> None:
        _lower_priority()
        try:
            box["detector"] = create_detector(config)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=build, name="streamguard-live-load", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["detector"]


def live_config(config: Config, max_detect_age: float = MAX_DETECT_AGE) -> Config:
    """``config`` as live mode runs it: no look-ahead (it would be latency), and a hold long enough
    to cover the oldest detection result the session may still use."""
    hold = max(config.track.hold, 2 * max_detect_age)
    return replace(config, track=replace(config.track, lookahead=0.0, hold=hold))


class LiveSession:
    """Runs ``source`` through detection, tracking and anonymization into ``sinks`` in real time.

    ``run(stop)`` owns the caller's thread (the output loop: keep it the main thread, as GUI
    previews need) plus a capture and a detector thread, and returns when ``stop`` is set,
    ``duration`` has passed or the source ended; every thread has ended by then. Sinks are
    written, never closed: the caller owns them. ``detector`` defaults to
    :func:`create_live_detector` (closed at the end); ``on_frame(frame, info)`` is called
    after the sinks for every output frame.
    """

    def __init__(self, source: LiveSource, config: Config | None = None, sinks: Sequence[Any] = (), *,
                 detector: FaceDetector | None = None, max_detect_age: float = MAX_DETECT_AGE,
                 on_frame: Callable[[Frame, FrameInfo], Any] | None = None) -> None:
        if max_detect_age <= 0:
            raise ValueError(f"max_detect_age must be > 0, got {max_detect_age}")
        self.source = source
        self.config = live_config(config or Config(detect=LIVE_DETECT), max_detect_age)
        self.sinks = list(sinks)
        self.max_detect_age = max_detect_age
        self.on_frame = on_frame
        self.stats = LiveStats()
        self._own_detector = detector is None
        self.detector = detector if detector is not None else create_live_detector(self.config.detect)
        self._anonymizer = Anonymizer(self.config.anonymize)
        self._every = self.config.track.detect_every
        if self._every > 1 and (self._every - 1) / max(source.fps, 1.0) >= max_detect_age:
            log.warning("--detect-every %d at %g fps leaves gaps longer than the %g s detection age limit: "
                        "the picture will be curtained between detections", self._every, source.fps,
                        max_detect_age)
        self._slot = _Newest()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._result: _Result | None = None
        self._detect_error: str | None = None
        self._error: BaseException | None = None
        self._started = 0.0
        # The output loop's own copy of the newest result's tracker, advanced frame by frame.
        self._work: Tracker | None = None
        self._work_of: _Result | None = None
        self._work_time = 0.0

    # -- threads ----------------------------------------------------------------------------------
    def _fail(self, e: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = e
        self._halt.set()

    def _capture(self) -> None:
        cuts = SceneCutDetector()
        src_segment, segment, index = self.source.segment, 0, 0
        try:
            while not self._halt.is_set():
                frame = self.source.read(self._halt)
                if frame is None:
                    return
                # A cut (or a looped file restarting) makes every earlier detection stale.
                cut = cuts(frame.image)
                if cut or self.source.segment != src_segment:
                    src_segment, segment = self.source.segment, segment + 1
                    log.debug("picture jumped at frame %d: segment %d", index, segment)
                frame.index = index
                if frame.captured_at is None:
                    frame.captured_at = time.monotonic()
                frame.pts = round((frame.captured_at - self._started) / TIME_BASE)
                frame.time_base = TIME_BASE
                index += 1
                self.stats.frames_captured = index
                self._slot.put(_Captured(frame, segment))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)
        finally:
            self._slot.close()

    def _detect_loop(self) -> None:
        _lower_priority()  # its Python part (tiling, tracking) too
        tracker = Tracker(self.config.track.hold)
        last, segment, failures = -1, -1, 0
        while not self._halt.is_set():
            item = self._slot.newer(last + self._every - 1, _POLL)
            if item is None:
                if self._slot.closed:
                    return
                continue
            frame = item.frame
            last = frame.index
            assert frame.captured_at is not None
            t0 = time.monotonic()
            try:
                found = detect_upright(self.detector, frame.image, frame.rotation)
                done = time.monotonic()
                if item.segment != segment:
                    tracker.reset()
                    segment = item.segment
                tracker.update(found, frame.captured_at)
                result = _Result(copy.deepcopy(tracker), frame.captured_at, frame.index, item.segment, done)
            except Exception as e:  # noqa: BLE001 - fail closed (curtain) and keep trying
                failures += 1
                self.stats.detect_errors += 1
                if failures == 1:
                    log.error("face detection failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
                with self._lock:
                    self._detect_error = f"face detection failed ({type(e).__name__})"
                    self._result = None
                self._halt.wait(min(1.0, 0.1 * failures))
                continue
            if failures:
                log.warning("face detection works again after %d failure(s)", failures)
            failures = 0
            with self._lock:
                self._result = result
                self._detect_error = None
                self.stats.detections += 1
                self.stats.detect_seconds += done - t0

    # -- the output loop --------------------------------------------------------------------------
    def _curtain_reason(self, item: _Captured, now: float) -> tuple[str | None, _Result | None, float | None]:
        with self._lock:
            result, error = self._result, self._detect_error
        age = now - (result.finished_at if result is not None else self._started)
        if error is not None:
            return error, None, age
        if result is None:
            return "starting face detection", None, age
        if age > self.max_detect_age:
            return f"face detection stalled ({age * 1000:.0f} ms)", result, age
        if result.segment != item.segment:
            return "picture changed, detecting faces", result, age
        assert item.frame.captured_at is not None
        if item.frame.captured_at - result.time > 2 * self.max_detect_age:
            # Results arrive, but each is too old to extrapolate from: detection is too slow.
            return "face detection too slow for this picture", result, age
        return None, result, age

    def _regions(self, frame: Frame, result: _Result) -> tuple[Region, ...]:
        if self._work_of is not result:
            self._work = copy.deepcopy(result.tracker)
            self._work_of, self._work_time = result, result.time
        assert self._work is not None and frame.captured_at is not None
        # A result newer than this frame (the output lagged): never ask the tracker to rewind.
        t = max(frame.captured_at, self._work_time)
        self._work_time = t
        tracks = self._work.update(None, t)
        bounds = Box(0, 0, frame.width, frame.height)
        return tuple(Region(trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score)
                     for trk in tracks if trk.box.intersection(bounds) > 0)

    def _render(self, item: _Captured) -> tuple[Frame, FrameInfo]:
        src = item.frame
        # A copy: the detector may be reading the captured picture right now.
        out = Frame(image=src.image.copy(), index=src.index, pts=src.pts, time_base=src.time_base,
                    captured_at=src.captured_at)
        now = time.monotonic()
        reason, result, age = self._curtain_reason(item, now)
        if reason is None and result is not None:
            try:
                out.regions = self._regions(out, result)
                self._anonymizer(out)
            except Exception:  # a bug: hide the picture rather than show it half done
                log.exception("cannot cover faces in frame %d", out.index)
                reason = "internal error"
        if reason is not None:
            curtain(out.image)
            draw_notice(out.image, f"Picture hidden: {reason}")
            out.regions = (Region(Box(0, 0, out.width, out.height), "curtain"),)
            out.notes.append(reason)
            out.protected = True
            self.stats.curtain_frames += 1
            key = reason.split(" (")[0]
            self.stats.curtain_reasons[key] = self.stats.curtain_reasons.get(key, 0) + 1
        faces = sum(1 for r in out.regions if r.source != "curtain")
        info = FrameInfo(out.index, out.captured_at or now, now, reason, faces, age,
                         result.index if result is not None and reason is None else None, item.segment)
        return out, info

    def run(self, stop: threading.Event | None = None, *, duration: float | None = None) -> LiveStats:
        """Show frames until ``stop``, ``duration`` seconds or the end of the source. Raises the
        capture thread's error (e.g. a :class:`DeviceError` when the camera is unplugged)."""
        stop = stop if stop is not None else threading.Event()
        self._started = time.monotonic()
        threads = [threading.Thread(target=self._capture, name="streamguard-live-capture", daemon=True),
                   threading.Thread(target=self._detect_loop, name="streamguard-live-detect", daemon=True)]
        for t in threads:
            t.start()
        last = -1
        try:
            while not stop.is_set() and not self._halt.is_set():
                if duration is not None and time.monotonic() - self._started >= duration:
                    break
                item = self._slot.newer(last, _POLL, take=True)
                if item is None:
                    if self._slot.closed:
                        break
                    continue
                last = item.frame.index
                out, info = self._render(item)
                for sink in self.sinks:
                    sink.write(out)
                info = replace(info, sent_at=time.monotonic())
                self.stats.frames_out += 1
                self.stats.latencies.append(info.latency)
                if self.on_frame is not None:
                    self.on_frame(out, info)
        except BaseException as e:
            self._fail(e)
        finally:
            self._halt.set()
            self._slot.close()
            for t in threads:
                t.join(timeout=_JOIN)
            self.stats.seconds = time.monotonic() - self._started
            self.stats.frames_dropped = self._slot.dropped
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning("threads still running at shutdown: %s", ", ".join(alive))
            # Closing a detector another thread still runs would crash in native code.
            if self._own_detector and not threads[1].is_alive():
                self.detector.close()
        if self._error is not None:
            raise self._error
        return self.stats


# -- sinks ----------------------------------------------------------------------------------------


def _check(frame: Frame) -> None:
    if not frame.protected:
        raise UnprotectedFrameError(f"frame {frame.index} reached the sink unprotected")


_END = object()


class RecordSink:
    """Records protected live frames to a video file, encoding on its own thread.

    Uses :class:`~streamguard.sinks.VideoFileSink` (temporary name, renamed by ``close``), with
    each frame's capture time as its timestamp. When the encoder falls behind, frames are
    dropped from the recording (counted in :attr:`dropped`) rather than delaying the live picture.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float,
                 encode: EncodeConfig | None = None, *, overwrite: bool = False,
                 queue_size: int = 15) -> None:
        info = VideoInfo(path=Path(path), width=width, height=height,
                         fps=Fraction(fps).limit_denominator(1001), time_base=TIME_BASE, frames=None,
                         duration=None, codec="rawvideo", audio_streams=0)
        # Nothing to copy metadata from: a camera has no container.
        encode = replace(encode or EncodeConfig(preset=RECORD_PRESET), keep_metadata=False)
        self._sink = VideoFileSink(path, info, encode, overwrite=overwrite, copy_audio=False)
        self.path = self._sink.path
        self.dropped = 0
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._last_pts: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="streamguard-live-record", daemon=True)
        self._thread.start()

    @property
    def frames(self) -> int:
        return self._sink.frames

    def write(self, frame: Frame) -> None:
        _check(frame)
        if self._error is not None:
            raise self._error
        try:
            self._q.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            frame = self._q.get()
            if frame is _END:
                return
            if self._error is not None:
                continue
            # Two frames read in the same tick must still get increasing timestamps.
            if self._last_pts is not None and frame.pts is not None and frame.pts <= self._last_pts:
                frame.pts = self._last_pts + 1
            self._last_pts = frame.pts
            try:
                self._sink.write(frame)
            except BaseException as e:  # noqa: BLE001 - raised in the writer's thread on next write/close
                self._error = e

    def close(self, success: bool = True) -> Path | None:
        """Finish and move the file into place (``success``), or remove it. Idempotent."""
        if not self._closed:
            self._closed = True
            self._q.put(_END)
            self._thread.join()
        if self._error is not None:
            self._sink.close(success=False)
            raise self._error
        return self._sink.close(success=success)


def _virtual_cam_fix() -> str:
    if sys.platform.startswith("linux"):
        return ("load the v4l2loopback module: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
                "(package v4l2loopback-dkms)")
    return "install OBS Studio 28 or newer and start its Virtual Camera once"


class VirtualCamSink:
    """Protected frames to a virtual camera that meeting apps can pick (via ``pyvirtualcam``)."""

    def __init__(self, width: int, height: int, fps: float, device: str | None = None) -> None:
        try:
            import pyvirtualcam
        except ImportError as e:
            raise DeviceError("virtual camera: pyvirtualcam is not installed; install it with "
                              f"pip install 'streamguard[live]', then {_virtual_cam_fix()}") from e
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                            device=device, print_fps=False)
        except Exception as e:  # RuntimeError for every missing/broken backend
            why = str(e).split(". ")[0].replace("'v4l2loopback' backend: ", "")
            raise DeviceError(f"virtual camera: {why}; {_virtual_cam_fix()}") from e
        self.device = str(self._cam.device)
        self.width, self.height = width, height

    def write(self, frame: Frame) -> None:
        _check(frame)
        self._cam.send(np.ascontiguousarray(frame.image))

    def close(self, success: bool = True) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is None:
            return
        try:
            # A virtual camera may keep showing the last frame after we stop: make it say so.
            last = np.zeros((self.height, self.width, 3), np.uint8)
            draw_notice(last, "streamguard stopped")
            cam.send(last)
        finally:
            cam.close()


class PreviewWindow:
    """An OpenCV window showing the protected picture with fps, latency and face count.

    ``q``/Esc or closing the window set ``stop``; ``b`` toggles the covered regions' outlines.
    Call :meth:`write` from the main thread (macOS draws windows there only).
    """

    QUIT_KEYS = (ord("q"), ord("Q"), 27)
    OUTLINE_KEYS = (ord("b"), ord("B"))

    def __init__(self, stop: threading.Event, title: str = "streamguard live", *, margin: float = 0.5,
                 outlines: bool = False) -> None:
        self.stop = stop
        self.title = title
        self.margin = margin
        self.outlines = outlines
        self.quit_reason: str | None = None
        self._opened = False
        self._shown: deque[float] = deque(maxlen=31)

    @staticmethod
    def check_display() -> None:
        """Raise :class:`DeviceError` where no window can open (Qt would abort the process)."""
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or
                                                     os.environ.get("WAYLAND_DISPLAY")):
            raise DeviceError("--preview: no display (DISPLAY is not set); run it in a desktop session, "
                              "or use --virtual-cam / --record")

    def _hud(self, image: np.ndarray, frame: Frame) -> None:
        now = time.monotonic()
        self._shown.append(now)
        span = self._shown[-1] - self._shown[0]
        fps = (len(self._shown) - 1) / span if span > 0 else 0.0
        latency = (now - frame.captured_at) * 1000 if frame.captured_at is not None else 0.0
        faces = sum(1 for r in frame.regions if r.source != "curtain")
        lines = [f"{fps:4.1f} fps  {latency:3.0f} ms  {faces} face(s)"]
        lines.append(f"HIDDEN: {frame.notes[-1]}" if frame.notes else "faces covered")
        scale = max(0.4, image.shape[1] / 1600)
        y = 0
        for i, text in enumerate(lines):
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y += th + base + 6
            image[y - th - base - 6:y, 0:tw + 12] //= 3
            colour = (255, 90, 90) if i == 1 and frame.notes else (255, 255, 255)
            cv2.putText(image, text, (6, y - base - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1,
                        cv2.LINE_AA)

    def write(self, frame: Frame) -> None:
        _check(frame)
        if self.quit_reason is not None:
            return  # never reopen a window the user closed
        image = frame.image.copy()  # outlines and the HUD are for the preview only
        if self.outlines:
            for r in frame.regions:
                if r.source != "curtain":
                    draw_outline(image, r, self.margin)
        self._hud(image, frame)
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            self._opened = True
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.handle_key(cv2.waitKey(1))
        if self.quit_reason is None and self._closed():
            self.quit("window closed")

    def handle_key(self, key: int) -> None:
        if key < 0:
            return
        key &= 0xFF
        if key in self.QUIT_KEYS:
            self.quit("key pressed")
        elif key in self.OUTLINE_KEYS:
            self.outlines = not self.outlines

    def _closed(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True  # the window no longer exists

    def quit(self, reason: str) -> None:
        self.quit_reason = reason
        self.stop.set()

    def close(self, success: bool = True) -> None:
        if self._opened:
            self._opened = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the GUI loop actually take it down
            except cv2.error:
                pass
