"""The pipeline's threads: order, overlap, end of stream, errors and cancellation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamguard.errors import Cancelled
from streamguard.pipeline import Pipeline
from streamguard.types import Frame, Stage


def _frames(n: int) -> list[Frame]:
    return [Frame(image=np.zeros((4, 4, 3), np.uint8), index=i) for i in range(n)]


class _Sink:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)


class _Slow(Stage):
    """Sleeps per frame and notes which thread ran it and when."""

    def __init__(self, name: str, delay: float = 0.01, fail_at: int | None = None) -> None:
        self.name, self.delay, self.fail_at = name, delay, fail_at
        self.threads: set[int] = set()
        self.busy: list[tuple[float, float]] = []

    def __call__(self, frame: Frame) -> Frame:
        if frame.index == self.fail_at:
            raise RuntimeError(f"{self.name} broke on frame {frame.index}")
        self.threads.add(threading.get_ident())
        t0 = time.perf_counter()
        time.sleep(self.delay)
        self.busy.append((t0, time.perf_counter()))
        frame.notes.append(self.name)
        return frame


class _Holder(Stage):
    """Holds every frame until the end of the stream, like the tracker's window at a cut."""

    def __init__(self) -> None:
        self.held: list[Frame] = []

    def process(self, frame: Frame) -> list[Frame]:
        self.held.append(frame)
        return []

    def flush(self) -> list[Frame]:
        out, self.held = self.held, []
        return out


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamguard-")]


def test_each_stage_on_its_own_thread_in_order() -> None:
    a, b = _Slow("a"), _Slow("b")
    sink = _Sink()
    stats = Pipeline(_frames(30), [a, _Holder(), b], sink).run()
    assert [f.index for f in sink.frames] == list(range(30))
    assert all(f.notes == ["a", "b"] for f in sink.frames)
    assert stats.frames_in == stats.frames_out == 30
    assert len(a.threads) == len(b.threads) == 1 and a.threads != b.threads
    assert not _pipeline_threads()


def test_stages_overlap() -> None:
    """Two stages of 20 ms per frame take about 20 ms per frame together, not 40."""
    a, b = _Slow("a", 0.02), _Slow("b", 0.02)
    stats = Pipeline(_frames(25), [a, b], _Sink()).run()
    overlapping = sum(1 for s, e in a.busy for s2, e2 in b.busy if s < e2 and s2 < e)
    assert overlapping >= 10
    assert stats.seconds < 25 * 0.04 * 0.8


def test_stage_error_stops_every_thread() -> None:
    sink = _Sink()
    with pytest.raises(RuntimeError, match="b broke on frame 7"):
        Pipeline(_frames(50), [_Slow("a"), _Slow("b", fail_at=7)], sink).run()
    assert len(sink.frames) <= 7
    assert not _pipeline_threads()


def test_stop_cancels_and_every_thread_ends() -> None:
    stop = threading.Event()
    sink = _Sink()

    def progress(done: int) -> None:
        if done == 5:
            stop.set()

    with pytest.raises(Cancelled):
        Pipeline(_frames(200), [_Slow("a"), _Holder(), _Slow("b")], sink, progress=progress, stop=stop).run()
    assert not _pipeline_threads()
