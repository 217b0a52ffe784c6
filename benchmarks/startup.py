"""Start-up time of the files command: one frame in, one frame out.

    python benchmarks/startup.py                     # a 1080p one-frame clip made from sample_media/
    python benchmarks/startup.py --clip first.mp4    # any clip (one frame measures start-up alone)
    python benchmarks/startup.py --runs 9 --entry module
    python benchmarks/startup.py --checkout ../old --checkout .   # two checkouts, runs interleaved

Wall time of ``python -m streamguard CLIP -o OUT -q --overwrite`` ("module") and of the
``streamguard`` console script beside this Python ("script"), each in ``--runs`` fresh
processes: median, min and max. Then where the time of one more run goes (``--phases``
runs, the median of each phase): the interpreter's start, importing ``streamguard.cli``, each
step of ``anonymize_video`` (open the input, load the detector, build the stages, open the
output, the pipeline, finish the output), the pipeline's wait for the tracker's libraries
(filterpy, scipy: imported on a thread of their own since start-up was cut, and needed
before the pipeline's threads start), when that import ended, and the exit after ``main``
returned. Each phase is timed with a wrapper around the function named; the breakdown's
process runs ``cli.main`` as the command does, from ``python -c``.

The default clip is the first frame of ``sample_media/sample.mp4`` scaled to 1920x1080 and
encoded with libx264 (once per run of this script, in a temporary folder): detection cost
grows with the frame size, so it stands for the first frame of a 1080p video.

Each ``--checkout`` is put first on PYTHONPATH of its processes, so its code is what runs
(default: this checkout). With several, the runs alternate between them, so a change in the
machine's load falls on all alike. The load average is printed: on a shared machine, other
work inflates every figure; compare medians of interleaved runs. Python's byte-code cache
matters a little: with PYTHONDONTWRITEBYTECODE set (as in some sandboxes) streamguard's own
modules are compiled on every start, about 15 ms more; the setting is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_media" / "sample.mp4"

# The breakdown's process: cli.main as the command runs it, with a timer around each step.
# Every mark is (label, start, end) in time.time() seconds; printed as one line of JSON.
_CHILD = r"""
import time
_up = time.time()
import json, sys, threading
marks = [("interpreter start", None, _up)]
t = time.time()
from streamguard import cli
marks.append(("import streamguard.cli", t, time.time()))
from streamguard import api, pipeline

def timed(owner, name, label):
    f = getattr(owner, name)
    def wrapper(*a, **k):
        s = time.time()
        try:
            return f(*a, **k)
        finally:
            marks.append((label, s, time.time()))
    setattr(owner, name, wrapper)

timed(api.VideoFileSource, "__init__", "open the input")
timed(api, "create_detector", "load the detector")
timed(api, "build_stages", "build the stages")
timed(api.VideoFileSink, "__init__", "open the output")
timed(api.Pipeline, "run", "Pipeline.run")
timed(api.VideoFileSink, "close", "finish the output")
pools = pipeline.quiet_native_pools

class _Pools:
    # Pipeline.run enters it first (threadpoolctl; before 7dcbb85 it imported filterpy too).
    def __init__(self):
        self.inner = pools()
    def __enter__(self):
        s = time.time()
        try:
            return self.inner.__enter__()
        finally:
            marks.append(("  of which: thread pools limit", s, time.time()))
    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

pipeline.quiet_native_pools = _Pools
import importlib.util
spec = importlib.util.find_spec("streamguard.track")
# Only where the tracker imports filterpy on a thread of its own: elsewhere importing it here
# would import filterpy before main() and hide that cost from the breakdown.
if "def _import_libraries" in open(spec.origin).read():
    from streamguard import track
    timed(track, "_import_libraries", "tracker's libraries (background thread)")
