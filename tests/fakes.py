"""Neighbours faked for tests and benchmarks: wrappers around a real detector, never the thing under test."""

from __future__ import annotations

import time

import numpy as np


class StallingDetector:
    """A real detector that stops answering for ``pause`` seconds every ``every`` seconds."""

    def __init__(self, inner: object, every: float, pause: float, *, owns_inner: bool = False) -> None:
        self.inner, self.every, self.pause = inner, every, pause
        self.owns_inner = owns_inner
        self._next: float | None = None
        self.stalls = 0

    def detect(self, image: np.ndarray) -> list:
        now = time.monotonic()
        if self._next is None:
            self._next = now + self.every
        elif now >= self._next:
            time.sleep(self.pause)
            self.stalls += 1
            self._next = time.monotonic() + self.every
        return self.inner.detect(image)  # type: ignore[attr-defined]

    def close(self) -> None:
        # A shared fixture detector is closed by its fixture, not by the wrapper.
        if self.owns_inner:
            self.inner.close()  # type: ignore[attr-defined]


class SlowDetector:
    """A real detector that takes at least ``seconds`` per call, as a busy laptop's would."""

    def __init__(self, inner: object, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def detect(self, image: np.ndarray) -> list:
        t0 = time.monotonic()
        found = self.inner.detect(image)  # type: ignore[attr-defined]
        time.sleep(max(0.0, self.seconds - (time.monotonic() - t0)))
        return found

    def close(self) -> None:
        pass
