"""Files and chunks of files on many workers: one scheduler, one task function, three executors.

::

    run_distributed   the driver: plans (which files are cut into chunks), keeps a bounded
                      number of tasks in flight, records finished chunks in each file's
                      manifest, joins a file when its chunks are done, aggregates progress
    run_task          what a worker runs, whichever executor: a whole file, one chunk, a join
    InlineExecutor    tasks one after another in this process (tests, one task)
    LocalPool         worker processes on this machine (``--jobs N``)
    RayPool           Ray tasks on a local Ray instance or a cluster (``--ray [ADDRESS]``)

Every task is idempotent: outputs are written under a temporary name and renamed when
complete, so a task that is run again after its worker died replaces, never duplicates, what
an earlier attempt may have left. A worker that dies is retried (``max_retries`` times); a
task that fails with a :class:`StreamguardError` (bad input, full disk) is not, it fails its file.
Paths go to workers as they are: with Ray on several machines, inputs and outputs must be on a
folder every node sees under the same path (a shared file system).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..api import _check_distinct
from ..config import Config
from ..detect import FaceDetector, create_detector
from ..errors import Cancelled, ClusterError, InputError, StreamguardError
from .chunks import (
    CHUNKABLE_SUFFIXES,
    MIN_CHUNK_SECONDS,
    ChunkPlan,
    ChunkResult,
    ChunkSpec,
    anonymize_chunk,
    plan_chunks,
)
from .join import join_chunks
from .workdir import WorkDir, config_key, work_dir_for

__all__ = [
    "WorkerOptions",
    "FileTask",
    "ChunkTask",
    "JoinTask",
    "TaskOutcome",
    "Executor",
    "InlineExecutor",
    "LocalPool",
    "RayPool",
    "ClusterError",
    "run_task",
    "run_distributed",
    "cpu_count",
]

log = logging.getLogger(__name__)

#: Test-only fault injection: a chunk task whose worker finds this variable set (a marker file
#: path) and the marker absent creates the marker and kills its own process (SIGKILL) halfway
#: through the chunk, as a crashed or preempted node would.
KILL_ONCE_ENV = "STREAMGUARD_TEST_KILL_ONCE"


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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


# -- the worker side -------------------------------------------------------------------------------

_CHANNEL: Any = None  # where a pool worker sends progress (a multiprocessing queue)
_STOP: Any = None  # the pool's shared stop event
_SETUP_DONE = False
_DETECTORS: dict[tuple[Any, ...], FaceDetector] = {}


def _close_detectors() -> None:
    for d in _DETECTORS.values():
        with contextlib.suppress(Exception):
            d.close()
    _DETECTORS.clear()


def _detector(config: Config, threads: int) -> FaceDetector:
    """One detector per worker process and options, kept across tasks (building one takes ~0.5 s)."""
    key = (config.detect, threads)
    if key not in _DETECTORS:
        if not _DETECTORS:
            atexit.register(_close_detectors)
        if threads:
            from ..detect import TiledDetector

            d = config.detect
            _DETECTORS[key] = TiledDetector(
                d.preset, min_face=d.min_face, threshold=d.threshold, workers=threads
            )
        else:
            _DETECTORS[key] = create_detector(config.detect)
    return _DETECTORS[key]


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
    # OpenCV runs at one thread while a pipeline runs (threads.quiet_native_pools): a pool of
    # more spins between calls, whatever the worker's share of the cores.
    if options.pin and options.claim_dir and hasattr(os, "sched_setaffinity"):
        _claim_core(options.claim_dir)


_IN_TASK = False


def _on_signal(signum: int, frame: object) -> None:
    if _IN_TASK:
        # The pipeline stops its threads and removes its temporary output on the way out.
        raise KeyboardInterrupt
    os._exit(128 + signum)  # an idle worker has nothing to clean up (and no traceback to print)


def _init_pool_worker(channel: Any, stop: Any, options: WorkerOptions) -> None:
    global _CHANNEL, _STOP
    # Ctrl-C and SIGTERM (the pool shutting down a broken pool's workers) end a worker cleanly.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _CHANNEL, _STOP = channel, stop
    _setup_process(options)


class _StopFlag:
    """The pipeline's stop event: its own (set on an error in this task) or the pool's (cancel)."""

    def __init__(self, shared: Any) -> None:
        self._own = threading.Event()
        self._shared = shared

    def is_set(self) -> bool:
        return self._own.is_set() or self._shared.is_set()

    def set(self) -> None:
        self._own.set()


class _Reporter:
    """Sends ``(key, frames, started)`` to the driver, at most every ``interval`` seconds."""

    def __init__(self, channel: Any, key: str, interval: float = 0.5) -> None:
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
    task: Task, config: Config, options: WorkerOptions, channel: Any = None, *, capture_logs: bool = True
) -> TaskOutcome:
    """Run one task in this process; every expected failure comes back as an outcome, not raised.

    With ``capture_logs`` (in a worker) streamguard's warnings are returned in the outcome instead
    of printed, so the driver shows them once, in its own format, whichever machine ran the task.
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
        outcome = _run_task(task, config, options, channel)
    finally:
        _IN_TASK = False
        if capture is not None:
            logger.removeHandler(capture)
            logger.propagate = saved
    import socket

    return dataclasses.replace(
        outcome,
        warnings=tuple(capture.lines) if capture is not None else (),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        cpu_seconds=time.process_time() - cpu0,
    )


