"""Command line: a thin layer over :mod:`streamguard.api`.

``main`` parses the files command (or hands ``live`` and ``serve`` to their own
modules), runs it and turns what went wrong into one line and an exit code. The
options shared with the other front ends are in :mod:`streamguard.options`.

Exit codes: 0 done, 1 internal error (a bug: traceback kept), 2 bad usage,
3 bad input, 4 output problem, 5 detector model problem, 6 device problem,
7 Ray unavailable (``--ray``), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from . import __version__
from .api import anonymize_image, anonymize_video, default_output, is_image
from .config import Config
from .errors import Cancelled, InputError, StreamguardError, UsageError
from .options import DEFAULTS, add_anonymize_options, config_from_args, non_negative_float
from .terminal import ProgressBar, setup_logging

if TYPE_CHECKING:
    from .parallel import BatchItem, BatchResult, ParallelOptions

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

log = logging.getLogger("streamguard")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamguard",
        description="Blur every face in a video or photo, offline. Audio, timing and rotation are kept.",
        epilog="Other commands: 'streamguard live --help' (webcam, virtual camera), "
        "'streamguard serve --help' (local web page).",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="video (mp4, mov, mkv, webm, avi, mts, ts, mpg, ...), image (jpg, png, webp, ...), "
        "or a folder of them",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file, or folder for several inputs (default: <name>.anonymized.<ext> beside each input)",
    )
    b = p.add_argument_group("several files, long videos, clusters")
    b.add_argument("-r", "--recursive", action="store_true", help="look for media in sub-folders too")
    b.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes: files, or chunks of a long video, in parallel (default 1; "
        "with --ray: at most this many tasks at once)",
    )
    b.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run files and chunks as Ray tasks: on the cluster at ADDRESS (e.g. head-node:6379), or on a "
        "Ray instance started here without it; needs pip install 'streamguard[ray]' and, on several "
        "machines, inputs and outputs in a folder every node sees under the same path",
    )
    b.add_argument(
        "--chunk-seconds",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="cut videos at least twice this long into chunks of about S seconds, processed in parallel "
        "(default: from the total length and the number of workers, at least 10 s; 0: never)",
    )
    b.add_argument(
        "--cpus-per-task",
        type=int,
        default=1,
        metavar="N",
        help="with --ray: CPUs each task asks for, and its codec and detector threads (default 1)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_anonymize_options(p)
    v = p.add_argument_group("video output")
    v.add_argument(
        "--crf", type=int, default=DEFAULTS.encode.crf, help="x264 quality, lower is better (default 20)"
    )
    v.add_argument("--preset", default=DEFAULTS.encode.preset, help="x264 speed preset (default veryfast)")
    v.add_argument(
        "--keep-metadata", action="store_true",
        help="keep container metadata (GPS, device, dates), chapter titles and subtitle streams"
    )
    v.add_argument("--report", type=Path, metavar="PATH.json", help="write what was covered in every frame")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--version", action="version", version=f"streamguard {__version__}")
    return p


@contextmanager
def signals_to_stop(stop: threading.Event) -> Iterator[dict[str, int]]:
    """SIGTERM (and a second Ctrl-C) set ``stop`` so the pipeline ends cleanly."""
    got: dict[str, int] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        got["signal"] = signum
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _is_batch(args: argparse.Namespace) -> bool:
    return len(args.inputs) > 1 or args.inputs[0].is_dir() or bool(args.output and args.output.is_dir())


def _run_one(args: argparse.Namespace, config: Config, stop: threading.Event) -> None:
    src = args.inputs[0]
    out = args.output or default_output(src)
    if is_image(src):
        result = anonymize_image(src, out, config, overwrite=args.overwrite, report=args.report)
        if not args.quiet:
            print(f"{result.output}: {result.summary()}", file=sys.stderr)
        return
    progress = ProgressBar(sys.stderr.isatty() and not args.quiet, src.name)
    try:
        result = anonymize_video(
            src,
            out,
            config,
            overwrite=args.overwrite,
            progress=progress.update,
            on_start=lambda info: progress.start(info.frames),
            stop=stop,
            report=args.report,
        )
    finally:
        progress.stop()
    if not args.quiet:
        s = result.stats
        print(
            f"{result.output}: {s.frames_out} frames in {s.seconds:.1f} s ({s.fps:.1f} fps)", file=sys.stderr
        )


def _parallel(args: argparse.Namespace) -> bool:
    return args.ray is not None or (args.jobs or 1) > 1


def _parallel_options(args: argparse.Namespace) -> ParallelOptions:
    """--jobs N, --ray: workers (--chunk-seconds, --cpus-per-task); else files one after another."""
    from .parallel import ParallelOptions

    if args.ray is not None:
        return ParallelOptions(executor="ray", jobs=args.jobs, ray_address=args.ray or None,
                               cpus_per_task=args.cpus_per_task, chunk_seconds=args.chunk_seconds)
    if _parallel(args):
        return ParallelOptions(executor="local", jobs=args.jobs, chunk_seconds=args.chunk_seconds)
    return ParallelOptions(executor="inline")


def _run_parallel(args: argparse.Namespace, config: Config, stop: threading.Event) -> int:
    """--jobs N / --ray: one file (chunked when long) or a batch, through one scheduler."""
    from .errors import OutputError
    from .parallel import BatchItem, run_parallel

    if args.report is not None:
        raise UsageError("--report needs a single pass over one file; leave out --jobs and --ray")
    if args.ray and Path(args.ray).exists():
        raise UsageError(f"--ray takes a cluster address, not {args.ray}: put --ray after the inputs")
    if args.cpus_per_task < 1:
        raise UsageError(f"--cpus-per-task must be >= 1, got {args.cpus_per_task}")
    single = not _is_batch(args)
    skipped: list[Path] = []
    if single:
        src = args.inputs[0]
        out = args.output or default_output(src)
        if out.exists() and not args.overwrite:
            raise OutputError(f"{out}: already exists (use --overwrite to replace it)")
        items = [BatchItem(src, out)]
    else:
        items, skipped = _batch_items(args)
    bar = ProgressBar(sys.stderr.isatty() and not args.quiet, items[0].input.name if single else "frames")
    started = False

    def on_progress(done: int, total: int) -> None:
        nonlocal started
        if not started:
            bar.start(total or None)
            started = True
        bar.update(done, total or None)

    def on_done(r: BatchResult) -> None:
        if r.status == "failed" and not single:
            log.error("error: %s", r.message)  # printed as it happens: a long batch shows failures early

    try:
        results, info = run_parallel(
            items, config, _parallel_options(args), overwrite=args.overwrite, stop=stop, on_done=on_done,
            on_progress=on_progress,
        )
    finally:
        bar.stop()
    failed = [r for r in results if r.status == "failed"]
    if single:
        if failed:
            print(f"streamguard: error: {failed[0].message}", file=sys.stderr)
            return failed[0].exit_code
        if not args.quiet:
            r = results[0]
            how = f"; {info.chunks} chunks on {info.workers} workers" if info.chunks else ""
            retried = f", {info.retried_tasks} retried" if info.retried_tasks else ""
            reused = f", {info.reused_chunks} from an earlier run" if info.reused_chunks else ""
            print(
                f"{r.item.output}: {r.frames} frames in {r.seconds:.1f} s "
                f"({r.frames / r.seconds if r.seconds else 0:.1f} fps){how}{reused}{retried}",
                file=sys.stderr,
            )
        return EXIT_OK
    if not args.quiet:
        _print_summary(results, len(skipped))
        if info.chunks or info.retried_tasks:
            print(
                f"{info.workers} workers; {info.chunked_files} long video(s) cut into {info.chunks} chunks"
                f" ({info.reused_chunks} from an earlier run); {info.retried_tasks} task(s) retried"
                " after a worker died",
                file=sys.stderr,
            )
    return failed[0].exit_code if failed else EXIT_OK


def _batch_items(args: argparse.Namespace) -> tuple[list[BatchItem], list[Path]]:
    """The inputs' media files mapped to their outputs, and what was skipped.

    No output folder is made here: the batch makes folders as files need them, so a run
    that fails (nothing found, every file failing) leaves none behind.
    """
    from .parallel import collect_inputs, plan_outputs

    outdir = args.output
    if outdir is not None and outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: several inputs need an output folder, not a file")
    found, skipped = collect_inputs(args.inputs, recursive=args.recursive)
    for f in skipped:
        log.warning("%s: not a supported image or video, skipped", f)
    if not found:
        where = ", ".join(str(p) for p in args.inputs)
        raise InputError(
            f"{where}: no images or videos found" + ("" if args.recursive else " (try --recursive)")
        )
    return plan_outputs(found, outdir), skipped


def _run_batch(args: argparse.Namespace, config: Config, stop: threading.Event) -> int:
    from .parallel import run_parallel

    if args.report is not None:
        raise UsageError("--report takes one input file")
    items, skipped = _batch_items(args)
    show = sys.stderr.isatty() and not args.quiet
    bar = ProgressBar(show, "files")
    bar.start(len(items))
    done = 0

    def on_done(r: BatchResult) -> None:
        nonlocal done
        done += 1
        bar.update(done)
        if r.status == "failed":
            # Printed as it happens, so a long batch shows failures early.
            log.error("error: %s", r.message)

    try:
        results, _ = run_parallel(
            items, config, _parallel_options(args), overwrite=args.overwrite, stop=stop, on_done=on_done
        )
    finally:
        bar.stop()
    if not args.quiet:
        _print_summary(results, len(skipped))
    failed = [r for r in results if r.status == "failed"]
    return failed[0].exit_code if failed else EXIT_OK


def _print_summary(results: list[BatchResult], non_media: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="streamguard batch")
    for col in ("input", "status", "frames", "seconds", "output / problem"):
        table.add_column(col)
    for r in results:
        detail = str(r.item.output) if r.status != "failed" else r.message
        table.add_row(str(r.item.input), r.status, str(r.frames or ""), f"{r.seconds:.1f}", detail)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    console.print(
        f"{counts['done']} done, {counts['skipped']} skipped (output exists), {counts['failed']} failed"
        + (f", {non_media} non-media files ignored" if non_media else "")
    )


#: Subcommands, each a front end module with its own ``main(argv) -> int``.
SUBCOMMANDS = {
    "live": "streamguard.live.cli",
    "serve": "streamguard.web.server",
}


def main(argv: Sequence[str] | None = None) -> int:
    as_command = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        # A file literally named "live" is still reachable as ./live. Imported only when asked
        # for: the web server's FastAPI and uvicorn need not load for a file.
        return int(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]))
    if as_command:
        # Run as the command, the process ends with main. Python's last garbage collections at
        # exit walk every object the imports made (0.17 s, most of it scipy's, measured); nothing
        # left then has work to finish (outputs are closed and committed before main returns),
        # so the process ends without them.
        atexit.register(gc.freeze)
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        config = config_from_args(args)
        if args.jobs is not None and args.jobs < 1:
            raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    except UsageError as e:
        parser.error(str(e))
    stop = threading.Event()
    with signals_to_stop(stop) as got:
        try:
            if _parallel(args):
                return _run_parallel(args, config, stop)
            if _is_batch(args):
                return _run_batch(args, config, stop)
            _run_one(args, config, stop)
        except Cancelled:
            sig = got.get("signal", signal.SIGINT)
            print("streamguard: interrupted; no output written", file=sys.stderr)
            return EXIT_TERMINATED if sig == signal.SIGTERM else EXIT_INTERRUPTED
        except KeyboardInterrupt:
            print("streamguard: interrupted; no output written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except StreamguardError as e:
            print(f"streamguard: error: {e}", file=sys.stderr)
            return e.exit_code
        except UsageError as e:
            parser.error(str(e))
    return EXIT_OK
