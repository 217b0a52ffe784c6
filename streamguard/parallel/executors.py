"""Where tasks run: the :class:`Executor` protocol and the two executors on this machine.

::

    InlineExecutor    one task at a time on a thread of this process (``--jobs 1``, and a run
                      that comes down to one whole file)
    LocalPool         worker processes on this machine (``--jobs N``)

The third, :class:`~.cluster.RayPool`, runs Ray tasks. A worker process that dies is started
again and its task retried (``max_retries`` times); a task that fails with a
:class:`StreamguardError` (bad input, full disk) is not retried, it fails its file.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from ..config import Config
from .tasks import Detectors, JoinTask, Task, TaskOutcome, WorkerOptions, init_pool_worker, run_task

__all__ = ["Executor", "TaskProgress", "InlineExecutor", "LocalPool", "cpu_count", "default_threads"]

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def default_threads(jobs: int) -> int:
    """Threads per worker when ``jobs`` workers share this machine: its cores, divided."""
    return max(1, math.floor(cpu_count() / max(1, jobs)))


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


class TaskProgress:
    """Per task key: (frames written by its latest attempt, attempts started). A Ray actor too."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()  # an inline task's thread puts while the driver reads

    def snapshot(self) -> dict[str, tuple[int, int]]:
        with self._lock:
            return dict(self.frames)

    def put(self, item: tuple[str, int, bool]) -> None:
        key, frames, started = item
        with self._lock:
            _, starts = self.frames.get(key, (0, 0))
            self.frames[key] = (frames, starts + started)


class InlineExecutor:
    """One task at a time in this process: no parallelism, no process start-up.

    The task runs on a thread of its own, so that the driver's thread goes on showing progress
    and taking Ctrl-C. Its warnings are logged as they happen; a bug in a task (an unexpected
    exception) is raised from :meth:`poll`, traceback and all, as is a detector that cannot be
    built (:class:`ModelError`, from :meth:`submit`): the run stops with it, as a single pass
    does, instead of failing each file in turn. Detectors are kept across tasks and closed with
    the executor. ``options.pin`` is for worker processes: leave it off here.
    """

    slots = 1

    def __init__(self, options: WorkerOptions | None = None) -> None:
        self.options = options or WorkerOptions()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamguard-task")
        self._running: dict[Future[TaskOutcome], Task] = {}
        self._progress = TaskProgress()
        self._detectors = Detectors()
        self._cancel = threading.Event()

    def submit(self, task: Task, config: Config) -> None:
        if not isinstance(task, JoinTask):
            self._detectors.get(config, self.options.threads)  # built here: its error stops the run
        fut = self._thread.submit(
            run_task,
            task,
            config,
            self.options,
            self._progress,
            capture_logs=False,
            stop=self._cancel,
            detectors=self._detectors,
        )
        self._running[fut] = task

    def poll(self, timeout: float) -> list[TaskOutcome]:
        if not self._running:
            time.sleep(min(timeout, 0.05))
            return []
        done, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = []
        for fut in done:
            del self._running[fut]
            outcomes.append(fut.result())
        return outcomes

    def progress(self) -> dict[str, tuple[int, int]]:
        return self._progress.snapshot()

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        # A cancelled task stops within a fraction of a second (an image finishes first).
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._running.clear()
        self._detectors.close()


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
        self._progress = TaskProgress()
        self.worker_deaths = 0

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.slots,
                mp_context=self._ctx,
                initializer=init_pool_worker,
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
        return self._progress.snapshot()

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
