"""Tasks, and what a worker does with one: a whole file, one chunk of a video, or a join.

:func:`run_task` runs a task in the calling process, whichever executor sent it there (a pool
worker, a Ray worker, a thread of the driver), and turns every expected failure into a
:class:`TaskOutcome`. Every task is idempotent: outputs are written under a temporary name and
renamed when complete, so a task that is run again after its worker died replaces, never
duplicates, what an earlier attempt may have left. Paths go to workers as they are: with Ray on
several machines, inputs and outputs must be on a folder every node sees under the same path
(a shared file system).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ..api import ImageResult, anonymize_file
from ..config import Config, DetectConfig
from ..detect import FaceDetector, TiledDetector, create_detector
from ..errors import Cancelled, ChunkError, OutputError, StreamguardError
from .chunks import ChunkPlan, ChunkSpec, anonymize_chunk
from .join import join_chunks

__all__ = [
    "KILL_ONCE_ENV",
    "WorkerOptions",
    "FileTask",
    "ChunkTask",
    "JoinTask",
    "Task",
    "TaskOutcome",
    "Channel",
    "StopEvent",
    "Detectors",
    "run_task",
    "init_pool_worker",
    "claim_dir",
]

log = logging.getLogger(__name__)

#: Test-only fault injection: a chunk task whose worker finds this variable set (a marker file
#: path) and the marker absent creates the marker and kills its own process (SIGKILL) halfway
#: through the chunk, as a crashed or preempted node would.
KILL_ONCE_ENV = "STREAMGUARD_TEST_KILL_ONCE"


# -- tasks ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    #: Decoder, encoder and detector threads per worker; 0 leaves libav's and the
    #: detector's own choice (which assumes the worker has the machine to itself).
    threads: int = 0
    #: Pin each worker process to one CPU core of its own (benchmarks: a worker held to one core).
    pin: bool = False
    #: Folder (on each node) where worker processes claim their core when ``pin``.
    claim_dir: str | None = None


@dataclass(frozen=True, slots=True)
class FileTask:
    key: str
    input: Path
    output: Path
    overwrite: bool


@dataclass(frozen=True, slots=True)
class ChunkTask:
    key: str
    input: Path
    spec: ChunkSpec
    chunk_path: Path


@dataclass(frozen=True, slots=True)
class JoinTask:
    key: str
    input: Path
    plan: ChunkPlan
    chunk_paths: tuple[Path, ...]
    output: Path
    overwrite: bool


Task = FileTask | ChunkTask | JoinTask
Status = Literal["done", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    key: str
    status: Status
    frames: int = 0
    damaged: int = 0
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    #: Warnings the task logged in its worker, for the driver to print (workers print nothing).
    warnings: tuple[str, ...] = ()
    #: Which worker process ran it (host:pid) and the CPU seconds its process spent on it.
    worker: str = ""
    cpu_seconds: float = 0.0
    #: The file's finished chunks cannot be used (:class:`~streamguard.errors.ChunkError`): the
    #: driver removes them rather than keep them for a resume that would fail the same way.
    stale: bool = False



# -- the worker side -------------------------------------------------------------------------------


class Channel(Protocol):
    """Where a task sends ``(key, frames written, attempt started)``: a multiprocessing queue, the
    driver's progress record, or a Ray actor's proxy."""

    def put(self, item: tuple[str, int, bool]) -> None: ...


class StopEvent(Protocol):
    """A flag set from elsewhere (a :class:`threading.Event`, a multiprocessing one)."""

    def is_set(self) -> bool: ...


_CHANNEL: Channel | None = None  # where a pool worker sends progress (a multiprocessing queue)
_STOP: StopEvent | None = None  # the pool's shared stop event
_SETUP_DONE = False


class Detectors:
    """Detectors kept across tasks, one per detection options and thread count (building one
    takes ~0.5 s)."""

    def __init__(self) -> None:
        self._made: dict[tuple[DetectConfig, int], FaceDetector] = {}

    def get(self, config: Config, threads: int) -> FaceDetector:
        key = (config.detect, threads)
        if key not in self._made:
            if threads:
                d = config.detect
                self._made[key] = TiledDetector(
                    d.preset, min_face=d.min_face, threshold=d.threshold, workers=threads
                )
            else:
                self._made[key] = create_detector(config.detect)
        return self._made[key]

    def close(self) -> None:
        for d in self._made.values():
            with contextlib.suppress(Exception):
                d.close()
        self._made.clear()


_WORKER_DETECTORS: Detectors | None = None


def _worker_detectors() -> Detectors:
    """The detectors of this worker process, closed when it exits."""
    global _WORKER_DETECTORS
    if _WORKER_DETECTORS is None:
        _WORKER_DETECTORS = Detectors()
        atexit.register(_WORKER_DETECTORS.close)
    return _WORKER_DETECTORS


def _claim_core(claim_dir: str) -> None:
    """Pin this process to the first core of its allowed set that no other worker claimed."""
    cores = sorted(os.sched_getaffinity(0))
    os.makedirs(claim_dir, exist_ok=True)
    for i, core in enumerate(cores):
        try:
            fd = os.open(os.path.join(claim_dir, f"core-{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        # Every thread that exists already (imports start some); later ones inherit it.
        tids = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, {core})
        return
    log.debug("no free core to pin worker %d to", os.getpid())


def _setup_process(options: WorkerOptions) -> None:
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    _SETUP_DONE = True
    # Nothing to do for OpenCV's and BLAS's thread pools: video and chunk tasks run them at one
    # thread while their pipeline runs (Pipeline.run enters threads.quiet_native_pools), since a
    # pool of more spins between calls, whatever the worker's share of the cores.
    if options.pin and options.claim_dir and hasattr(os, "sched_setaffinity"):
        _claim_core(options.claim_dir)


_IN_TASK = False


def _on_signal(signum: int, frame: object) -> None:
    if _IN_TASK:
        # The pipeline stops its threads and removes its temporary output on the way out.
        raise KeyboardInterrupt
    os._exit(128 + signum)  # an idle worker has nothing to clean up (and no traceback to print)


def init_pool_worker(channel: Channel, stop: StopEvent, options: WorkerOptions) -> None:
    """A :class:`~.executors.LocalPool` worker's start: where its tasks send progress and look for
    the pool's stop."""
    global _CHANNEL, _STOP
    # Ctrl-C and SIGTERM (the pool shutting down a broken pool's workers) end a worker cleanly.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _CHANNEL, _STOP = channel, stop
    _setup_process(options)


