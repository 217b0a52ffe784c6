"""The only module that owns threads: source -> stages -> sink, joined by bounded queues.

A reader thread (decode), one thread per stage (detect, track, anonymize) and a
writer (encode, mux), so each step works on its frame while the step before it
works on the next: on 2 cores, the detector's tile preparation overlaps the
tracker's and the anonymizer's work (one thread for all stages left a fifth
of the CPU idle). The caller's thread only waits, so Ctrl-C reaches it at
once. Any stage that raises stops every thread: each checks a stop event around
timed ``put``/``get``, so none stays blocked on a queue nobody serves.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import Cancelled
from .threads import quiet_native_pools
from .types import Frame, Stage

__all__ = ["Pipeline", "RunStats", "Sink"]

log = logging.getLogger(__name__)

_END = object()  # end of stream; private so no frame can be mistaken for it
_POLL = 0.05  # seconds between stop checks while blocked on a queue


class Sink(Protocol):
    def write(self, frame: Frame) -> None: ...


@dataclass(slots=True)
class RunStats:
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0
    #: Busy seconds per step ("decode", each stage's class name, "encode").
    busy: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def ms_per_frame(self) -> dict[str, float]:
        n = max(1, self.frames_out)
        return {k: 1000 * v / n for k, v in self.busy.items()}


class _Stopped(Exception):
    """Raised inside a worker thread when another thread asked everyone to stop."""


class Pipeline:
    """Runs ``source`` through ``stages`` into ``sink``, each on its own thread.

    ``progress(frames_done)`` is called from the writer thread after each frame.
    ``stop`` may be set from anywhere (signal handler, web request) to cancel.
    ``queue_size`` frames per queue absorb the jitter between threads; more only costs
    memory (a 1080p RGB frame is 6.2 MB; with a thread per stage there are five queues, and
    2 frames each instead of 1 cost 10-25 MB at 1080p and no time, measured).
    """

    def __init__(
        self,
        source: Iterable[Frame],
        stages: Sequence[Stage],
        sink: Sink,
        *,
        queue_size: int = 1,
        progress: Callable[[int], Any] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.stages = list(stages)
        self.sink = sink
        self.progress = progress
        self.stop = stop or threading.Event()
        # Queue k feeds stage k; the last one feeds the writer.
        self._queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=queue_size)
                                                for _ in range(len(self.stages) + 1)]
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._busy_lock = threading.Lock()
        self.stats = RunStats()

    # -- queue helpers that never block forever ---------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _fail(self, e: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = e
        self.stop.set()

    def _add_busy(self, name: str, seconds: float) -> None:
        with self._busy_lock:  # several threads add (two stages of one class share a name)
            self.stats.busy[name] = self.stats.busy.get(name, 0.0) + seconds

    # -- the threads --------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            it = iter(self.source)
            while True:
                t0 = time.perf_counter()
                frame = next(it, _END)
                self._add_busy("decode", time.perf_counter() - t0)
                self._put(self._queues[0], frame)
                if frame is _END:
                    return
                self.stats.frames_in += 1
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)

    def _work(self, k: int) -> None:
        """Stage ``k``: frames from queue k through it to queue k + 1, then what it still
        holds at the end of the stream, then the end."""
        stage, name = self.stages[k], type(self.stages[k]).__name__
        q_in, q_out = self._queues[k], self._queues[k + 1]
        try:
            while True:
                item = self._get(q_in)
                t0 = time.perf_counter()
                # A stage that hands on many frames at once (the tracker's window at a cut or
                # at the end: 16 frames at 1080p) hands them on one by one, so the next stage
                # turns each back into a full-size picture only as it takes it.
                out = stage.flush() if item is _END else stage.process(item)
                self._add_busy(name, time.perf_counter() - t0)
                for frame in out:
                    self._put(q_out, frame)
                if item is _END:
                    self._put(q_out, _END)
                    return
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def _write(self) -> None:
        try:
            while True:
                item = self._get(self._queues[-1])
                if item is _END:
                    return
                t0 = time.perf_counter()
                self.sink.write(item)
                self._add_busy("encode", time.perf_counter() - t0)
                self.stats.frames_out += 1
                if self.progress is not None:
                    self.progress(self.stats.frames_out)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def run(self) -> RunStats:
        """Run to the end of the stream. Re-raises the first error of any thread;
        raises :class:`Cancelled` if ``stop`` was set. Every thread has ended when it returns."""
        with quiet_native_pools():
            return self._run()

    def _run(self) -> RunStats:
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=fn, name=f"streamguard-{fn.__name__.strip('_')}", daemon=True)
            for fn in (self._read, self._write)
        ]
        threads[1:1] = [threading.Thread(target=self._work, args=(k,), daemon=True,
                                         name=f"streamguard-{type(stage).__name__}")
                        for k, stage in enumerate(self.stages)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                # Short joins keep the caller's thread able to take KeyboardInterrupt.
                while t.is_alive():
                    t.join(timeout=0.1)
        except BaseException as e:
            self._fail(e)
            for t in threads:
                t.join(timeout=5)
            raise
        finally:
            self.stats.seconds = time.perf_counter() - t0
        if self._error is not None:
            raise self._error
        if self.stop.is_set():
            raise Cancelled("stopped before the end of the stream")
        return self.stats