def _run_task(task: Task, config: Config, options: WorkerOptions, channel: Any) -> TaskOutcome:
    _setup_process(options)
    if options.threads:
        config = dataclasses.replace(
            config, encode=dataclasses.replace(config.encode, threads=options.threads)
        )
    channel = channel if channel is not None else _CHANNEL
    stop = _StopFlag(_STOP) if _STOP is not None else None
    report = _Reporter(channel, task.key)
    t0 = time.perf_counter()
    try:
        if isinstance(task, FileTask):
            from .batch import BatchItem, _run_one

            det = _detector(config, options.threads)
            r = _run_one(
                BatchItem(task.input, task.output), config, task.overwrite, stop, det, progress=report
            )
            outcome = TaskOutcome(
                task.key,
                r.status if r.status != "skipped" else "done",
                r.frames,
                0,
                r.seconds,
                r.message,
                r.exit_code,
            )
        elif isinstance(task, ChunkTask):
            det = _detector(config, options.threads)
            cr: ChunkResult = anonymize_chunk(
                task.input,
                task.spec,
                task.chunk_path,
                config,
                detector=det,
                progress=_kill_once_hook(task, report),
                stop=stop,  # type: ignore[arg-type]
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
            )  # type: ignore[arg-type]
            outcome = TaskOutcome(task.key, "done", frames, 0, time.perf_counter() - t0)
    except StreamguardError as e:
        return TaskOutcome(task.key, "failed", 0, 0, time.perf_counter() - t0, str(e), e.exit_code)
    except OSError as e:
        return TaskOutcome(task.key, "failed", 0, 0, time.perf_counter() - t0, f"{task.input}: {e}", 4)
    except (Cancelled, KeyboardInterrupt):
        return TaskOutcome(task.key, "cancelled", 0, 0, time.perf_counter() - t0, "interrupted")
    report.send(outcome.frames)
    return outcome


# -- executors -------------------------------------------------------------------------------------


class Executor(Protocol):
    #: Tasks that can run at once (the scheduler keeps at most this many in flight).
    slots: int

    def submit(self, task: Task, config: Config) -> None: ...

    def poll(self, timeout: float) -> list[TaskOutcome]:
        """Outcomes of tasks finished since the last call (waits up to ``timeout`` for one)."""
        ...

    def progress(self) -> dict[str, tuple[int, int]]:
        """Per running or finished task key: (frames written by its latest attempt, attempts started)."""
        ...

    def cancel(self) -> None:
        """Stop every running task (they come back as cancelled) and drop the queued ones."""
        ...

    def close(self) -> None: ...