class _StopFlag(threading.Event):
    """The pipeline's stop event: its own (set on an error in this task) or the pool's (cancel).

    Only ``is_set`` looks at the pool's: the pipeline never waits on its stop event."""

    def __init__(self, shared: StopEvent | None) -> None:
        super().__init__()
        self._shared = shared

    def is_set(self) -> bool:
        return super().is_set() or (self._shared is not None and self._shared.is_set())


class _Reporter:
    """Sends ``(key, frames, started)`` to the driver, at most every ``interval`` seconds."""

    def __init__(self, channel: Channel | None, key: str, interval: float = 0.5) -> None:
        self.channel, self.key, self.interval = channel, key, interval
        self._last = 0.0
        self.send(0, started=True)

    def send(self, frames: int, started: bool = False) -> None:
        if self.channel is None:
            return
        with contextlib.suppress(Exception):  # progress is never worth failing a task for
            self.channel.put((self.key, frames, started))

    def __call__(self, frames: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.send(frames)


def _kill_once_hook(task: ChunkTask, progress: Callable[[int], Any]) -> Callable[[int], Any]:
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return progress
    half = max(1, task.spec.frames // 2)

    def hook(frames: int) -> None:
        progress(frames)
        if frames >= half:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(record.getMessage())


def run_task(
    task: Task,
    config: Config,
    options: WorkerOptions,
    channel: Channel | None = None,
    *,
    capture_logs: bool = True,
    stop: StopEvent | None = None,
    detectors: Detectors | None = None,
) -> TaskOutcome:
    """Run one task in this process; every expected failure comes back as an outcome, not raised.

    With ``capture_logs`` (in a worker) streamguard's warnings are returned in the outcome instead
    of printed, so the driver shows them once, in its own format, whichever machine ran the task.
    ``channel`` and ``stop`` default to the pool's (:func:`init_pool_worker`), ``detectors`` to
    this process's own, kept until it exits.
    """
    global _IN_TASK
    logger = logging.getLogger("streamguard")
    capture = _Capture() if capture_logs else None
    if capture is not None:
        logger.addHandler(capture)
        saved = logger.propagate
        logger.propagate = False
    _IN_TASK = True
    cpu0 = time.process_time()
    try:
        outcome = _run_task(
            task,
            config,
            options,
            channel if channel is not None else _CHANNEL,
            _StopFlag(stop if stop is not None else _STOP),
            detectors or _worker_detectors(),
        )
    finally:
        _IN_TASK = False
        if capture is not None:
            logger.removeHandler(capture)
            logger.propagate = saved
    return dataclasses.replace(
        outcome,
        warnings=tuple(capture.lines) if capture is not None else (),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        cpu_seconds=time.process_time() - cpu0,
    )


def _run_task(
    task: Task,
    config: Config,
    options: WorkerOptions,
    channel: Channel | None,
    stop: _StopFlag,
    detectors: Detectors,
) -> TaskOutcome:
    _setup_process(options)
    if options.threads:
        config = dataclasses.replace(
            config, encode=dataclasses.replace(config.encode, threads=options.threads)
        )
    report = _Reporter(channel, task.key)
    t0 = time.perf_counter()
    try:
        if isinstance(task, FileTask):
            det = detectors.get(config, options.threads)
            outcome = _run_file(task, config, stop, det, report)
        elif isinstance(task, ChunkTask):
            det = detectors.get(config, options.threads)
            cr = anonymize_chunk(
                task.input,
                task.spec,
                task.chunk_path,
                config,
                detector=det,
                progress=_kill_once_hook(task, report),
                stop=stop,
            )
            outcome = TaskOutcome(task.key, "done", cr.frames, cr.damaged, cr.seconds)
        else:
            frames = join_chunks(
                task.input,
                task.plan,
                list(task.chunk_paths),
                task.output,
                config,
                overwrite=task.overwrite,
                stop=stop,
            )
            outcome = TaskOutcome(task.key, "done", frames, 0, time.perf_counter() - t0)
    except StreamguardError as e:
        return TaskOutcome(task.key, "failed", 0, 0, time.perf_counter() - t0, str(e), e.exit_code,
                           stale=isinstance(e, ChunkError))
    except OSError as e:
        return TaskOutcome(task.key, "failed", 0, 0, time.perf_counter() - t0, f"{task.input}: {e}", 4)
    except (Cancelled, KeyboardInterrupt):
        return TaskOutcome(task.key, "cancelled", 0, 0, time.perf_counter() - t0, "interrupted")
    report.send(outcome.frames)
    return outcome


def _run_file(
    task: FileTask, config: Config, stop: threading.Event, detector: FaceDetector, progress: _Reporter
) -> TaskOutcome:
    """A whole file in one pass. Its output folder is made here, as files need one (a run whose
    files all fail leaves no folder behind)."""
    t0 = time.perf_counter()
    try:
        task.output.parent.mkdir(parents=True, exist_ok=True)
        result = anonymize_file(
            task.input,
            task.output,
            config,
            overwrite=task.overwrite,
            stop=stop,
            detector=detector,
            progress=progress,
        )
    except OSError as e:
        raise OutputError(f"{task.output}: {e.strerror or e}") from e
    frames = 1 if isinstance(result, ImageResult) else result.stats.frames_out
    return TaskOutcome(task.key, "done", frames, 0, time.perf_counter() - t0)


def claim_dir() -> str:
    """A fresh folder for :attr:`WorkerOptions.claim_dir`."""
    return tempfile.mkdtemp(prefix="streamguard-cores-")
