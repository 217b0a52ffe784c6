"""Live mode: a camera (or a video file standing in for one) anonymized in real time.

::

    capture thread --newest frame--> output loop (caller's thread) --> sinks
                         \\                  ^  (preview, virtual camera, recorder)
                          `-> detector thread: tracker state as of its last detection

Latency, not backlog: the capture thread keeps only the newest frame, so when the
output is slower than the camera, stale frames are dropped (and counted), never
queued. The detector runs in its own thread on the newest frame ("a look"): a few
looks a second, while the camera runs at 30 fps. A look is the detect stage files use
(:mod:`.detector`) and a :class:`~streamguard.track.Tracker`; frames are covered by the
:class:`~streamguard.anonymize.Anonymizer`.

Each frame is either shown at once, covered by the last look's faces and whatever moved
since (the default), or once a look at it is in (``wait=True``): the two ways of
:mod:`.cover`, chosen when the session is made.

Fails closed: until the first detection result exists, whenever the detector has
delivered nothing for longer than ``max_detect_age``, when it raised, or when the
picture jumped (scene cut, a looped file restarting) and no detection of the new
picture exists yet, the whole output frame is hidden behind a privacy curtain
with a notice. Sinks refuse frames the session has not marked protected.

The sources are in :mod:`.cameras`, the sinks in :mod:`.sinks`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..anonymize import Anonymizer
from ..camera import CameraMotion
from ..config import Config
from ..detect import FaceDetector
from ..gaps import GapStage
from ..scenecut import SceneCutDetector
from ..threads import quiet_native_pools
from ..track import Tracker
from ..types import Frame
from .cameras import TIME_BASE, LiveSource
from .cover import Cover, Pair, ShowNewest, WaitForLook
from .detector import LIVE_DETECT, create_live_detector, detect_stage, lower_priority
from .handoff import POLL, Captured, Look, Looks, Newest
from .notice import hide
from .stats import FrameInfo, LiveStats

__all__ = ["MAX_DETECT_AGE", "LiveSession", "live_config"]

log = logging.getLogger(__name__)

#: Seconds without a new detection result after which the picture is curtained. Not less: in
#: the session (sharing two cores with capture, output and a recorder) a 1280x720 look took
#: 340-640 ms, and the motion cover keeps a frame safe however old its look is; a longer pause
#: means a detector that hangs or starves, and then the picture goes.
MAX_DETECT_AGE = 1.0
_JOIN = 5.0  # seconds to wait for a thread at shutdown (a real detection takes < 0.5 s)


def live_config(config: Config, max_detect_age: float = MAX_DETECT_AGE) -> Config:
    """``config`` as live mode runs it: no look-ahead (it would be latency), and a hold of at least
    the detection age limit, so a face one look missed is still covered until the next look (and,
    waiting, a frame between two looks has the older look's tracks). Not longer: an unseen face's
    cover grows with the time since it was seen, up to the whole picture."""
    hold = max(config.track.hold, max_detect_age)
    return replace(config, track=replace(config.track, lookahead=0.0, hold=hold))


class LiveSession:
    """Runs ``source`` through detection, tracking and anonymization into ``sinks`` in real time.

    ``run(stop)`` owns the caller's thread (the output loop: keep it the main thread, as GUI
    previews need) plus a capture and a detector thread, and returns when ``stop`` is set,
    ``duration`` has passed or the source ended; every thread has ended by then. Sinks are
    written, never closed: the caller owns them. ``detector`` defaults to
    :func:`~.detector.create_live_detector` (closed at the end); ``on_frame(frame, info)`` is
    called after the sinks for every output frame. ``wait`` holds each frame until a look at
    it or a newer frame is in (see :mod:`.cover`).
    """

    def __init__(self, source: LiveSource, config: Config | None = None, sinks: Sequence[Any] = (), *,
                 detector: FaceDetector | None = None, max_detect_age: float = MAX_DETECT_AGE,
                 on_frame: Callable[[Frame, FrameInfo], Any] | None = None, wait: bool = False) -> None:
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
        self._gaps = GapStage(self.config.anonymize)
        self._anonymizer = Anonymizer(self.config.anonymize)
        self._every = self.config.track.detect_every
        if self._every > 1 and (self._every - 1) / max(source.fps, 1.0) >= max_detect_age:
            log.warning("--detect-every %d at %g fps leaves gaps longer than the %g s detection age limit: "
                        "the picture will be curtained between detections", self._every, source.fps,
                        max_detect_age)
        self._slot = Newest()
        self._looks = Looks(self.stats)
        self.wait = wait
        kind = WaitForLook if wait else ShowNewest
        self._cover: Cover = kind(self._slot, self._looks, max_detect_age=max_detect_age, fps=source.fps)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._started = 0.0

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
                captured = Captured(frame, segment)
                self._slot.put(captured)
                self._cover.captured(captured)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)
        finally:
            self._slot.close()
            self._cover.capture_ended()

    def _detect_loop(self) -> None:
        try:
            self._look()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, as capture's
            self._fail(e)

    def _look(self) -> None:
        lower_priority()  # its Python part (tiling, tracking) too
        stage = detect_stage(self.detector, self.source.fps, self.config.detect.levels)
        tracker = Tracker(self.config.track.hold)
        # Between two looks a handheld camera may have swung: the tracks move with the picture.
        motion = CameraMotion() if self.config.track.follow_camera else None
        last, segment, failures = -1, -1, 0
        while not self._halt.is_set():
            item = self._slot.newer(last + self._every - 1, POLL)
            if item is None:
                if self._slot.closed:
                    return
                continue
            frame = item.frame
            last = frame.index
            assert frame.captured_at is not None
            t0 = time.monotonic()
            try:
                # A view of the captured frame: the output loop copies the same picture meanwhile.
                view = stage(Frame(image=frame.image, index=frame.index, pts=frame.pts,
                                   time_base=frame.time_base, rotation=frame.rotation))
                done = time.monotonic()
                if item.segment != segment:
                    tracker.reset()
                    if motion is not None:
                        motion.reset()
                    segment = item.segment
                moved = motion(view) if motion is not None else None
                tracks = tuple(tracker.update(view.detections, frame.captured_at, moved))
                kept, cells = self._cover.keep(tracker, frame.image)
                look = Look(frame.captured_at, frame.index, item.segment, done, tracks, kept, cells)
            except Exception as e:  # noqa: BLE001 - fail closed (curtain) and keep trying
                # Published before it is logged: a log handler may block on its stream, and the
                # frames shown meanwhile must already say why the picture is hidden.
                self._looks.fail(f"face detection failed ({type(e).__name__})")
                failures += 1
                if failures == 1:
                    log.error("face detection failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
                self._halt.wait(min(1.0, 0.1 * failures))
                continue
            self._looks.publish(look, done - t0)
            if failures:
                log.warning("face detection works again after %d failure(s)", failures)
            failures = 0

    # -- the output loop --------------------------------------------------------------------------
    def _why_hidden(self, item: Captured, now: float) -> tuple[str | None, Pair | None, float]:
        """Why ``item`` stays hidden, or the looks that cover it; and the age of the newest look."""
        seen = self._looks.seen()
        age = seen.age(now)
        if seen.error is not None:
            return seen.error, None, age
        if seen.latest is None:
            return "starting face detection", None, age
        return *self._cover.pick(item, now, seen), age

    def _render(self, item: Captured) -> tuple[Frame, FrameInfo]:
        src = item.frame
        # A copy: the detector may be reading the captured picture right now.
        out = Frame(image=src.image.copy(), index=src.index, pts=src.pts, time_base=src.time_base,
                    captured_at=src.captured_at)
        now = time.monotonic()
        reason, looks, age = self._why_hidden(item, now)
        if reason is None and looks is not None:
            try:
                out.regions = self._cover.regions(out, looks)
                self._anonymizer(self._gaps(out))
            except Exception:  # a bug: hide the picture rather than show it half done
                log.exception("cannot cover faces in frame %d", out.index)
                reason = "internal error"
        if reason is not None:
            hide(out, reason)
            self.stats.curtained(reason)
        faces = sum(1 for r in out.regions if r.is_face)
        looked = looks[1].index if looks is not None and reason is None else None
        info = FrameInfo(out.index, out.captured_at or now, now, reason, faces, age, looked, item.segment)
        return out, info

    def run(self, stop: threading.Event | None = None, *, duration: float | None = None) -> LiveStats:
        """Show frames until ``stop``, ``duration`` seconds or the end of the source. Raises the
        capture thread's error (e.g. a :class:`DeviceError` when the camera is unplugged)."""
        stop = stop if stop is not None else threading.Event()
        with quiet_native_pools():  # the session's threads are its parallelism
            self._run(stop, duration)
        if self._error is not None:
            raise self._error
        return self.stats

    def _run(self, stop: threading.Event, duration: float | None) -> None:
        self._started = self._looks.started = time.monotonic()
        threads = [threading.Thread(target=self._capture, name="streamguard-live-capture", daemon=True),
                   threading.Thread(target=self._detect_loop, name="streamguard-live-detect", daemon=True)]
        for t in threads:
            t.start()

        def stopped() -> bool:
            return stop.is_set() or self._halt.is_set()

        last = -1
        try:
            while not stopped():
                if duration is not None and time.monotonic() - self._started >= duration:
                    break
                item = self._cover.next(last, stopped)
                if item is None:
                    if self._cover.ended():
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
            self.stats.frames_dropped = self._cover.dropped
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning("threads still running at shutdown: %s", ", ".join(alive))
            # Closing a detector another thread still runs would crash in native code.
            if self._own_detector and not threads[1].is_alive():
                self.detector.close()
