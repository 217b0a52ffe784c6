"""What a live session did: one :class:`FrameInfo` per output frame, :class:`LiveStats` for the run."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FrameInfo", "LiveStats"]


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

    def curtained(self, reason: str) -> None:
        """Count a frame hidden for ``reason`` (its details, such as a time in brackets, apart)."""
        self.curtain_frames += 1
        key = reason.split(" (")[0]
        self.curtain_reasons[key] = self.curtain_reasons.get(key, 0) + 1
