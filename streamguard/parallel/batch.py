"""Many files in one run: collect inputs, map them to outputs, run them.

A failing file does not stop the batch; an output that already exists is skipped (unless
overwrite), so re-running an interrupted batch resumes it. Every run goes through the one
scheduler (:mod:`.scheduler`), on the executor its :class:`ParallelOptions` pick: one file after
another in this process, worker processes, or Ray tasks. With workers, long videos are cut into
chunks, and an interrupted run resumes their finished chunks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from ..api import VIDEO_SUFFIXES, default_output
from ..config import Config
from ..images import IMAGE_SUFFIXES
from .cluster import RayPool
from .executors import Executor, InlineExecutor, LocalPool, cpu_count, default_threads
from .items import BatchItem, BatchResult
from .scheduler import RunInfo, run_distributed
from .tasks import WorkerOptions

__all__ = ["EXECUTORS", "ExecutorKind", "ParallelOptions", "collect_inputs", "plan_outputs", "run_parallel"]

MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES

#: Cores a single pass keeps busy by itself: one file is cut into chunks on a machine with more.
SINGLE_PASS_CORES = 2

ExecutorKind = Literal["inline", "local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("inline", "local", "ray")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelOptions:
    """Where a run's tasks go, and how its videos are cut."""

    #: ``inline``: one task after another in this process; ``local``: worker processes on this
    #: machine; ``ray``: Ray tasks, on the cluster at ``ray_address`` or on a Ray instance
    #: started here.
    executor: ExecutorKind = "local"
    #: Worker processes (local; None: one per core), or at most this many Ray tasks at once.
    jobs: int | None = None
    #: The Ray cluster's HOST:PORT (or ``auto``); None starts a Ray instance here.
    ray_address: str | None = None
    #: CPUs each Ray task asks for.
    cpus_per_task: int = 1
    #: Codec and detector threads per task; None: this machine's cores divided by ``jobs``
    #: (local), ``cpus_per_task`` (Ray), the libraries' own choice (inline).
    threads: int | None = None
    #: Cut videos at least twice this long into chunks of about this many seconds; None picks
    #: from the total length and the number of workers (at least 10 s), 0 never cuts.
    chunk_seconds: float | None = None
    #: Times a task runs again after its worker process (or Ray worker, or node) died.
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")


def _is_output_name(p: Path) -> bool:
    # Our own results lying beside their inputs are not new inputs, nor are chunks of a run.
    return (
        ".anonymized." in p.name
        or p.name.startswith(".") and ".part" in p.name
        or p.parent.name.endswith(".streamguard-chunks")
    )


def collect_inputs(
    paths: Iterable[Path], recursive: bool = False
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Media files among ``paths`` as (file, the folder it was found under), and non-media skipped.

    Missing paths are kept as inputs so that they fail with their own error line.
    """
    found: list[tuple[Path, Path]] = []
    skipped: list[Path] = []
    for p in paths:
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.glob("*")
            for f in sorted(walker):
                if not f.is_file() or _is_output_name(f):
                    continue
                if f.suffix.lower() in MEDIA_SUFFIXES:
                    found.append((f, p))
                else:
                    skipped.append(f)
        else:
            found.append((p, p.parent))
    return found, skipped


def plan_outputs(inputs: list[tuple[Path, Path]], outdir: Path | None) -> list[BatchItem]:
    """Each input's output: mirrored under ``outdir`` (same name), else ``<stem>.anonymized.<ext>``."""
    items = []
    for f, root in inputs:
        if outdir is None:
            out = default_output(f)
        else:
            try:
                rel = f.relative_to(root)
            except ValueError:
                rel = Path(f.name)
            out = outdir / rel
            if out.resolve() == f.resolve():
                out = default_output(out)
        items.append(BatchItem(f, out))
    return items


@contextlib.contextmanager
def _no_new_empty_folders(items: Iterable[BatchItem]) -> Iterator[None]:
    """Remove the output folders this run made that are still empty at its end.

    Folders are made as files need them (by a file's task, or for a chunked video's work
    folder); one still empty at the end had every file for it fail, and a failed run must leave
    nothing behind. Removed only after the run, when no worker can still need one.
    """
    new: set[Path] = set()
    for item in items:
        folder = item.output.parent
        while folder not in new and not folder.exists():
            new.add(folder)
            folder = folder.parent
    try:
        yield
    finally:
        for folder in sorted(new, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: a file, or a chunked video's resumable work
                folder.rmdir()


def run_parallel(
    items: list[BatchItem],
    config: Config,
    options: ParallelOptions | None = None,
    *,
    overwrite: bool = False,
    stop: threading.Event | None = None,
    on_done: Callable[[BatchResult], Any] | None = None,
    on_progress: Callable[[int, int], Any] | None = None,
) -> tuple[list[BatchResult], RunInfo]:
    """Process ``items`` as ``options`` say (default: a worker process per core); a failing file
    is recorded and the run goes on.

    One file with a local pool runs here as a single pass when it is too short to cut, or
    (unless ``chunk_seconds`` is given) when this machine has no more cores than a single pass
    uses anyway (:data:`SINGLE_PASS_CORES`). ``on_done`` gets each file's result as it is
    settled, ``on_progress`` (frames written, frames expected).
    Raises :class:`Cancelled` if ``stop`` is set (finished chunks are kept for the next run).
    """
    opts = options or ParallelOptions()
    chunk_seconds = opts.chunk_seconds
    make: Callable[[], Executor]
    slots: int | None
    if opts.executor == "ray":
        make = partial(
            RayPool,
            opts.ray_address or None,
            jobs=opts.jobs,
            cpus_per_task=opts.cpus_per_task,
            max_retries=opts.max_retries,
            options=WorkerOptions(threads=opts.threads or opts.cpus_per_task),
        )
        slots = None  # the cluster's CPUs, known once Ray is up
    elif opts.executor == "local":
        slots = max(1, opts.jobs or cpu_count())
        if chunk_seconds is None and len(items) == 1 and cpu_count() <= SINGLE_PASS_CORES:
            # The single pass already keeps this many cores busy (two detector threads, codec
            # threads): cut in chunks, one file measured no faster here (benchmarks/scale.py,
            # README), so it runs whole unless chunk_seconds asks otherwise.
            chunk_seconds = 0
        make = partial(
            LocalPool,
            slots,
            WorkerOptions(threads=opts.threads or default_threads(slots)),
            max_retries=opts.max_retries,
            stop=stop,
        )
    else:
        make = partial(InlineExecutor, WorkerOptions(threads=opts.threads or 0))
        slots = 1
    with _no_new_empty_folders(items):
        return run_distributed(
            items, config, make, slots=slots, overwrite=overwrite, chunk_seconds=chunk_seconds, stop=stop,
            on_done=on_done, on_progress=on_progress, inline_single=opts.executor == "local",
        )
