"""Where a video's CPU goes: per thread, and the model calls by what asked for them.

    python benchmarks/cpu.py benchmarks/out/real/media/towncentre.mp4
    python benchmarks/cpu.py CLIP --x264-preset medium --crf 25     # deface's encoder settings
    python benchmarks/cpu.py CLIP --checkout ../old                   # another checkout's code

Runs ``anonymize_video`` once on CLIP in this process (the defaults, or the encoder settings
given) and prints, in ms a frame:

* each thread's CPU time, read from ``/proc/self/task`` every 0.2 s and named from
  ``threading.enumerate()``: the tile workers, the stages' threads, the reader and writer;
  threads libav starts itself have no Python name and show as ``python`` (x264's encoder
  threads) or by their own (``av:h264:df``: the decoder's);
* the BlazeFace calls (a wrapper round ``BlazeFace.detect_peak``, thread CPU time of each
  call, pre- and post-processing included), grouped by model and by the function that asked:
  ``_run_tiles`` (the sweep's tiles and the crops around known faces), ``look_again`` (lost
  faces and weak finds looked at again), ``verify`` (second looks), ``detect_rolled`` (loading);
* the pipeline's own busy time per stage (``RunStats.busy``).

One run, in one process: the figures say where the time goes, not how fast a fresh command is
(``benchmarks/speed.py`` measures that). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Functions that ask for model calls, as the name to give them: the nearest caller on the stack
#: names the call. ``look_again``'s calls run in its ``best`` on the tile workers.
_CALLERS = {"verify": "verify", "best": "look_again", "look_again": "look_again",
            "_run_tiles": "_run_tiles", "detect_rolled": "detect_rolled"}


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_name
        if name in _CALLERS:
            return _CALLERS[name]
        frame = frame.f_back
    return "other"


class _ThreadCpu:
    """Each thread's CPU seconds, sampled from /proc/self/task until :meth:`stop`."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.seen: dict[str, tuple[str, float]] = {}
        self._done = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            try:
                comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended since the listing
            cpu = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
            old = self.seen.get(tid)
            name = old[0] if old else names.get(int(tid), comm)
            self.seen[tid] = (name, cpu)

    def _run(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(self.every)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        self._sample()
        by: dict[str, float] = collections.defaultdict(float)
        for name, cpu in self.seen.values():
            if name != "cpu-sampler":
                by[name.rstrip("0123456789_-")] += cpu  # a pool's threads together
        return dict(by)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--x264-preset", default=None, help="x264 preset (default: streamguard's)")
    ap.add_argument("--crf", type=int, default=None, help="x264 CRF (default: streamguard's)")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="the streamguard checkout to run")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.checkout.resolve()))

    from streamguard import api
    from streamguard.config import Config
    from streamguard.detect import blazeface

    calls: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    lock = threading.Lock()
    detect_peak = blazeface.BlazeFace.detect_peak

    def counted(self, image, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.thread_time()
        out = detect_peak(self, image, *a, **k)
        spent = time.thread_time() - t0
        with lock:
            c = calls[(self.model, _caller())]
            c[0] += 1
            c[1] += spent
        return out

    blazeface.BlazeFace.detect_peak = counted
    config = Config()
    encode = config.encode
    if args.x264_preset is not None:
        encode = dataclasses.replace(encode, preset=args.x264_preset)
    if args.crf is not None:
        encode = dataclasses.replace(encode, crf=args.crf)
    config = dataclasses.replace(config, encode=encode)

    with tempfile.TemporaryDirectory() as tmp:
        sampler = _ThreadCpu()
        t0 = time.perf_counter()
        result = api.anonymize_video(args.clip, Path(tmp) / f"out{args.clip.suffix}", config)
        wall = time.perf_counter() - t0
        threads = sampler.stop()
    n = max(1, result.stats.frames_out)
    total = sum(threads.values())
    frames = result.stats.frames_out
    print(f"{args.clip.name}: {frames} frames, {wall:.1f} s ({frames / wall:.1f} fps), "
          f"x264 {encode.preset} crf {encode.crf}; CPU {1000 * total / n:.0f} ms a frame")
    print("\n| thread | CPU ms/frame |\n|---|---|")
    for name, cpu in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1000 * cpu / n:.1f} |")
    print("\n| model | asked by | calls/frame | CPU ms/frame | ms/call |\n|---|---|---|---|---|")
    model_ms = 0.0
    for (model, caller), (count, spent) in sorted(calls.items(), key=lambda kv: -kv[1][1]):
        model_ms += 1000 * spent / n
        per_call = 1000 * spent / max(count, 1)
        print(f"| {model} | {caller} | {count / n:.2f} | {1000 * spent / n:.1f} | {per_call:.2f} |")
    print(f"| all | | | {model_ms:.1f} | |")
    print("\n| stage | busy ms/frame |\n|---|---|")
    for stage, ms in result.stats.ms_per_frame().items():
        print(f"| {stage} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
