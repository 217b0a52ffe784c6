"""What the threads of a live session hand each other.

The capture thread puts every frame into a :class:`Newest`, a one-frame mailbox: a slow
reader skips stale frames instead of queueing them. The detector thread takes the newest
frame from it, looks, and publishes the :class:`Look` (or why it failed) on :class:`Looks`,
which the output loop reads as a consistent :class:`Seen` copy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..track import Track, Tracker
from ..types import Frame
from .stats import LiveStats

__all__ = ["POLL", "Captured", "Newest", "Look", "Looks", "Seen"]

POLL = 0.05  # seconds between stop checks while waiting


@dataclass(frozen=True, slots=True)
class Captured:
    frame: Frame
    #: Counts the picture's jumps (scene cuts, a looped file restarting): a look at another
    #: segment says nothing about this frame.
    segment: int


@dataclass(frozen=True, slots=True)
class Look:
    """What one detection found: never mutated once published."""

    time: float  # capture time of the detected frame
    index: int
    segment: int
    finished_at: float
    #: The tracks as of the detected frame.
    tracks: tuple[Track, ...] = ()
    #: Waiting: a copy of the tracker as of the detected frame, to predict frames between looks.
    tracker: Tracker | None = None
    #: Not waiting: :func:`~streamguard.motion.block_means` of the detected frame (what changed
    #: since is covered whole).
    cells: np.ndarray | None = None


class Newest:
    """A one-frame mailbox: ``put`` replaces, so a slow reader skips stale frames instead of queueing them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Captured | None = None
        self._taken = True
        self.closed = False
        self.dropped = 0

    def put(self, item: Captured) -> None:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._item, self._taken = item, False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def newer(self, after: int, timeout: float, *, take: bool = False) -> Captured | None:
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


def _around(looks: tuple[Look, ...] | deque[Look], t: float) -> tuple[Look | None, Look | None]:
    """The last look at a frame captured before ``t`` and the first at or after it."""
    before = after = None
    for look in looks:
        if look.time < t:
            before = look
        elif after is None:
            after = look
    return before, after


@dataclass(frozen=True, slots=True)
class Seen:
    """The published looks as the output loop found them."""

    #: The recent looks, the newest last; none while the detector fails.
    looks: tuple[Look, ...]
    #: Why the last look failed, None when it worked.
    error: str | None
    #: When the session started: the age of "no look yet".
    started: float

    @property
    def latest(self) -> Look | None:
        return self.looks[-1] if self.looks else None

    def age(self, now: float) -> float:
        """Seconds since the detector last delivered a look (since the start if it never did)."""
        latest = self.latest
        return now - (latest.finished_at if latest is not None else self.started)

    def around(self, t: float) -> tuple[Look | None, Look | None]:
        """The last look at a frame captured before ``t`` and the first at or after it."""
        return _around(self.looks, t)


class Looks:
    """The detector's results, published under one lock: its recent looks, or why its last look
    failed (which drops them all). Counts the looks and failures in ``stats``."""

    def __init__(self, stats: LiveStats, keep: int = 32) -> None:
        self.stats = stats
        #: When the session started (set by it).
        self.started = 0.0
        self._cond = threading.Condition()
        self._looks: deque[Look] = deque(maxlen=keep)
        self._error: str | None = None

    def publish(self, look: Look, seconds: float) -> None:
        """A look that took ``seconds`` worked."""
        with self._cond:
            self._looks.append(look)
            self._error = None
            self.stats.detections += 1
            self.stats.detect_seconds += seconds
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        """A look failed: until one works, no frame is covered by an older one."""
        with self._cond:
            self._error = reason
            self._looks.clear()
            self.stats.detect_errors += 1
            self._cond.notify_all()

    def seen(self) -> Seen:
        with self._cond:
            return Seen(tuple(self._looks), self._error, self.started)

    def pace(self) -> tuple[float | None, float]:
        """The capture time of the newest look (None: none yet) and the seconds a look takes."""
        with self._cond:
            newest = self._looks[-1].time if self._looks else None
            return newest, self.stats.detect_ms / 1000

    def wait_for(self, t: float, *, deadline: float, max_age: float, stop: Callable[[], bool]) -> None:
        """Wait until a look at a frame captured at or after ``t`` is published, a look fails or
        ``stop()``; or give up at ``deadline``, or once nothing was published for ``max_age``."""
        with self._cond:
            while not (stop() or self._error is not None or _around(self._looks, t)[1] is not None):
                now = time.monotonic()
                last = self._looks[-1].finished_at if self._looks else max(self.started, t)
                if now >= deadline or now - last > max_age:
                    return
                self._cond.wait(POLL / 5)
