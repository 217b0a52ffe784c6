"""Live mode: a camera (or a video file standing in for one) anonymized in real time.

::

    capture thread --newest frame--> output loop (caller's thread) --> sinks
                         \\                  ^  (preview, virtual camera, recorder)
                          `-> detector thread: tracker state as of its last detection

Latency, not backlog: the capture thread keeps only the newest frame, so when the
output is slower than the camera, stale frames are dropped (and counted), never
queued. The detector runs in its own thread on the newest frame ("a look"): a few
looks a second, while the camera runs at 30 fps.

Covering what changed (the default): each frame is shown at once, covered by the faces
the last look found (where it saw them, and where they were heading) and by every part
of the picture that changed since the frame that look ran on, blurred whole
(:mod:`streamguard.motion`). A face that walks or pops into view changes the picture where it is,
so it is covered from its first frame, before any look has seen it; a face that did
not move is where the look saw it. An older look costs a wider cover of whatever
moves, never an exposed face.

Waiting for a look (``wait=True``): each frame goes into a short line, and the output
loop shows it only once the detector has looked at a frame captured at or after it;
the frame is then covered by that newer look's faces (a face that appeared is found
there) together with the older look's tracks predicted to it, and the straight path
between the two for a face seen in both. Only faces are blurred, at the price of
latency: one to two detection times.

Fails closed: until the first detection result exists, whenever the detector has
delivered nothing for longer than ``max_detect_age``, when it raised, or when the
picture jumped (scene cut, a looped file restarting) and no detection of the new
picture exists yet, the whole output frame is hidden behind a privacy curtain
with a notice. Sinks refuse frames the session has not marked protected.

The sources are in :mod:`.cameras`, the sinks in :mod:`.sinks`.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from ..anonymize import Anonymizer, curtain
from ..config import Config, DetectConfig
from ..detect import FaceDetector, SweepDetectStage, TiledDetector, create_detector, detect_upright
from ..motion import block_means, changed_boxes
from ..scenecut import SceneCutDetector
from ..track import Track, Tracker, to_near_edges
from ..types import Box, Frame, Region, RegionSource
from .cameras import LiveSource

__all__ = [
    "LIVE_DETECT",
    "MAX_DETECT_AGE",
    "FrameInfo",
    "LiveStats",
    "LiveSession",
    "live_config",
    "create_live_detector",
    "draw_notice",
]

log = logging.getLogger(__name__)

#: Detector settings for live use. The tiled "fast" preset still finds faces down to 32 px at
#: up to 1080p (BlazeFace on the whole frame finds nothing under ~1/10 of the frame height) and is
#: the only preset that keeps up: on the 2-core development machine (shared, so on the slow side)
#: it took 55-95 ms per 640x480 frame and 140-210 ms per 1280x720 frame (alone; 2-3 times that
#: in the session), within ``MAX_DETECT_AGE``; "balanced" took 2-3 times that again, which would
#: keep the curtain down much of the time.
LIVE_DETECT = DetectConfig(preset="fast")
#: Seconds after which a tile where nothing moved is looked at again (see :mod:`streamguard.detect.sweep`).
LIVE_RESCAN = 0.5
#: Seconds without a new detection result after which the picture is curtained. Not less: in
#: the session (sharing two cores with capture, output and a recorder) a 1280x720 look took
#: 340-640 ms, and the motion cover keeps a frame safe however old its look is; a longer pause
#: means a detector that hangs or starves, and then the picture goes.
MAX_DETECT_AGE = 1.0
#: CPU priority (Linux nice increment) of the detector's threads. On a busy CPU the capture and
#: output threads, a few ms per frame, go first, so a slow detector costs detection rate (and, past
#: ``max_detect_age``, curtained frames), not output frame rate or latency. Not more (5 leaves the
#: detector a third of a normal thread's share), since a meeting app competes for the CPU too and a
#: starved detector means a curtained picture.
DETECT_NICE = 5
#: Live frames carry their capture time in this time base (for the recorder in :mod:`.sinks`).
TIME_BASE = Fraction(1, 90_000)
_POLL = 0.05  # seconds between stop checks while waiting
#: Seconds a frame may wait beyond its look before a newer, looked-at frame is shown instead.
_SHOW_LATE = 0.1
#: Seconds a frame may wait for a look while the detector is working but slow (then curtained).
MAX_WAIT = 1.0
_JOIN = 5.0  # seconds to wait for a thread at shutdown (a real detection takes < 0.5 s)


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
    """What one detection found: never mutated once published."""

    #: Waiting: a copy of the tracker as of the detected frame, to predict frames between looks
    #: (not waiting, only ``tracks`` and ``cells`` are used, and the copy is not made).
    tracker: Tracker | None
    time: float  # capture time of the detected frame
    index: int
    segment: int
    finished_at: float
    #: The tracks as of the detected frame.
    tracks: tuple[Track, ...] = ()
    #: :func:`~streamguard.motion.block_means` of the detected frame (without waiting: what
    #: changed since is covered whole), else None.
    cells: np.ndarray | None = None


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
    """``create_detector(config)``, built on a lower-priority thread, so whatever native threads
    loading the models starts inherit that priority (the calls themselves run on the detect
    loop's threads, which lower their own)."""
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
    :func:`create_live_detector` (closed at the end); ``on_frame(frame, info)`` is called
    after the sinks for every output frame.
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
        self._anonymizer = Anonymizer(self.config.anonymize)
        self._every = self.config.track.detect_every
        if self._every > 1 and (self._every - 1) / max(source.fps, 1.0) >= max_detect_age:
            log.warning("--detect-every %d at %g fps leaves gaps longer than the %g s detection age limit: "
                        "the picture will be curtained between detections", self._every, source.fps,
                        max_detect_age)
        self._slot = _Newest()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        #: Hold frames until a detection has looked at them or at a newer one (see module docs).
        self.wait = wait
        self._published = threading.Condition(self._lock)
        self._results: deque[_Result] = deque(maxlen=32)
        # The frames waiting for a look: as many as can wait ``MAX_WAIT``; older ones are dropped
        # (they would be curtained anyway).
        self._line: deque[_Captured] = deque()
        self._line_cond = threading.Condition()
        self._line_max = max(2, math.ceil(max(MAX_WAIT, max_detect_age) * max(source.fps, 1.0)) + 2)
        self._line_closed = False
        self._line_dropped = 0
        self._result: _Result | None = None
        self._detect_error: str | None = None
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
                captured = _Captured(frame, segment)
                self._slot.put(captured)
                if self.wait:
                    with self._line_cond:
                        if len(self._line) >= self._line_max:
                            self._line.popleft()
                            self._line_dropped += 1
                        self._line.append(captured)
                        self._line_cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)
        finally:
            self._slot.close()
            with self._line_cond:
                self._line_closed = True
                self._line_cond.notify_all()

    def _detect_loop(self) -> None:
        try:
            self._look()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, as capture's
            self._fail(e)

    def _look(self) -> None:
        _lower_priority()  # its Python part (tiling, tracking) too
        tracker = Tracker(self.config.track.hold)
        # A tiled detector runs its whole sweep on every look (there is no look-ahead to cover a
        # face found late), minus the tiles where nothing moved, plus one crop per known face.
        sweep = (SweepDetectStage(self.detector, fps=self.source.fps or 30.0, period=0.0, rescan=LIVE_RESCAN)
                 if isinstance(self.detector, TiledDetector) else None)
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
                if sweep is not None:
                    found = sweep.detect(frame.image, frame.rotation, frame.captured_at)
                else:
                    found = detect_upright(self.detector, frame.image, frame.rotation)
                done = time.monotonic()
                if item.segment != segment:
                    tracker.reset()
                    segment = item.segment
                tracks = tuple(tracker.update(found, frame.captured_at))
                kept = copy.deepcopy(tracker) if self.wait else None
                cells = None if self.wait else block_means(frame.image)
                result = _Result(kept, frame.captured_at, frame.index, item.segment, done, tracks, cells)
            except Exception as e:  # noqa: BLE001 - fail closed (curtain) and keep trying
                # Published before it is logged: a log handler may block on its stream, and the
                # frames shown meanwhile must already say why the picture is hidden.
                with self._lock:
                    self._detect_error = f"face detection failed ({type(e).__name__})"
                    self._result = None
                    self._results.clear()
                    self.stats.detect_errors += 1
                    self._published.notify_all()
                failures += 1
                if failures == 1:
                    log.error("face detection failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
                self._halt.wait(min(1.0, 0.1 * failures))
                continue
            with self._lock:
                self._result = result
                self._results.append(result)
                self._detect_error = None
                self.stats.detections += 1
                self.stats.detect_seconds += done - t0
                self._published.notify_all()
            if failures:
                log.warning("face detection works again after %d failure(s)", failures)
            failures = 0

    # -- the output loop --------------------------------------------------------------------------
    def _looks(self, captured_at: float) -> tuple[_Result | None, _Result | None]:
        """The last look before ``captured_at`` and the first at or after it (lock held)."""
        before = after = None
        for r in self._results:
            if r.time < captured_at:
                before = r
            elif after is None:
                after = r
        return before, after

    def _await_look(self, item: _Captured, stop: threading.Event) -> None:
        """Wait until the detector has looked at this frame or a newer one, or it failed, or it
        stalled (nothing for ``max_detect_age``), or the frame waited ``MAX_WAIT``: then it is
        curtained. A slow but working detector costs latency here, not a hidden picture."""
        captured = item.frame.captured_at
        assert captured is not None
        deadline = captured + max(MAX_WAIT, self.max_detect_age)
        with self._published:
            while not (stop.is_set() or self._halt.is_set() or self._detect_error is not None
                       or self._looks(captured)[1] is not None):
                now = time.monotonic()
                last = self._result.finished_at if self._result is not None else max(self._started, captured)
                if now >= deadline or now - last > self.max_detect_age:
                    return
                self._published.wait(_POLL / 5)

    def _curtain_reason(self, item: _Captured, now: float
                        ) -> tuple[str | None, tuple[_Result | None, _Result] | None, float | None]:
        with self._lock:
            result, error = self._result, self._detect_error
            before, after = self._looks(item.frame.captured_at or now) if self.wait else (None, result)
        age = now - (result.finished_at if result is not None else self._started)
        if error is not None:
            return error, None, age
        if result is None:
            return "starting face detection", None, age
        if after is None:  # waiting: no look at this frame or a newer one came in time
            assert item.frame.captured_at is not None
            return f"face detection stalled ({(now - item.frame.captured_at) * 1000:.0f} ms)", None, age
        if age > self.max_detect_age and not self.wait:
            return f"face detection stalled ({age * 1000:.0f} ms)", None, age
        if after.segment != item.segment:
            return "picture changed, detecting faces", None, age
        assert item.frame.captured_at is not None
        if not self.wait and item.frame.captured_at - after.time > 2 * self.max_detect_age:
            # Results arrive, but each is too old to extrapolate from: detection is too slow.
            return "face detection too slow for this picture", None, age
        if before is not None and before.segment != item.segment:
            before = None
        return None, (before, after), age

    def _regions(self, frame: Frame, looks: tuple[_Result | None, _Result]) -> tuple[Region, ...]:
        assert frame.captured_at is not None
        before, after = looks
        if after.cells is not None:
            boxes = self._since_look(frame, after)
        else:
            boxes = self._between_looks(frame, before, after)
        bounds = Box(0, 0, frame.width, frame.height)
        return tuple(Region(box, source, tid, score) for box, source, tid, score in boxes
                     if box.intersection(bounds) > 0)

    def _since_look(self, frame: Frame, look: _Result) -> list[tuple[Box, RegionSource, int | None, float]]:
        """Not waiting: the faces as the last look saw them, where they were heading, and every
        part of the picture that changed since that look, covered whole. A face that came into
        view (or moved) since is unknown to the look but changed the picture where it is now; a
        face that did not move is where the look saw it. So the look's age costs a wider cover of
        what moves, never an exposed face, and coasting boxes need not grow past the look."""
        assert frame.captured_at is not None
        dt = max(0.0, frame.captured_at - look.time)
        boxes: list[tuple[Box, RegionSource, int | None, float]] = []
        for trk in look.tracks:
            boxes.append((trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score))
            vx, vy = trk.velocity
            # Shifted less than the head's own margin around the face, the cover already holds it.
            if math.hypot(vx * dt, vy * dt) > 0.1 * max(trk.box.width, trk.box.height):
                boxes.append((trk.box.shifted(vx * dt, vy * dt), "prediction", trk.id, trk.score))
        assert look.cells is not None
        moved = changed_boxes(look.cells, block_means(frame.image), width=frame.width, height=frame.height)
        boxes += [(box, "motion", None, 1.0) for box in moved]
        return boxes

    def _between_looks(self, frame: Frame, before: _Result | None, after: _Result
                       ) -> list[tuple[Box, RegionSource, int | None, float]]:
        """Waiting: the frame lies between two looks (or before the first of its segment)."""
        assert frame.captured_at is not None
        # A look newer than this frame: its faces as it saw them (never ask a tracker to rewind).
        assert after.tracker is not None, "waiting sessions keep each look's tracker"
        new = after.tracker.predict(max(frame.captured_at, after.time))
        prior = before.tracker if before is not None else None
        old = prior.predict(frame.captured_at) if prior is not None else []
        boxes: list[tuple[Box, RegionSource, int | None, float]] = [
            (trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score) for trk in new]
        boxes += [(trk.box, "prediction", trk.id, trk.score) for trk in old]
        then = {trk.id: trk.box for trk in old}
        early = max(0.0, after.time - frame.captured_at)
        for trk in new:
            a = then.get(trk.id)
            if a is not None and before is not None and after.time > before.time:
                # A face in both looks: also where it was on the way between them.
                k = (frame.captured_at - before.time) / (after.time - before.time)
                boxes.append((a.lerp(trk.box, k), "prediction", trk.id, trk.score))
            elif a is None and early > 0:
                # First seen in a later frame: it may have come from further away (as file mode's
                # backfill: grown with the time between, and out to a near frame edge).
                grown = to_near_edges(trk.box, frame.width, frame.height).grown(0.1 + early)
                boxes.append((grown, "backfill", trk.id, trk.score))
        return boxes

    def _render(self, item: _Captured) -> tuple[Frame, FrameInfo]:
        src = item.frame
        # A copy: the detector may be reading the captured picture right now.
        out = Frame(image=src.image.copy(), index=src.index, pts=src.pts, time_base=src.time_base,
                    captured_at=src.captured_at)
        now = time.monotonic()
        reason, looks, age = self._curtain_reason(item, now)
        result = looks[1] if looks is not None else None
        if reason is None and looks is not None:
            try:
                out.regions = self._regions(out, looks)
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
        faces = sum(1 for r in out.regions if r.is_face)
        info = FrameInfo(out.index, out.captured_at or now, now, reason, faces, age,
                         result.index if result is not None and reason is None else None, item.segment)
        return out, info

    def _next_in_line(self) -> _Captured | None:
        """The oldest frame waiting to be shown (waits up to a poll interval); when the output
        is behind (slow sinks), the newest frame a look covers instead: latency, not backlog."""
        with self._lock:
            looked = self._results[-1].time if self._results else None
            # Frames normally wait one to two detection times for their look.
            budget = max(_SHOW_LATE, 2.5 * self.stats.detect_ms / 1000)
        now = time.monotonic()
        with self._line_cond:
            if not self._line and not self._line_closed:
                self._line_cond.wait(_POLL)
            while (looked is not None and len(self._line) >= 2
                   and (self._line[1].frame.captured_at or 0.0) <= looked
                   and (self._line[0].frame.captured_at or 0.0) < now - budget):
                self._line.popleft()
                self._line_dropped += 1
            return self._line.popleft() if self._line else None

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
                item = self._next_in_line() if self.wait else self._slot.newer(last, _POLL, take=True)
                if item is None:
                    if self._slot.closed and (not self.wait or self._line_closed):
                        break
                    continue
                last = item.frame.index
                if self.wait:
                    self._await_look(item, stop)
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
            self.stats.frames_dropped = self._line_dropped if self.wait else self._slot.dropped
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning("threads still running at shutdown: %s", ", ".join(alive))
            # Closing a detector another thread still runs would crash in native code.
            if self._own_detector and not threads[1].is_alive():
                self.detector.close()
        if self._error is not None:
            raise self._error
        return self.stats
