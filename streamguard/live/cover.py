"""How a live frame is covered: shown at once (:class:`ShowNewest`) or once looked at (:class:`WaitForLook`).

Covering what changed (the default, :class:`ShowNewest`): each frame is shown at once, covered
by the faces the last look found (where it saw them, and where they were heading) and by every
part of the picture that changed since the frame that look ran on, blurred whole
(:mod:`streamguard.motion`). A face that walks or pops into view changes the picture where it
is, so it is covered from its first frame, before any look has seen it; a face that did not
move is where the look saw it. An older look costs a wider cover of whatever moves, never an
exposed face.

Waiting for a look (``wait=True``, :class:`WaitForLook`): each frame goes into a short line, and
the output loop shows it only once the detector has looked at a frame captured at or after it;
the frame is then covered by that newer look's faces (a face that appeared is found there)
together with the older look's tracks predicted to it, and the straight path between the two
for a face seen in both. Only faces are blurred, at the price of latency: one to two detection
times. No frame is shown that the detector has not seen (or a newer one): the path for a
recording or a virtual camera that must not show a face the detector never looked for.

The session picks one at construction; both answer the same questions: which frame to show
next, what a look keeps for the frames it covers, and for a frame about to be shown either why
it stays hidden or the regions that cover it.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

import numpy as np

from ..motion import block_means, changed_boxes
from ..track import Tracker, to_near_edges
from ..types import Box, Frame, Region, RegionSource
from .handoff import POLL, Captured, Look, Looks, Newest, Seen

__all__ = ["MAX_WAIT", "Cover", "ShowNewest", "WaitForLook"]

#: Seconds a frame may wait for a look while the detector is working but slow (then curtained).
MAX_WAIT = 1.0
#: Seconds a frame may wait beyond its look before a newer, looked-at frame is shown instead.
_SHOW_LATE = 0.1

#: What a region is made of before it is clipped to the frame: box, source, track id, score.
_Box = tuple[Box, RegionSource, int | None, float]
#: The looks that cover a frame: the last one before it (or None) and the one it is covered by.
Pair = tuple[Look | None, Look]

_CHANGED = "picture changed, detecting faces"


class Cover(ABC):
    """One way of covering live frames (see module docs). The capture thread puts each frame in
    ``slot`` and the detector publishes on ``looks``; ``fps`` is the camera's."""

    def __init__(self, slot: Newest, looks: Looks, *, max_detect_age: float, fps: float) -> None:
        self.slot = slot
        self.looks = looks
        self.max_detect_age = max_detect_age
        self.fps = fps

    # -- capture thread ---------------------------------------------------------------------------
    def captured(self, item: Captured) -> None:  # noqa: B027 - a no-op unless overridden
        """``item`` was captured (and put in the slot)."""

    def capture_ended(self) -> None:  # noqa: B027 - a no-op unless overridden
        """No frame will be captured any more."""

    # -- detector thread --------------------------------------------------------------------------
    @abstractmethod
    def keep(self, tracker: Tracker, image: np.ndarray) -> tuple[Tracker | None, np.ndarray | None]:
        """What a look keeps for the frames it will cover: a copy of ``tracker`` and/or the
        :func:`~streamguard.motion.block_means` of the looked-at ``image``."""

    # -- output loop ------------------------------------------------------------------------------
    @abstractmethod
    def next(self, last: int, stop: Callable[[], bool]) -> Captured | None:
        """The next frame to show (after the one with index ``last``), when it may be shown;
        None when there is none yet (waits up to a poll interval) or the capture ended."""

    @abstractmethod
    def ended(self) -> bool:
        """Capture ended and every frame it left has been shown or dropped."""

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Captured frames never shown."""

    @abstractmethod
    def pick(self, item: Captured, now: float, seen: Seen) -> tuple[str | None, Pair | None]:
        """Why ``item`` stays hidden at ``now``, or the looks that cover it. ``seen`` holds a look
        and no failure."""

    @abstractmethod
    def _boxes(self, frame: Frame, before: Look | None, after: Look) -> list[_Box]: ...

    def regions(self, frame: Frame, looks: Pair) -> tuple[Region, ...]:
        """The regions that cover ``frame`` (captured at ``frame.captured_at``)."""
        bounds = Box(0, 0, frame.width, frame.height)
        return tuple(Region(box, source, tid, score) for box, source, tid, score in self._boxes(frame, *looks)
                     if box.intersection(bounds) > 0)


class ShowNewest(Cover):
    """Shows the newest frame at once: faces of the last look, where they were heading, and
    whatever changed since that look (see module docs)."""

    def keep(self, tracker: Tracker, image: np.ndarray) -> tuple[Tracker | None, np.ndarray | None]:
        return None, block_means(image)

    def next(self, last: int, stop: Callable[[], bool]) -> Captured | None:
        return self.slot.newer(last, POLL, take=True)

    def ended(self) -> bool:
        return self.slot.closed

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    def pick(self, item: Captured, now: float, seen: Seen) -> tuple[str | None, Pair | None]:
        look = seen.latest
        assert look is not None and item.frame.captured_at is not None
        age = seen.age(now)
        if age > self.max_detect_age:
            return f"face detection stalled ({age * 1000:.0f} ms)", None
        if look.segment != item.segment:
            return _CHANGED, None
        if item.frame.captured_at - look.time > 2 * self.max_detect_age:
            # Results arrive, but each is too old to extrapolate from: detection is too slow.
            return "face detection too slow for this picture", None
        return None, (None, look)

    def _boxes(self, frame: Frame, before: Look | None, after: Look) -> list[_Box]:
        """The faces as the last look saw them, where they were heading, and every part of the
        picture that changed since that look, covered whole. A face that came into view (or
        moved) since is unknown to the look but changed the picture where it is now; a face
        that did not move is where the look saw it. So the look's age costs a wider cover of
        what moves, never an exposed face, and coasting boxes need not grow past the look."""
        assert frame.captured_at is not None and after.cells is not None
        dt = max(0.0, frame.captured_at - after.time)
        boxes: list[_Box] = []
        for trk in after.tracks:
            boxes.append((trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score))
            vx, vy = trk.velocity
            # Shifted less than the head's own margin around the face, the cover already holds it.
            if math.hypot(vx * dt, vy * dt) > 0.1 * max(trk.box.width, trk.box.height):
                boxes.append((trk.box.shifted(vx * dt, vy * dt), "prediction", trk.id, trk.score))
        moved = changed_boxes(after.cells, block_means(frame.image), width=frame.width, height=frame.height)
        boxes += [(box, "motion", None, 1.0) for box in moved]
        return boxes


class WaitForLook(Cover):
    """Shows each frame once a look at it or a newer frame is in: faces only, between two looks
    (see module docs)."""

    def __init__(self, slot: Newest, looks: Looks, *, max_detect_age: float, fps: float) -> None:
        super().__init__(slot, looks, max_detect_age=max_detect_age, fps=fps)
        # The frames waiting for a look: as many as can wait ``MAX_WAIT``; older ones are dropped
        # (they would be curtained anyway).
        self._line: deque[Captured] = deque()
        self._cond = threading.Condition()
        self._max = max(2, math.ceil(max(MAX_WAIT, max_detect_age) * max(fps, 1.0)) + 2)
        self._closed = False
        self._dropped = 0

    def captured(self, item: Captured) -> None:
        with self._cond:
            if len(self._line) >= self._max:
                self._line.popleft()
                self._dropped += 1
            self._line.append(item)
            self._cond.notify_all()

    def capture_ended(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def keep(self, tracker: Tracker, image: np.ndarray) -> tuple[Tracker | None, np.ndarray | None]:
        return copy.deepcopy(tracker), None

    def next(self, last: int, stop: Callable[[], bool]) -> Captured | None:
        item = self._next_in_line()
        if item is not None:
            self._await_look(item, stop)
        return item

    def ended(self) -> bool:
        return self.slot.closed and self._closed

    @property
    def dropped(self) -> int:
        return self._dropped

    def _next_in_line(self) -> Captured | None:
        """The oldest frame waiting to be shown (waits up to a poll interval); when the output
        is behind (slow sinks), the newest frame a look covers instead: latency, not backlog."""
        looked, look_takes = self.looks.pace()
        # Frames normally wait one to two detection times for their look.
        budget = max(_SHOW_LATE, 2.5 * look_takes)
        now = time.monotonic()
        with self._cond:
            if not self._line and not self._closed:
                self._cond.wait(POLL)
            while (looked is not None and len(self._line) >= 2
                   and (self._line[1].frame.captured_at or 0.0) <= looked
                   and (self._line[0].frame.captured_at or 0.0) < now - budget):
                self._line.popleft()
                self._dropped += 1
            return self._line.popleft() if self._line else None

    def _await_look(self, item: Captured, stop: Callable[[], bool]) -> None:
        """Wait until the detector has looked at this frame or a newer one, or it failed, or it
        stalled (nothing for ``max_detect_age``), or the frame waited ``MAX_WAIT``: then it is
        curtained. A slow but working detector costs latency here, not a hidden picture."""
        captured = item.frame.captured_at
        assert captured is not None
        self.looks.wait_for(captured, deadline=captured + max(MAX_WAIT, self.max_detect_age),
                            max_age=self.max_detect_age, stop=stop)

    def pick(self, item: Captured, now: float, seen: Seen) -> tuple[str | None, Pair | None]:
        assert item.frame.captured_at is not None
        before, after = seen.around(item.frame.captured_at)
        if after is None:  # no look at this frame or a newer one came in time
            return f"face detection stalled ({(now - item.frame.captured_at) * 1000:.0f} ms)", None
        if after.segment != item.segment:
            return _CHANGED, None
        if before is not None and before.segment != item.segment:
            before = None
        return None, (before, after)

    def _boxes(self, frame: Frame, before: Look | None, after: Look) -> list[_Box]:
        """The frame lies between two looks (or before the first of its segment)."""
        assert frame.captured_at is not None
        # A look newer than this frame: its faces as it saw them (never ask a tracker to rewind).
        assert after.tracker is not None, "waiting keeps each look's tracker"
        new = after.tracker.predict(max(frame.captured_at, after.time))
        prior = before.tracker if before is not None else None
        old = prior.predict(frame.captured_at) if prior is not None else []
        boxes: list[_Box] = [(trk.box, "detection" if trk.matched else "prediction", trk.id, trk.score)
                             for trk in new]
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