sys.argv = ["streamguard", *sys.argv[1:]]
t = time.time()
rc = cli.main()
marks.append(("main() (all of it)", t, time.time()))
sys.stderr.write("\n@" + json.dumps({"marks": marks, "returned": time.time()}) + "\n")
sys.exit(rc)
"""


def make_clip(dst: Path, width: int = 1920, height: int = 1080) -> Path:
    """The first frame of the bundled sample, scaled to ``width`` x ``height``, as a one-frame H.264 mp4."""
    import av

    with av.open(str(SAMPLE)) as inp:
        frame = next(inp.decode(video=0))
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for packet in stream.encode(frame.reformat(width=width, height=height, format="yuv420p")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def _env(checkout: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _command(entry: str) -> list[str]:
    if entry == "module":
        return [sys.executable, "-m", "streamguard"]
    script = Path(sys.executable).parent / "streamguard"
    if not script.exists():
        raise SystemExit(f"{script}: no console script beside this Python (pip install -e .)")
    return [str(script)]


def wall_times(checkouts: list[Path], entries: list[str], clip: Path, out: Path, runs: int) -> dict:
    """Seconds per (checkout, entry), runs interleaved."""
    times: dict[tuple[Path, str], list[float]] = {(c, e): [] for c in checkouts for e in entries}
    args = [str(clip), "-o", str(out), "-q", "--overwrite"]
    for _ in range(runs):
        for (checkout, entry), got in times.items():
            t = time.perf_counter()
            r = subprocess.run([*_command(entry), *args], env=_env(checkout), cwd=out.parent,
                               capture_output=True, text=True)
            got.append(time.perf_counter() - t)
            if r.returncode != 0:
                raise SystemExit(f"{entry} in {checkout} failed ({r.returncode}): {r.stderr[-2000:]}")
    return times


def phases(checkout: Path, clip: Path, out: Path) -> list[tuple[str, float, float]]:
    """One run's marks as (label, start, duration) in seconds since the process was started."""
    import json

    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", _CHILD, str(clip), "-o", str(out), "-q", "--overwrite"],
                       env=_env(checkout), cwd=out.parent, capture_output=True, text=True)
    end = time.time()
    if r.returncode != 0:
        raise SystemExit(f"breakdown run failed ({r.returncode}): {r.stderr[-2000:]}")
    got = json.loads(r.stderr.rpartition("\n@")[2])
    rows = [(label, (s if s is not None else t0) - t0, e - (s if s is not None else t0))
            for label, s, e in got["marks"]]
    rows.append(("exit after main() returned", got["returned"] - t0, end - got["returned"]))
    rows.append(("wall (process, as seen from outside)", 0.0, end - t0))
    return rows


def _print_phases(checkout: Path, clip: Path, out: Path, n: int) -> None:
    runs = [phases(checkout, clip, out) for _ in range(n)]
    labels = list(dict.fromkeys(label for run in runs for label, _, _ in run))
    print(f"\nphases of {checkout} (median of {n} runs; 'at' = start, seconds since the process began):")
    for label in labels:
        at = [s for run in runs for lab, s, _ in run if lab == label]
        took = [d for run in runs for lab, _, d in run if lab == label]
        print(f"  {label:48s} at {statistics.median(at):6.3f}  {statistics.median(took):6.3f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", type=Path, help="input video (default: 1080p, one frame, from sample_media)")
    p.add_argument("--runs", type=int, default=7, help="fresh processes per entry point (default 7)")
    p.add_argument("--phases", type=int, default=3, help="breakdown runs (median of each phase; 0: none)")
    p.add_argument("--entry", choices=("both", "module", "script"), default="both")
    p.add_argument("--checkout", type=Path, action="append",
                   help="repository root whose streamguard runs (repeatable; default: this one)")
    args = p.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    entries = ["module", "script"] if args.entry == "both" else [args.entry]
    with tempfile.TemporaryDirectory(prefix="sg-startup-") as tmp:
        clip = args.clip.resolve() if args.clip else make_clip(Path(tmp) / "one-frame-1080p.mp4")
        out = Path(tmp) / "out.mp4"
        print(f"clip: {clip}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; "
              f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
        times = wall_times(checkouts, entries, clip, out, args.runs)
        for (checkout, entry), got in times.items():
            print(f"{entry:6s} {checkout}: median {statistics.median(got):.3f} s  "
                  f"(min {min(got):.3f}, max {max(got):.3f}; {len(got)} runs)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.phases > 0:
            for checkout in checkouts:
                _print_phases(checkout, clip, out, args.phases)


if __name__ == "__main__":
    main()
