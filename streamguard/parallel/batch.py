"""Many files in one run: collect inputs, map them to outputs, run them, summarize.

A failing file does not stop the batch; an output that already exists is
skipped (unless overwrite), so re-running an interrupted batch resumes it.
With several workers (``jobs``, or a Ray cluster) the run goes through
:mod:`.scheduler`, which also cuts long videos into chunks and resumes their
finished chunks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..api import VIDEO_SUFFIXES, ImageResult, anonymize_file, default_output
from ..config import Config
from ..detect import FaceDetector, create_detector
from ..errors import Cancelled, StreamguardError
from ..images import IMAGE_SUFFIXES
from .cluster import RayPool
from .executors import Executor, LocalPool, cpu_count, default_threads
from .items import BatchItem, BatchResult
from .scheduler import RunInfo, run_distributed
from .tasks import WorkerOptions

__all__ = ["collect_inputs", "plan_outputs", "run_batch", "run_parallel"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES

#: Cores a single pass keeps busy by itself: one file is cut into chunks on a machine with more.
SINGLE_PASS_CORES = 2

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

    Folders are made as files need them (:func:`_run_one`); one still empty at the end had
    every file for it fail, and a failed run must leave nothing behind. Removed only after
    the run, when no worker can still need one.
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


def _run_one(
    item: BatchItem,
    config: Config,
    overwrite: bool,
    stop: threading.Event | None = None,
    detector: FaceDetector | None = None,
    progress: Callable[[int], Any] | None = None,
) -> BatchResult:
    t0 = time.perf_counter()
    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        result = anonymize_file(
            item.input,
            item.output,
            config,
            overwrite=overwrite,
            stop=stop,
            detector=detector,
            progress=progress,
        )
    except StreamguardError as e:
        return BatchResult(item, "failed", str(e), time.perf_counter() - t0, exit_code=e.exit_code)
    except OSError as e:
        return BatchResult(
            item, "failed", f"{item.output}: {e.strerror or e}", time.perf_counter() - t0, exit_code=4
        )
    frames = 1 if isinstance(result, ImageResult) else result.stats.frames_out
    return BatchResult(item, "done", "", time.perf_counter() - t0, frames=frames)


def run_batch(
    items: list[BatchItem],
    config: Config,
    *,
    overwrite: bool = False,
    jobs: int = 1,
    stop: threading.Event | None = None,
    on_done: Callable[[BatchResult], Any] | None = None,
) -> list[BatchResult]:
    """Process ``items``; a failure is recorded and the batch goes on. Raises Cancelled if stopped."""
    results: list[BatchResult] = []

    def record(r: BatchResult) -> None:
        results.append(r)
        if on_done is not None:
            on_done(r)

    todo = []
    for item in items:
        if item.output.exists() and not overwrite:
            record(BatchResult(item, "skipped", "output exists"))
        else:
            todo.append(item)
    if jobs <= 1:
        # One detector for the whole batch: loading its four models per file would cost each file.
        detector = create_detector(config.detect) if todo else None
        try:
            with _no_new_empty_folders(todo):
                for item in todo:
                    if stop is not None and stop.is_set():
                        raise Cancelled("batch stopped")
                    record(_run_one(item, config, overwrite, stop, detector))
        finally:
            if detector is not None:
                detector.close()
        if stop is not None and stop.is_set():
            raise Cancelled("batch stopped")
        return results
    results += run_parallel(todo, config, overwrite=overwrite, jobs=jobs, stop=stop, on_done=on_done)[0]
    return results


def run_parallel(
    items: list[BatchItem],
    config: Config,
    *,
    overwrite: bool = False,
    jobs: int | None = None,
    ray: str | None = None,
    use_ray: bool = False,
    cpus_per_task: int = 1,
    threads: int | None = None,
    chunk_seconds: float | None = None,
    max_retries: int = 2,
    stop: threading.Event | None = None,
    on_done: Callable[[BatchResult], Any] | None = None,
    on_progress: Callable[[int, int], Any] | None = None,
) -> tuple[list[BatchResult], RunInfo]:
    """Process ``items`` on ``jobs`` local worker processes, or as Ray tasks (``use_ray``, on the
    cluster at ``ray`` or on a Ray instance started here); long videos are cut into chunks.

    ``threads`` per worker defaults to this machine's cores divided by ``jobs`` (local) or to
    ``cpus_per_task`` (Ray). One file with a local pool runs here as a single pass when it is
    too short to cut, or (unless ``chunk_seconds`` is given) when this machine has no more cores
    than a single pass uses anyway (:data:`SINGLE_PASS_CORES`).
    Raises :class:`Cancelled` if ``stop`` is set (finished chunks are kept for the next run).
    """
    if use_ray:
        options = WorkerOptions(threads=threads or cpus_per_task)

        def make() -> Executor:
            return RayPool(ray or None, jobs=jobs, cpus_per_task=cpus_per_task, max_retries=max_retries,
                           options=options)

        slots = None
    else:
        n = max(1, jobs or cpu_count())
        options = WorkerOptions(threads=threads or default_threads(n))
        if chunk_seconds is None and len(items) == 1 and cpu_count() <= SINGLE_PASS_CORES:
            # The single pass already keeps this many cores busy (two detector threads, codec
            # threads): cut in chunks, one file measured no faster here (benchmarks/scale.py,
            # README), so it runs whole unless chunk_seconds asks otherwise.
            chunk_seconds = 0

        def make() -> Executor:
            return LocalPool(n, options, max_retries=max_retries, stop=stop)

        slots = n
    with _no_new_empty_folders(items):
        return run_distributed(
            items, config, make, slots=slots, overwrite=overwrite, chunk_seconds=chunk_seconds, stop=stop,
            on_done=on_done, on_progress=on_progress, inline_single=not use_ray,
        )
