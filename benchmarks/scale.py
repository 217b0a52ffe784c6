"""Scaling past one worker: chunks of one file and batches of files, local process pool and Ray.

    python benchmarks/scale.py                         # 60 s of 640x360, every run below
    python benchmarks/scale.py --seconds 120 --height 540
    python benchmarks/scale.py --runs pool1-file,pool2-chunks

The single pass already keeps both cores of a small machine busy (codec threads, two detector
threads), so "1 vs 2 workers" with default settings says little about a cluster. Here each
worker is held to one core: its decoder, encoder, detector and OpenCV threads set to 1 and the
process pinned to a core of its own (sched_setaffinity). Runs, each in a fresh process, wall
time from its start to its end (worker start-up, planning, chunk warm-up and the join included):

    pool1-file     one one-core worker process, the whole file in one piece
    pool2-chunks   two one-core workers, the file cut into two chunks, joined
    pool1-batch    one one-core worker, a batch of two files of half the length each
    pool2-batch    two one-core workers, the same batch
    ray1-file, ray2-chunks, ray2-batch
                   the same on a local Ray instance started by the run (num_cpus = workers);
                   "ray s" is the time to start it, counted in the wall time
    single         the default single pass (as `streamguard IN -o OUT`), nothing held to a core
    jobs2          `streamguard IN -o OUT --jobs 2` with its defaults (on a machine with no more
                   than 2 cores one file runs whole: the single pass uses both already)
    jobs2-cut      the same cut into two chunks (`--chunk-seconds` half the length)
    single-20s, jobs2-cut-20s
                   the same on a 20 s 240p file: the shortest that --jobs 2 would cut, and
                   the cheapest frames, so where the workers' start-up weighs most

Columns: wall s, fps (frames of the run / wall), speed-up over the one-worker run of the same
kind, scaling efficiency (speed-up / workers), load (mean 1-minute load average during the run:
one run of two workers adds about 2 on a 2-core machine, more means other work shared it);
busiest worker CPU s (CPU time of the worker process with the most work, its tasks only, not
its start-up) and CPU speed-up (the one-worker run's worker CPU over that): what the wall
speed-up would be if every worker had its core to itself, which other work on a shared machine
cannot disturb much.
Outputs go to benchmarks/out/scale (not committed); the clips are generated once and cached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "scale"
sys.path.insert(0, str(ROOT))

RUNS = (
    "pool1-file",
    "pool2-chunks",
    "pool1-batch",
    "pool2-batch",
    "ray1-file",
    "ray2-chunks",
    "ray2-batch",
    "single",
    "jobs2",
    "jobs2-cut",
    "single-20s",
    "jobs2-cut-20s",
)
#: The shortest file --jobs 2 cuts (2 x MIN_CHUNK_SECONDS), at a small size: where the workers'
#: start-up weighs most against the single pass.
THRESHOLD_CLIP = (20.0, 240)


def _scene(seconds: float, height: int, seed: int):
    from streamguard import synth

    w = round(height * 16 / 9 / 2) * 2
    s = height / 360

    def walk(sprite: int, t0: float, t1: float, y: float, size: float, x0: float, x1: float):
        return synth.FaceTrack(sprite, t0, t1, ((t0, x0 * s, y * s, size * s), (t1, x1 * s, y * s, size * s)))

    faces = []
    # Faces walking across, entering and leaving all the time (a crowd, not a talking head).
    period = 6.0
    t = 0.0
    k = 0
    while t < seconds:
        faces.append(walk(k % 2, t, min(seconds, t + 9), 120 + 40 * (k % 3), 40 + 25 * (k % 4), -40, 680))
        faces.append(
            walk((k + 1) % 2, t + 2, min(seconds, t + 12), 250 - 30 * (k % 2), 60 + 20 * (k % 3), 690, -50)
        )
        t += period
        k += 1
    return synth.Scene(width=w, height=height, fps=30, duration=seconds, seed=seed, faces=tuple(faces))


def clips(seconds: float, height: int) -> tuple[Path, list[Path]]:
    """The long file and a batch of two files of half its length (same total frames)."""
    from streamguard import synth

    OUT.mkdir(parents=True, exist_ok=True)
    long = OUT / f"long_{height}p_{seconds:g}s.mp4"
    halves = [OUT / f"half{i}_{height}p_{seconds / 2:g}s.mp4" for i in range(2)]
    if not long.exists():
        print(f"generating {long.name} ...", file=sys.stderr)
        synth.write_clip(long, _scene(seconds, height, 1))
    for i, p in enumerate(halves):
        if not p.exists():
            print(f"generating {p.name} ...", file=sys.stderr)
            synth.write_clip(p, _scene(seconds / 2, height, 2 + i))
    return long, halves


def threshold_clip() -> Path:
    from streamguard import synth

    seconds, height = THRESHOLD_CLIP
    path = OUT / f"short_{height}p_{seconds:g}s.mp4"
    if not path.exists():
        print(f"generating {path.name} ...", file=sys.stderr)
        synth.write_clip(path, _scene(seconds, height, 4))
    return path


# ------------------------------------------------------------------ one run (child process)


def child(name: str, long: Path, halves: list[Path], out: Path) -> dict:
    from streamguard import Config, anonymize_video
    from streamguard.parallel import BatchItem, ParallelOptions, run_parallel
    from streamguard.parallel.chunks import video_seconds
    from streamguard.parallel.cluster import RayPool
    from streamguard.parallel.executors import LocalPool
    from streamguard.parallel.scheduler import run_distributed
    from streamguard.parallel.tasks import WorkerOptions, claim_dir

    config = Config()
    t0 = time.perf_counter()
    result: dict = {"ray_s": None}
    if name.startswith("single"):
        r = anonymize_video(long, out / long.name, config)
        result.update(frames=r.stats.frames_out, workers=1, chunks=0)
    elif name.startswith("jobs2"):
        # jobs2: the defaults (one file on a 2-core machine runs whole); jobs2-cut: two chunks.
        cut = (video_seconds(long) or 0) / 2 if "cut" in name else None
        results, info = run_parallel([BatchItem(long, out / long.name)], config,
                                     ParallelOptions(jobs=2, chunk_seconds=cut))
        result.update(frames=sum(r.frames for r in results), workers=info.workers, chunks=info.chunks)
    else:
        workers = int(name[len("pool") if name.startswith("pool") else len("ray")])
        kind = name.split("-")[1]
        files = [long] if kind in ("file", "chunks") else halves
        items = [BatchItem(f, out / f.name) for f in files]
        chunk = (video_seconds(long) or 0) / 2 if kind == "chunks" else 0
        options = WorkerOptions(threads=1, pin=True, claim_dir=claim_dir())
        if name.startswith("pool"):

            def make():
                return LocalPool(workers, options)
        else:
            import ray

            t = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="error")
            result["ray_s"] = time.perf_counter() - t

            def make():
                return RayPool(None, cpus_per_task=1, options=options)

        try:
            results, info = run_distributed(items, config, make, chunk_seconds=chunk)
        finally:
            if name.startswith("ray"):
                import ray

                ray.shutdown()
            shutil.rmtree(options.claim_dir or "", ignore_errors=True)
        failed = [r for r in results if r.status != "done"]
        if failed:
            raise SystemExit(f"{name}: {failed}")
        result.update(
            frames=sum(r.frames for r in results),
            workers=workers,
            chunks=info.chunks,
            worker_cpu=sorted(info.worker_cpu.values(), reverse=True),
        )
    result["seconds"] = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------ driver


def run(name: str, long: Path, halves: list[Path]) -> dict:
    if name.endswith("-20s"):
        long = threshold_clip()
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            "--long",
            str(long),
            "--halves",
            *map(str, halves),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data.update(name=name, wall=wall, load=sum(loads) / len(loads) if loads else os.getloadavg()[0])
    shutil.rmtree(out, ignore_errors=True)
    return data


def _reference(name: str) -> str | None:
    """The one-worker run a run is compared with."""
    if name.startswith(("single", "jobs2")):
        return "single-20s" if name.endswith("-20s") else "single"
    kind = name.split("-")[1]
    if name.startswith("ray"):
        return "ray1-file" if kind in ("file", "chunks") else "pool1-batch"
    return "pool1-file" if kind in ("file", "chunks") else "pool1-batch"


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def table(rounds: list[dict[str, dict]]) -> str:
    """Median wall per run; speed-ups as the median of ratios within a round (runs close in time)."""
    names = list(rounds[0])
    lines = [
        "| run | workers | chunks | frames | wall s | ray s | fps | speed-up | efficiency | load "
        "| busiest worker CPU s | CPU speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        rs = [r[name] for r in rounds]
        r0 = rs[0]
        wall = _median([r["wall"] for r in rs])
        ref = _reference(name)
        speed = eff = ""
        if ref in rounds[0] and ref != name:
            ratios = [r[ref]["wall"] / r[name]["wall"] for r in rounds]
            s = _median(ratios)
            spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
            speed = f"{s:.2f}x{spread}"
            if not name.startswith("jobs2"):
                eff = f"{100 * s / r0['workers']:.0f}%"
        ray = [r["ray_s"] for r in rs if r.get("ray_s") is not None]
        ray_s = f"{_median(ray):.1f}" if ray else ""
        loads = ", ".join(f"{r['load']:.1f}" for r in rs)
        cpu = cpu_speed = ""
        if r0.get("worker_cpu"):
            cpu = f"{_median([r['worker_cpu'][0] for r in rs]):.1f}"
            if ref in rounds[0] and ref != name and rounds[0][ref].get("worker_cpu"):
                c = _median([sum(r[ref]["worker_cpu"]) / r[name]["worker_cpu"][0] for r in rounds])
                cpu_speed = f"{c:.2f}x"
        lines.append(
            f"| {name} | {r0['workers']} | {r0['chunks'] or ''} | {r0['frames']} | {wall:.1f} | {ray_s} | "
            f"{r0['frames'] / wall:.1f} | {speed} | {eff} | {loads} | {cpu} | {cpu_speed} |"
        )
    notes = []
    for a, b in (("pool2-chunks", "ray2-chunks"), ("pool2-batch", "ray2-batch"), ("pool1-file", "ray1-file")):
        if a in rounds[0] and b in rounds[0]:
            over = _median([r[b]["wall"] / r[a]["wall"] - 1 for r in rounds])
            over_run = _median([(r[b]["wall"] - (r[b]["ray_s"] or 0)) / r[a]["wall"] - 1 for r in rounds])
            notes.append(
                f"- Ray against the pool, {b} / {a}: {100 * over:+.1f}% wall, {100 * over_run:+.1f}% "
                "leaving out the start of the local Ray instance"
            )
    return "\n".join(lines + [""] + notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the long file (default 60)")
    ap.add_argument("--height", type=int, default=360, help="frame height (default 360, 16:9)")
    ap.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every run (median reported)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--long", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--halves", type=Path, nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.long, args.halves, args.out)))
        return
    names = args.runs.split(",")
    for name in names:
        if name not in RUNS:
            raise SystemExit(f"unknown run {name}; one of {', '.join(RUNS)}")
    long, halves = clips(args.seconds, args.height)
    rounds: list[dict[str, dict]] = []
    for k in range(args.repeat):
        rows: dict[str, dict] = {}
        for name in names:
            print(f"round {k + 1}: {name} ...", file=sys.stderr, flush=True)
            rows[name] = run(name, long, halves)
            print(f"  {rows[name]['wall']:.1f} s, load {rows[name]['load']:.1f}", file=sys.stderr, flush=True)
        rounds.append(rows)
    print(
        f"\n`python benchmarks/scale.py {' '.join(sys.argv[1:])}` ({args.seconds:g} s of "
        f"{long.name}; batch: 2 x {args.seconds / 2:g} s; {os.cpu_count()} cores; {args.repeat} round(s))\n"
    )
    print(table(rounds))


if __name__ == "__main__":
    main()