class _Progress:
    """Per task key: (frames written by its latest attempt, attempts started). A Ray actor too."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[int, int]] = {}

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return dict(self.frames)

    def put(self, item: tuple[str, int, bool]) -> None:
        key, frames, started = item
        _, starts = self.frames.get(key, (0, 0))
        self.frames[key] = (frames, starts + started)


class InlineExecutor:
    """Runs each task in this process when polled: no parallelism, no process start-up."""

    slots = 1

    def __init__(self, options: WorkerOptions | None = None, stop: threading.Event | None = None) -> None:
        self.options = options or WorkerOptions()
        self._queue: deque[tuple[Task, Config]] = deque()
        self._progress = _Progress()
        self._stop = stop

    def submit(self, task: Task, config: Config) -> None:
        self._queue.append((task, config))

    def poll(self, timeout: float) -> list[TaskOutcome]:
        if not self._queue:
            return []
        task, config = self._queue.popleft()
        global _STOP
        saved, _STOP = _STOP, self._stop
        try:
            return [run_task(task, config, self.options, self._progress, capture_logs=False)]
        finally:
            _STOP = saved

    def progress(self) -> dict[str, tuple[int, int]]:
        return dict(self._progress.frames)

    def cancel(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        pass


class LocalPool:
    """Worker processes on this machine (spawned, reused across tasks); dead workers are retried."""

    def __init__(
        self,
        jobs: int,
        options: WorkerOptions | None = None,
        *,
        max_retries: int = 2,
        stop: threading.Event | None = None,
    ) -> None:
        self.slots = max(1, jobs)
        self._driver_stop = stop
        self.options = options or WorkerOptions()
        self.max_retries = max_retries
        # spawn, not fork: the driver has threads (progress display) that fork would copy mid-state.
        self._ctx = multiprocessing.get_context("spawn")
        self._channel = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future[TaskOutcome], tuple[Task, Config, int]] = {}
        self._unsent: list[tuple[Task, Config, int]] = []
        self._progress = _Progress()
        self.worker_deaths = 0

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.slots,
                mp_context=self._ctx,
                initializer=_init_pool_worker,
                initargs=(self._channel, self._stop, self.options),
            )
        return self._pool

    def submit(self, task: Task, config: Config, attempt: int = 1) -> None:
        try:
            fut = self._ensure_pool().submit(run_task, task, config, self.options)
        except BrokenProcessPool:
            self._unsent.append((task, config, attempt))  # a worker died just now: see poll()
            return
        self._running[fut] = (task, config, attempt)

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._driver_stop is not None and self._driver_stop.is_set())

    def poll(self, timeout: float) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        lost: list[tuple[Task, Config, int]] = []
        if self._running:
            done, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
            for fut in done:
                task, config, attempt = self._running.pop(fut)
                try:
                    outcomes.append(fut.result())
                except BrokenProcessPool:
                    lost.append((task, config, attempt))
                except BaseException as e:  # noqa: BLE001 - a bug in a task: report it, go on
                    message = f"{task.input}: internal error: {e!r}"
                    outcomes.append(TaskOutcome(task.key, "failed", message=message, exit_code=1))
        elif not self._unsent:
            time.sleep(min(timeout, 0.05))
            return []
        if lost or self._unsent:
            # A worker died (killed, out of memory, crashed): the pool is broken and every task
            # in it is lost; start a new pool and run them again.
            self.worker_deaths += bool(lost)
            lost += self._running.values()
            self._running.clear()
            unsent, self._unsent = self._unsent, []
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            for task, config, attempt in unsent + [(t, c, a + 1) for t, c, a in lost]:
                if self._stopping():
                    outcomes.append(TaskOutcome(task.key, "cancelled", message="interrupted"))
                elif attempt > self.max_retries + 1:
                    message = f"{task.input}: worker process died {attempt - 1} times on this task"
                    outcomes.append(TaskOutcome(task.key, "failed", exit_code=1, message=message))
                else:
                    log.info("worker process died; running %s again", task.key)
                    self.submit(task, config, attempt)
        return outcomes

    def progress(self) -> dict[str, tuple[int, int]]:
        while True:
            try:
                item = self._channel.get_nowait()
            except Exception:  # queue.Empty, or a queue closed under us
                break
            self._progress.put(item)
        return dict(self._progress.frames)

    def cancel(self) -> None:
        self._stop.set()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._running:
                # Tasks stop within a fraction of a second once the stop event is set; a worker
                # stuck in native code longer than that is terminated.
                _, stuck = wait(list(self._running), timeout=15)
                if stuck:
                    for p in list(getattr(pool, "_processes", {}).values()):
                        if p.is_alive():
                            p.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        self._running.clear()
        self._channel.close()
        self._channel.join_thread()


class _RayChannel:
    """Progress from a Ray task to the driver's progress actor: frame counts fire and forget, a
    task's start waited for."""

    #: Seconds a task waits for the actor to take its start.
    START_TIMEOUT = 30.0

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def put(self, item: tuple[str, int, bool]) -> None:
        ref = self.actor.put.remote(item)
        if item[2]:
            # A fire-and-forget call is sent in the background: from a worker killed soon after
            # it started (under load, before the call went out) it was lost, and the task's retry
            # then counted as its first attempt ("0 retried").
            import ray

            ray.get(ref, timeout=self.START_TIMEOUT)


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, on a cluster address nothing answers at (Ray itself retries
    its connection for minutes). ``auto`` and a local instance need no check."""
    if not address or address == "auto":
        return
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(e.strerror or str(e)) from e


class RayPool:
    """Ray tasks on a cluster (``address``) or on a Ray instance started here (``address=None``).

    Each task asks Ray for ``cpus_per_task`` CPUs and runs its codecs and detector on that many
    threads. Ray re-runs a task whose worker or node died, up to ``max_retries`` times.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        jobs: int | None = None,
        cpus_per_task: int = 1,
        max_retries: int = 2,
        options: WorkerOptions | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise ClusterError("--ray needs Ray: pip install 'streamguard[ray]'") from e
        self._ray = ray
        self.options = options or WorkerOptions(threads=cpus_per_task)
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            }
            if address is None and jobs:
                kwargs["num_cpus"] = jobs * cpus_per_task
            # Ray's core installs its own SIGTERM/SIGINT handlers (abort); the caller's (the CLI's
            # clean stop) come back once it is up.
            saved = (
                {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread()
                else {}
            )
            try:
                _check_reachable(address)
                ray.init(address=address, **kwargs)
            except Exception as e:  # ConnectionError, ValueError, RuntimeError: all one line for the user
                raise ClusterError(
                    f"cannot start or reach Ray at {address or 'a new local instance'}: {e}"
                ) from e
            finally:
                for sig, handler in saved.items():
                    if handler is not None:
                        signal.signal(sig, handler)
            self._started = True
        cpus = ray.cluster_resources().get("CPU", 1.0)
        self.slots = max(1, int(cpus // cpus_per_task))
        if jobs:
            self.slots = min(self.slots, jobs)
        self._remote = ray.remote(run_task).options(
            num_cpus=cpus_per_task, max_retries=max_retries, retry_exceptions=False
        )
        self._actor = ray.remote(num_cpus=0)(_Progress).remote()
        self._channel = _RayChannel(self._actor)
        self._running: dict[Any, Task] = {}

    def submit(self, task: Task, config: Config) -> None:
        ref = self._remote.remote(task, config, self.options, self._channel)
        self._running[ref] = task

    def poll(self, timeout: float) -> list[TaskOutcome]:
        ray = self._ray
        if not self._running:
            time.sleep(min(timeout, 0.05))
            return []
        refs = list(self._running)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        outcomes = []
        for ref in ready:
            task = self._running.pop(ref)
            try:
                outcomes.append(ray.get(ref))
            except ray.exceptions.TaskCancelledError:
                outcomes.append(TaskOutcome(task.key, "cancelled", message="interrupted"))
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                outcomes.append(
                    TaskOutcome(
                        task.key, "failed", exit_code=1, message=f"{task.input}: internal error: {cause!r}"
                    )
                )
            except ray.exceptions.RayError as e:
                # The worker or its node died more often than retries allow.
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                outcomes.append(
                    TaskOutcome(
                        task.key, "failed", exit_code=1, message=f"{task.input}: Ray task lost: {first}"
                    )
                )
        return outcomes

    def progress(self) -> dict[str, tuple[int, int]]:
        try:
            return dict(self._ray.get(self._actor.snapshot.remote(), timeout=5))
        except Exception:  # a slow or lost actor only delays the progress display
            return {}

    def cancel(self) -> None:
        for ref in list(self._running):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref)

    def close(self) -> None:
        if self._running:
            with contextlib.suppress(Exception):
                self._ray.wait(list(self._running), num_returns=len(self._running), timeout=15)
        self._running.clear()
        if self._started:
            self._ray.shutdown()


# -- the driver ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _FileState:
    index: int
    item: Any  # the BatchItem
    input: Path
    output: Path
    work: WorkDir | None = None
    plan: ChunkPlan | None = None
    pending_chunks: set[int] = field(default_factory=set)
    reused_chunks: int = 0
    frames: int = 0
    damaged: int = 0
    in_flight: int = 0
    failed: TaskOutcome | None = None
    finished: bool = False
    started: float = 0.0

    @property
    def chunked(self) -> bool:
        return self.plan is not None


@dataclass(frozen=True, slots=True)
class _PlanMarker:
    """In the driver's queue only: plan this file when reached."""

    key: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What :func:`run_distributed` did beyond the per-file results."""

    workers: int = 0
    chunked_files: int = 0
    chunks: int = 0
    reused_chunks: int = 0
    retried_tasks: int = 0
    #: CPU seconds per worker process (host:pid), summed over the tasks it finished.
    worker_cpu: dict[str, float] = field(default_factory=dict)


def auto_chunk_seconds(durations: list[float], slots: int) -> float:
    """Chunks long enough to be worth a worker's warm-up, short enough to keep every slot busy:
    the total duration over the workers, at least :data:`MIN_CHUNK_SECONDS`."""
    return max(MIN_CHUNK_SECONDS, sum(durations) / max(1, slots))


def _is_video(p: Path) -> bool:
    from ..api import is_image

    return not is_image(p)


class _Scheduler:
    def __init__(
        self,
        items: list[Any],
        config: Config,
        *,
        overwrite: bool,
        chunk_seconds: float | None,
        stop: threading.Event | None,
        on_done: Callable[[Any], Any] | None,
        on_progress: Callable[[int, int], Any] | None,
    ) -> None:
        self.items, self.config, self.overwrite = items, config, overwrite
        self.chunk_seconds, self.stop = chunk_seconds, stop
        self.on_done, self.on_progress = on_done, on_progress
        self.results: list[Any] = []
        self.states: dict[int, _FileState] = {}
        self.durations: dict[int, float] = {}
        self.queue: deque[Task | _PlanMarker] = deque()
        self.done_frames = 0
        self.total_frames = 0
        self.worker_cpu: dict[str, float] = {}
        self.frames_estimate: dict[int, int] = {}
        self.length = 0.0

    def record(self, r: Any) -> None:
        self.results.append(r)
        if self.on_done is not None:
            self.on_done(r)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def survey(self) -> None:
        """Skip finished outputs; read each video's duration and frame count from its header."""
        from ..sources import probe_video
        from .batch import BatchResult

        for i, item in enumerate(self.items):
            if item.output.exists() and not self.overwrite:
                # A work folder beside a finished output is what a run killed after its join left.
                if work_dir_for(item.output).is_dir():
                    WorkDir(item.output).remove()
                self.record(BatchResult(item, "skipped", "output exists"))
                continue
            s = _FileState(i, item, Path(item.input).absolute(), Path(item.output).absolute())
            self.states[i] = s
            try:
                _check_distinct(s.input, s.output)
            except InputError as e:
                s.failed = TaskOutcome(f"file:{i}", "failed", message=str(e), exit_code=e.exit_code)
                self._finish_failed(s)
                continue
            if not _is_video(s.input):
                self.frames_estimate[i] = 1
                continue
            try:
                info = probe_video(s.input)
            except InputError:
                continue  # its task reports the problem, in its own words
            self.frames_estimate[i] = info.frames or 0
            if self.chunk_seconds != 0 and info.duration and s.output.suffix.lower() in CHUNKABLE_SUFFIXES:
                self.durations[i] = info.duration

    def chunk_length(self, slots: int) -> float:
        if self.chunk_seconds:
            return max(self.chunk_seconds, 1.0)
        return auto_chunk_seconds(list(self.durations.values()), slots)

    def would_chunk(self, slots: int) -> bool:
        length = self.chunk_length(slots)
        return any(d >= 2 * length for d in self.durations.values())

    def plan(self, slots: int) -> None:
        """Queue a whole-file task per file, or, for a video long enough to cut, a marker that
        plans it (reads its packets, or resumes its manifest) when the queue reaches it: an
        archive's planning is spread over the run instead of holding up its start."""
        self.length = self.chunk_length(slots)
        for s in self.states.values():
            if s.failed is not None:
                continue
            self.total_frames += self.frames_estimate.get(s.index, 0)
            d = self.durations.get(s.index)
            if d is not None and d >= 2 * self.length:
                self.queue.append(_PlanMarker(f"plan:{s.index}"))
            else:
                self.queue.append(FileTask(f"file:{s.index}", s.input, s.output, self.overwrite))

    def _expand(self, s: _FileState) -> None:
        """Replace a file's plan marker with its chunk tasks (or its join, or a whole-file task)."""
        try:
            self._plan_file(s, self.length)
        except StreamguardError as e:
            s.failed = TaskOutcome(f"file:{s.index}", "failed", message=str(e), exit_code=e.exit_code)
            self._finish_failed(s)
            return
        if s.plan is None:
            self.queue.appendleft(FileTask(f"file:{s.index}", s.input, s.output, self.overwrite))
            return
        assert s.work is not None
        tasks: list[Task] = [
            ChunkTask(f"chunk:{s.index}:{spec.index}", s.input, spec, s.work.chunk_path(spec.index))
            for spec in s.plan.chunks
            if spec.index in s.pending_chunks
        ]
        if not tasks:
            tasks = [self._join_task(s)]
        self.queue.extendleft(reversed(tasks))
        self.total_frames += s.plan.frames - self.frames_estimate.get(s.index, 0)
        self.done_frames += s.frames

    def _plan_file(self, s: _FileState, length: float) -> None:
        work = WorkDir(s.output)
        if work.resume(s.input, config_key(self.config, s.output)):
            work.clean_partials()
            plan = work.plan
            assert plan is not None
            s.reused_chunks = len(work.done)
            s.frames = sum(int(v.get("frames", 0)) for v in work.done.values())
            s.damaged = sum(int(v.get("damaged", 0)) for v in work.done.values())
            log.info("%s: resuming: %d of %d chunks done", s.input, len(work.done), len(plan.chunks))
        else:
            plan = plan_chunks(s.input, self.config, chunk_seconds=length)
            if plan is None:
                return
            work.start(s.input, config_key(self.config, s.output), plan)
        s.work, s.plan = work, plan
        s.pending_chunks = {c.index for c in plan.chunks} - set(work.done)

    def _join_task(self, s: _FileState) -> JoinTask:
        assert s.plan is not None and s.work is not None
        paths = tuple(s.work.chunk_path(c.index) for c in s.plan.chunks)
        return JoinTask(f"join:{s.index}", s.input, s.plan, paths, s.output, self.overwrite)

    def _finish_failed(self, s: _FileState) -> None:
        from .batch import BatchResult

        if s.finished:
            return
        s.finished = True
        assert s.failed is not None
        if s.work is not None and s.failed.exit_code == InputError.exit_code:
            s.work.remove()  # a bad input fails the same way next time: nothing to resume
        seconds = time.perf_counter() - s.started if s.started else 0.0
        self.record(BatchResult(s.item, "failed", s.failed.message, seconds, exit_code=s.failed.exit_code))

    def _finish_done(self, s: _FileState) -> None:
        from .batch import BatchResult

        s.finished = True
        if s.damaged:
            log.warning(
                "%s: %d frame(s) were damaged in the input and have been covered whole", s.input, s.damaged
            )
        self.record(BatchResult(s.item, "done", "", time.perf_counter() - s.started, frames=s.frames))

    def _handle(self, t: Task, out: TaskOutcome) -> None:
        s = self.states[int(t.key.split(":")[1])]
        s.in_flight -= 1
        if out.worker:
            self.worker_cpu[out.worker] = self.worker_cpu.get(out.worker, 0.0) + out.cpu_seconds
        for line in out.warnings:
            log.warning("%s", line)
        if out.status == "cancelled" and not self.stopped():
            out = dataclasses.replace(out, status="failed", exit_code=130)  # interrupted from outside
        if out.status == "cancelled":
            return
        if out.status == "failed" and s.failed is None:
            s.failed = out
        if s.failed is not None:
            if s.in_flight == 0:
                self._finish_failed(s)
            return
        if isinstance(t, ChunkTask):
            assert s.work is not None
            s.work.mark_done(ChunkResult(t.spec.index, out.frames, out.damaged, out.seconds))
            s.pending_chunks.discard(t.spec.index)
            s.frames += out.frames
            s.damaged += out.damaged
            self.done_frames += out.frames
            if not s.pending_chunks:
                self.queue.appendleft(self._join_task(s))  # joins first: they finish files
        elif isinstance(t, JoinTask):
            assert s.work is not None
            s.work.remove()
            self._finish_done(s)
        else:
            s.frames, s.damaged = out.frames, out.damaged
            self.done_frames += out.frames
            self._finish_done(s)

    def run(self, ex: Executor) -> RunInfo:
        in_flight: dict[str, Task] = {}
        last_progress = 0.0
        try:
            while self.queue or in_flight:
                if self.stopped():
                    raise Cancelled("batch stopped")
                while self.queue and len(in_flight) < ex.slots:
                    t = self.queue.popleft()
                    s = self.states[int(t.key.split(":")[1])]
                    if s.failed is not None:
                        continue  # its file failed already: the rest of it is not worth running
                    if isinstance(t, _PlanMarker):
                        self._expand(s)
                        continue
                    s.started = s.started or time.perf_counter()
                    s.in_flight += 1
                    in_flight[t.key] = t
                    ex.submit(t, self.config)
                for out in ex.poll(0.2):
                    self._handle(in_flight.pop(out.key), out)
                now = time.monotonic()
                if self.on_progress is not None and now - last_progress >= 0.25:
                    last_progress = now
                    prog = ex.progress()
                    running = sum(
                        prog.get(k, (0, 0))[0] for k, t in in_flight.items() if not isinstance(t, JoinTask)
                    )
                    self.on_progress(self.done_frames + running, self.total_frames)
            if self.stopped():
                raise Cancelled("batch stopped")
            if self.on_progress is not None:
                self.on_progress(self.done_frames, self.total_frames)
            retried = sum(1 for _, starts in ex.progress().values() if starts > 1)
        except BaseException:
            ex.cancel()
            raise
        finally:
            ex.close()
        plans = [s.plan for s in self.states.values() if s.plan is not None]
        return RunInfo(
            ex.slots,
            len(plans),
            sum(len(p.chunks) for p in plans),
            sum(s.reused_chunks for s in self.states.values()),
            retried,
            dict(self.worker_cpu),
        )


def run_distributed(
    items: list[Any],
    config: Config,
    executor: Callable[[], Executor],
    *,
    slots: int | None = None,
    overwrite: bool = False,
    chunk_seconds: float | None = None,
    stop: threading.Event | None = None,
    on_done: Callable[[Any], Any] | None = None,
    on_progress: Callable[[int, int], Any] | None = None,
    inline_single: bool = False,
) -> tuple[list[Any], RunInfo]:
    """Process ``items`` (:class:`BatchItem`) with the executor ``executor()`` builds.

    A video is cut into chunks when that keeps the workers busy: ``chunk_seconds`` long (None
    picks :func:`auto_chunk_seconds`; 0 never cuts), and only if that makes at least two. With
    ``slots`` known beforehand and ``inline_single``, a run that comes down to one whole file
    runs here as a single pass: a worker process would only add its start-up. ``on_progress``
    gets (frames written, frames expected). Raises :class:`Cancelled` when ``stop`` is set;
    finished chunks stay for the next run.
    """
    sched = _Scheduler(
        items,
        config,
        overwrite=overwrite,
        chunk_seconds=chunk_seconds,
        stop=stop,
        on_done=on_done,
        on_progress=on_progress,
    )
    sched.survey()
    todo = [s for s in sched.states.values() if s.failed is None]
    if not todo:
        return sched.results, RunInfo()
    if inline_single and slots is not None and len(todo) == 1 and not sched.would_chunk(slots):
        from .batch import _run_one

        (s,) = todo
        total = sched.frames_estimate.get(s.index, 0)
        progress = (lambda n: on_progress(n, total)) if on_progress is not None else None
        r = _run_one(s.item, config, overwrite, stop, None, progress=progress)
        if stop is not None and stop.is_set():
            raise Cancelled("batch stopped")
        sched.record(r)
        return sched.results, RunInfo(workers=1)
    ex = executor()
    try:
        sched.plan(ex.slots)
    except BaseException:
        ex.close()
        raise
    info = sched.run(ex)
    return sched.results, info


def _estimate_frames(path: Path) -> int:
    from ..sources import probe_video

    if not _is_video(path):
        return 1
    try:
        return probe_video(path).frames or 0
    except InputError:
        return 0


def default_threads(jobs: int) -> int:
    """Threads per worker when ``jobs`` workers share this machine: its cores, divided."""
    return max(1, math.floor(cpu_count() / max(1, jobs)))


def claim_dir() -> str:
    """A fresh folder for :attr:`WorkerOptions.claim_dir`."""
    return tempfile.mkdtemp(prefix="streamguard-cores-")
