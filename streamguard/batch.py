"""Many files in one run: collect inputs, map them to outputs, run them, summarize.

A failing file does not stop the batch; an output that already exists is
skipped (unless overwrite), so re-running an interrupted batch resumes it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .api import VIDEO_SUFFIXES, ImageResult, anonymize_file, default_output
from .config import Config
from .detect import FaceDetector, create_detector
from .errors import Cancelled, StreamguardError
from .images import IMAGE_SUFFIXES

__all__ = ["BatchItem", "BatchResult", "collect_inputs", "plan_outputs", "run_batch"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class BatchItem:
    input: Path
    output: Path


@dataclass(frozen=True, slots=True)
class BatchResult:
    item: BatchItem
    status: Status
    message: str = ""
    seconds: float = 0.0
    frames: int = 0
    exit_code: int = 0


def _is_output_name(p: Path) -> bool:
    # Our own results lying beside their inputs are not new inputs.
    return ".anonymized." in p.name or p.name.startswith(".") and ".part" in p.name


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


def _run_one(
    item: BatchItem,
    config: Config,
    overwrite: bool,
    stop: threading.Event | None = None,
    detector: FaceDetector | None = None,
) -> BatchResult:
    t0 = time.perf_counter()
    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        result = anonymize_file(
            item.input, item.output, config, overwrite=overwrite, stop=stop, detector=detector
        )
    except StreamguardError as e:
        return BatchResult(item, "failed", str(e), time.perf_counter() - t0, exit_code=e.exit_code)
    except OSError as e:
        return BatchResult(
            item, "failed", f"{item.output}: {e.strerror or e}", time.perf_counter() - t0, exit_code=4
        )
    frames = 1 if isinstance(result, ImageResult) else result.stats.frames_out
    return BatchResult(item, "done", "", time.perf_counter() - t0, frames=frames)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _init_worker() -> None:
    # Ctrl-C and SIGTERM reach a worker as KeyboardInterrupt: the pipeline then
    # stops its threads and removes its temporary output on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _worker(item: BatchItem, config: Config, overwrite: bool) -> BatchResult:
    return _run_one(item, config, overwrite)


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
        # One detector for the whole batch: building a MediaPipe graph per file costs ~0.3 s.
        detector = create_detector(config.detect) if todo else None
        try:
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
    # spawn, not fork: the parent has threads (progress display) that fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
        pending: set[Future[BatchResult]] = set()
        queue = list(todo)
        try:
            while queue or pending:
                # Bounded in-flight work: at most ``jobs`` files submitted at once.
                while queue and len(pending) < jobs:
                    pending.add(pool.submit(_worker, queue.pop(0), config, overwrite))
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    record(fut.result())
                if stop is not None and stop.is_set():
                    raise Cancelled("batch stopped")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
