"""The driver: one scheduler for every run, whichever executor runs its tasks.

:func:`run_distributed` plans (which files are cut into chunks), keeps a bounded number of tasks
in flight, records finished chunks in each file's manifest, joins a file when its chunks are
done, and aggregates progress. The tasks and what a worker does with them are in :mod:`.tasks`;
the executors in :mod:`.executors` (in this process, worker processes) and :mod:`.cluster` (Ray).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import _check_distinct, is_image
from ..config import Config
from ..errors import Cancelled, InputError, StreamguardError
from ..sources import probe_video
from .chunks import CHUNKABLE_SUFFIXES, MIN_CHUNK_SECONDS, ChunkPlan, ChunkResult, plan_chunks
from .executors import Executor, InlineExecutor
from .items import BatchItem, BatchResult
from .tasks import ChunkTask, FileTask, JoinTask, Task, TaskOutcome
from .workdir import WorkDir, config_key, work_dir_for

__all__ = ["RunInfo", "auto_chunk_seconds", "run_distributed"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _FileState:
    index: int
    item: BatchItem
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


class _Scheduler:
    def __init__(
        self,
        items: list[BatchItem],
        config: Config,
        *,
        overwrite: bool,
        chunk_seconds: float | None,
        stop: threading.Event | None,
        on_done: Callable[[BatchResult], Any] | None,
        on_progress: Callable[[int, int], Any] | None,
    ) -> None:
        self.items, self.config, self.overwrite = items, config, overwrite
        self.chunk_seconds, self.stop = chunk_seconds, stop
        self.on_done, self.on_progress = on_done, on_progress
        self.results: list[BatchResult] = []
        self.states: dict[int, _FileState] = {}
        self.durations: dict[int, float] = {}
        self.queue: deque[Task | _PlanMarker] = deque()
        self.done_frames = 0
        self.total_frames = 0
        self.worker_cpu: dict[str, float] = {}
        self.frames_estimate: dict[int, int] = {}
        self.length = 0.0

    def record(self, r: BatchResult) -> None:
        self.results.append(r)
        if self.on_done is not None:
            self.on_done(r)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def survey(self) -> None:
        """Skip finished outputs; read each video's duration and frame count from its header."""
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
            if is_image(s.input):
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
        if s.finished:
            return
        s.finished = True
        assert s.failed is not None
        message = s.failed.message
        if s.work is not None and s.failed.exit_code == InputError.exit_code:
            s.work.remove()  # a bad input fails the same way next time: nothing to resume
        elif s.work is not None and s.failed.stale:
            # Kept, chunks that cannot be joined (an older version's, a damaged file) would fail
            # every later run the same way until someone found and removed the work folder.
            s.work.remove()
            message += "; its finished chunks were removed: the next run makes them again"
        seconds = time.perf_counter() - s.started if s.started else 0.0
        self.record(BatchResult(s.item, "failed", message, seconds, exit_code=s.failed.exit_code))

    def _finish_done(self, s: _FileState) -> None:
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
    items: list[BatchItem],
    config: Config,
    executor: Callable[[], Executor],
    *,
    slots: int | None = None,
    overwrite: bool = False,
    chunk_seconds: float | None = None,
    stop: threading.Event | None = None,
    on_done: Callable[[BatchResult], Any] | None = None,
    on_progress: Callable[[int, int], Any] | None = None,
    inline_single: bool = False,
) -> tuple[list[BatchResult], RunInfo]:
    """Process ``items`` with the executor ``executor()`` builds; the results come in the order
    the files are settled (those skipped, or refused at once, first).

    A video is cut into chunks when that keeps the workers busy: ``chunk_seconds`` long (None
    picks :func:`auto_chunk_seconds`; 0 never cuts), and only if that makes at least two. With
    ``slots`` known beforehand and ``inline_single``, a run that comes down to one whole file
    runs here, on an :class:`InlineExecutor`: a worker process would only add its start-up.
    ``on_progress`` gets (frames written, frames expected). Raises :class:`Cancelled` when
    ``stop`` is set; finished chunks stay for the next run.
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
        executor = InlineExecutor
    ex = executor()
    try:
        sched.plan(ex.slots)
    except BaseException:
        ex.close()
        raise
    info = sched.run(ex)
    return sched.results, info
