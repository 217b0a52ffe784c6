"""Speed against the transcode limit (and optionally deface), with recall; and a long-run check.

Speed table (default mode):

    python benchmarks/speed.py                      # generated 30 s 720p and 1080p clips
    python benchmarks/speed.py --seconds 10 --heights 720 --presets balanced
    python benchmarks/speed.py --seconds 10 --heights 1080 --pan 60   # and a panning camera
    python benchmarks/speed.py --with-deface        # also the peer, in its own venv
    python benchmarks/speed.py my_clip.mp4          # any file (no recall without ground truth)
    python benchmarks/speed.py --real --presets balanced --x264-preset medium --crf 25 --with-deface
                                                    # the real clips (below), deface's encoder settings

Rows, all on the same clip: (a) "transcode": PyAV decode + libx264 encode of the same
file with streamguard's x264 preset and CRF (audio copied), the floor any anonymizer that
re-encodes must pay; with ``--no-detector``, (a2) streamguard's own pipeline with a
detector that finds nothing (decode, RGB for the detector, the tracker's window, encode): the
most any preset could reach if detection were free; (b) streamguard at each ``--presets``,
end to end; (c) with ``--with-deface``, deface (PyPI) at its defaults and with ``--scale``
downscaled to 640 px wide, both with ``--keep-audio``. deface is pip-installed on first use into
benchmarks/out/deface-venv (plain ``pip install deface``: its OpenCV DNN backend, and
its own bundled ffmpeg from imageio-ffmpeg for reading, writing and the audio copy); it
is never a dependency of streamguard. deface's defaults also mean its own encoder
settings (libx264 CRF 25, preset medium) and, for heights not divisible by 16, an
output scaled to the next multiple (1080 -> 1088); recall scales such frames back.

``--real`` measures real footage instead of generated clips: every video of the real-footage
benchmark (``benchmarks/real/media.json``, read out of the fetched snapshots by
``benchmarks/real.py``) and the speed-only real clips of ``benchmarks/real/speed_media.json``
(real camera footage, no ground truth: its recall is measured by ``real.py`` on the clips that
have some). Start-up is measured on its own: streamguard on the clip's first frame alone (same
size, same options); "fps run" is then frames / (wall - start-up). For each streamguard row, a
second table gives the detector's wall ms per frame against the faces it found on that frame:
how the cost grows with the number of faces in view, with the least-squares slope in ms per face.

Columns: frames out/in (an anonymizer must keep every frame); fps = frames / wall time
of the whole process, start-up included, measured the same way for every row; ratio to
(a); per-stage busy ms per frame (streamguard only: they overlap across threads);
CPU ms per frame (user + system of the process and its children: less sensitive than
fps to other work on the machine); peak RSS (the largest sum over the process tree,
sampled every 0.25 s, or the process's own VmHWM if larger); audio (packets copied);
recall on the clip's ground truth: the share of face-frames whose face box is destroyed
in the output pixels (tests/pixels.py measure: detail energy < 0.2 and correlation
< 0.5), overall and for faces >= 32 px. Recall of (a) is the control: an untouched
re-encode must score about 0. A missing output frame counts as a miss. "load" is the
mean 1-minute load average during the run; the run itself adds up to about 2 on a
2-core machine, so more than that means other work shared the CPUs.

Long-run check:

    python benchmarks/speed.py --long          # 10 minutes of 1080p
    python benchmarks/speed.py --long 1 --interval 30

generates (once, cached in benchmarks/out, not committed) a 1080p clip of that many
minutes by looping an 8 s generated segment with moving faces (packet copy, so it is
fast and nothing is held in memory), runs streamguard (``--long-preset``, default
balanced) on it in a worker process, samples the worker's RSS (/proc/<pid>/status
VmRSS) and frames done (streamguard's progress callback) every 2 s, prints a row
every ``--interval`` seconds (elapsed minute, frames, fps in that interval, RSS), and
a verdict: peak RSS, and the RSS slope over the second half of the run (MB per
minute and per 1000 frames, least squares); flat means below ``--flat-tol`` MB/min.

Every measurement runs in a fresh subprocess, so peak RSS is that run's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))

DEFACE_VENV = OUT / "deface-venv"
LONG_SEGMENT = 8.0  # seconds; a whole number of AAC frames (375 x 1024 samples at 48 kHz)


# ------------------------------------------------------------------ clips


def _speed_faces(height: int, seconds: float, *, periodic: bool = False) -> tuple:
    """Eight faces of 20-300 px (at 1080p; scaled with the height) drifting sideways."""
    from streamguard import synth

    k = height / 1080
    faces = []
    sizes = [300, 160, 96, 64, 48, 32, 24, 20]
    for i, s in enumerate(sizes):
        y = (140 + (i % 4) * 230) * k
        x0, x1 = (150 + 210 * i) * k, (150 + 210 * i + (80 if i % 2 else -80)) * k
        if periodic:  # there and back, so a looped segment has no jumps
            path = ((0.0, x0, y, s * k), (seconds / 2, x1, y + 20 * k, s * k), (seconds, x0, y, s * k))
        else:
            path = ((0.0, x0, y, s * k), (seconds, x1, y + 20 * k, s * k))
        faces.append(synth.FaceTrack(i % 2, 0.0, seconds, path))
    return tuple(faces)


def make_clip(height: int, seconds: float, pan: float = 0.0) -> Path:
    """A clip with faces of 20-300 px (at 1080p) and its ground truth, cached in benchmarks/out."""
    from streamguard import synth

    width = height * 16 // 9
    # pan: the camera moves (px/s), so every part of the picture changes on every frame.
    path = OUT / f"speed_{height}p_{seconds:g}s{f'_pan{pan:g}' if pan else ''}.mp4"
    gt_path = path.with_suffix(".json")
    if path.exists() and gt_path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    print(f"generating {path.name} ...", flush=True)
    scene = synth.Scene(width=width, height=height, fps=30, duration=seconds,
                        faces=_speed_faces(height, seconds), seed=12, pan=pan)
    tmp = path.with_name(".tmp-" + path.name)
    gt = synth.write_clip(tmp, scene, crf=20)
    gt.to_json(gt_path)
    os.replace(tmp, path)
    return path


def make_long_clip(minutes: float, height: int = 1080) -> Path:
    """At least ``minutes`` of video: an 8 s generated segment, its packets copied in a loop."""
    import av

    from streamguard import synth

    OUT.mkdir(exist_ok=True)
    loops = max(1, math.ceil(minutes * 60 / LONG_SEGMENT))
    path = OUT / f"long_{height}p_{loops * LONG_SEGMENT:g}s.mp4"
    if path.exists():
        return path
    segment = OUT / f"long_{height}p_segment.mp4"
    if not segment.exists():
        print(f"generating {segment.name} ...", flush=True)
        scene = synth.Scene(width=height * 16 // 9, height=height, fps=30, duration=LONG_SEGMENT,
                            faces=_speed_faces(height, LONG_SEGMENT, periodic=True), seed=12)
        tmp = segment.with_name(".tmp-" + segment.name)
        synth.write_clip(tmp, scene, crf=20)
        os.replace(tmp, segment)
    print(f"writing {path.name} ({loops} x {LONG_SEGMENT:g} s, packet copy) ...", flush=True)
    tmp = path.with_name(".tmp-" + path.name)
    with av.open(str(segment)) as template, av.open(str(tmp), "w") as oc:
        kept = [s for s in template.streams if s.type in ("video", "audio")]
        omap = {s.index: oc.add_stream_from_template(s) for s in kept}
        last_dts: dict[int, int] = {}
        for k in range(loops):
            with av.open(str(segment)) as ic:
                for p in ic.demux():
                    if p.dts is None or p.stream.index not in omap:
                        continue
                    off = round(k * LONG_SEGMENT / p.time_base)
                    p.dts += off
                    if p.pts is not None:
                        p.pts += off
                    # The AAC priming packet of each later loop overlaps the previous loop's end.
                    if p.dts <= last_dts.get(p.stream.index, -(2**62)):
                        continue
                    last_dts[p.stream.index] = p.dts
                    p.stream = omap[p.stream.index]
                    oc.mux(p)
    os.replace(tmp, path)
    return path


def _count_packets(path: Path, kind: str) -> int:
    import av

    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return 0
        return sum(1 for p in c.demux(streams[0]) if p.size)


def _frame_size(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.width, cc.height


# ------------------------------------------------------------------ measuring a process


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/*/stat parent ids)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            parent[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def tree_rss_mb(pids: list[int]) -> float:
    return sum(_status_kb(p, "VmRSS") for p in pids) / 1024


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall: float
    cpu: float  # user + system seconds of the process and its waited-for children
    peak_mb: float  # largest sampled sum of VmRSS over the process tree
    load: float  # mean 1-minute load average while it ran
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, tree RSS MB)


def run_measured(cmd: list[str], *, every: float = 0.25, env: dict | None = None, on_sample=None) -> Measured:
    """Run ``cmd`` to completion, sampling its process tree's RSS every ``every`` seconds.

    ``on_sample(pid, elapsed, rss_mb)`` is called after each sample (the long-run table).
    The tree is re-read from /proc at most once a second: a scan costs a few ms of CPU.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    loads, samples, peak, pids, scanned = [], [], 0.0, [], -1.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        while True:
            try:
                proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                pass
            el = time.perf_counter() - t0
            if el - scanned >= 1.0:
                pids, scanned = _tree(proc.pid), el
            rss = tree_rss_mb(pids)
            peak = max(peak, rss)
            samples.append((el, rss))
            loads.append(os.getloadavg()[0])
            if on_sample is not None:
                on_sample(proc.pid, el, rss)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = sum(loads) / len(loads) if loads else os.getloadavg()[0]
    return Measured(proc.returncode, stdout, stderr, wall, cpu, peak, load, samples)


# ------------------------------------------------------------------ workers (run in a subprocess)


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage: a child started with vfork reports its parent's peak there.
    hwm = _status_kb(os.getpid(), "VmHWM") / 1024
    return hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_transcode(src: str, dst: str, crf: int, preset: str) -> dict:
    import av

    n = 0
    with av.open(src) as ic, av.open(dst, "w") as oc:
        ivs = ic.streams.video[0]
        ivs.thread_type = "AUTO"
        ovs = oc.add_stream("libx264", rate=ivs.average_rate)
        ovs.width, ovs.height, ovs.pix_fmt = ivs.codec_context.width, ivs.codec_context.height, "yuv420p"
        ovs.time_base = ivs.time_base
        ovs.codec_context.time_base = ivs.time_base
        ovs.codec_context.options = {"crf": str(crf), "preset": preset}
        audio = {s.index: oc.add_stream_from_template(s) for s in ic.streams.audio[:1]}
        for packet in ic.demux(ivs, *ic.streams.audio[:1]):
            if packet.stream.index in audio:
                if packet.dts is not None:
                    packet.stream = audio[packet.stream.index]
                    oc.mux(packet)
                continue
            for f in packet.decode():
                oc.mux(ovs.encode(f))
                n += 1
        oc.mux(ovs.encode(None))
    return {"frames": n, "rss_mb": _peak_rss_mb(), "stages": {}}


class _NoFaces:
    """A detector that finds nothing, for the ``--no-detector`` row: streamguard's own pipeline
    (decode, RGB for the detector, the tracker's window, encode) with detection free."""

    threshold = None

    def detect(self, image: object) -> list:
        return []

    def close(self) -> None:
        pass


def _timed(detector: object) -> list[tuple[float, int]]:
    """Wrap ``detector.detect`` so each call's wall ms and number of faces found are recorded."""
    calls: list[tuple[float, int]] = []
    inner = detector.detect

    def detect(image, *args, **kwargs):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        found = inner(image, *args, **kwargs)
        calls.append((1000 * (time.perf_counter() - t0), len(found)))
        return found

    detector.detect = detect
    return calls


def worker_streamguard(src: str, dst: str, preset: str, crf: str, x264: str, progress_file: str = "") -> dict:
    from streamguard import Config, DetectConfig, anonymize_video
    from streamguard.config import EncodeConfig
    from streamguard.detect import create_detector

    progress = None
    if progress_file:
        tmp = progress_file + ".tmp"

        def progress(n: int) -> None:
            if n % 15 == 0:
                Path(tmp).write_text(str(n))
                os.replace(tmp, progress_file)

    none = preset == "no-detector"
    config = Config(detect=DetectConfig(preset="balanced" if none else preset),
                    encode=EncodeConfig(crf=int(crf), preset=x264))
    # The detector the run would create itself, so its cost per call can be recorded (it counts
    # in the start-up the same way).
    detector = _NoFaces() if none else create_detector(config.detect)
    calls = _timed(detector)
    try:
        result = anonymize_video(src, dst, config, overwrite=True, progress=progress, detector=detector)
    finally:
        detector.close()
    s = result.stats
    return {
        "calls": calls,
        "frames": s.frames_out,
        "rss_mb": _peak_rss_mb(),
        # The detect stage is SweepDetectStage or DetectStage depending on the options.
        "stages": {("detect" if "Detect" in k else k): v for k, v in s.ms_per_frame().items()},
    }


def worker_main(argv: list[str]) -> None:
    kind, params = argv[0], argv[1:]
    if kind == "transcode":
        res = worker_transcode(params[0], params[1], int(params[2]), params[3])
    else:
        res = worker_streamguard(*params)
    print(json.dumps(res))


def run_worker(kind: str, *args: str, on_sample=None, every: float = 0.25) -> tuple[dict, Measured]:
    cmd = [sys.executable, __file__, "--worker", kind, *args]
    m = run_measured(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, on_sample=on_sample, every=every)
    if m.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{m.stderr[-2000:]}")
    res = json.loads(m.stdout.strip().splitlines()[-1])
    return res, m


# ------------------------------------------------------------------ deface


def deface_exe() -> list[str]:
    """The command that runs deface in its own virtual environment (never a dependency of
    streamguard): its script run by the venv's python, not through its first line, which names
    the folder the venv was made in (a venv made from a worktree kept that worktree's path)."""
    exe = DEFACE_VENV / "bin" / "deface"
    if not exe.exists():
        print(f"installing deface into {DEFACE_VENV} ...", flush=True)
        OUT.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(DEFACE_VENV)], check=True)
        pip = [str(DEFACE_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "deface"]
        subprocess.run(pip, check=True)
    return [str(DEFACE_VENV / "bin" / "python"), str(exe)]


def deface_version() -> str:
    r = subprocess.run([*deface_exe(), "--version"], capture_output=True, text=True)
    return r.stdout.strip() or r.stderr.strip()


def run_deface(src: Path, dst: Path, scale: str | None) -> tuple[dict, Measured]:
    cmd = [*deface_exe(), str(src), "-o", str(dst), "--keep-audio"]
    if scale:
        cmd += ["--scale", scale]
    dst.unlink(missing_ok=True)
    m = run_measured(cmd)
    log = dst.with_suffix(".log")
    log.write_text(m.stderr.replace("\r", "\n") + m.stdout)
    # deface prints "Could not open file ..." and exits 0 when imageio cannot read the input.
    if m.returncode != 0 or not dst.exists():
        tail = m.stdout[-1000:] + m.stderr[-1000:]
        raise RuntimeError(f"deface failed ({m.returncode}), see {log}:\n{tail}")
    return {"frames": _count_packets(dst, "video"), "rss_mb": 0.0, "stages": {}}, m


def deface_scale(src: Path) -> str:
    """deface's downscale, as its README advises: 640 px wide, aspect ratio kept."""
    w, h = _frame_size(src)
    return f"640x{max(2, round(640 * h / w))}"


# ------------------------------------------------------------------ recall


def recall(src: Path, out: Path) -> dict[str, float]:
    """Share of ground-truth face-frames destroyed in ``out``, overall and for faces >= 32 px.

    Output frames are matched to the source by index; a missing one counts as a miss. An
    output of another size (deface rounds heights up to a multiple of 16) is scaled back.
    """
    import av
    import cv2

    from streamguard.synth import GroundTruth
    from tests.pixels import face_similarity

    gt_path = src.with_suffix(".json")
    if not gt_path.exists():
        return {}
    gt = GroundTruth.from_json(gt_path)
    hits = {"all": [0, 0], ">=32": [0, 0]}
    with av.open(str(src)) as a, av.open(str(out)) as b:
        out_frames = b.decode(video=0)
        for f, fa in zip(gt.frames, a.decode(video=0), strict=False):
            fb = next(out_frames, None)
            ia = fa.to_ndarray(format="rgb24")
            ib = None if fb is None else fb.to_ndarray(format="rgb24")
            if ib is not None and ib.shape != ia.shape:
                ib = cv2.resize(ib, (ia.shape[1], ia.shape[0]), interpolation=cv2.INTER_AREA)
            for box in f.boxes:
                ok = False
                if ib is not None:
                    energy, corr = face_similarity(ia, ib, box)
                    ok = energy < 0.2 and corr < 0.5
                for key in ("all", ">=32") if box.height >= 32 else ("all",):
                    hits[key][0] += ok
                    hits[key][1] += 1
    return {k: (h / n if n else float("nan")) for k, (h, n) in hits.items()}


# ------------------------------------------------------------------ speed table


def real_clips() -> list[Path]:
    """The real benchmark's videos and the speed-only real clips, materialized from the fetched
    snapshots (see benchmarks/real.py; a missing snapshot is named in one line)."""
    import real

    media_dir = real.DEFAULT_OUT / "media"
    media = [m for m in real.load_media() if m.kind == "video"]
    media += real.load_media(real.REAL / "speed_media.json")
    clips = []
    for m in media:
        path = real.materialize(m, media_dir)
        if path is None:
            raise SystemExit(f"speed.py: {m.repo} is not fetched (python benchmarks/real.py fetch)")
        clips.append(path)
    # Largest first: the 1080p clips are what the goal is about.
    return sorted(clips, key=lambda p: -_frame_size(p)[1])


def first_frame_clip(clip: Path) -> Path:
    """``clip``'s first frame alone (same size, same rotation), for the start-up row."""
    import av

    out = OUT / f"{clip.stem}.first-frame.mp4"
    if out.exists():
        return out
    with av.open(str(clip)) as ic, av.open(str(out), "w") as oc:
        ivs = ic.streams.video[0]
        ovs = oc.add_stream("libx264", rate=ivs.average_rate or 25)
        ovs.width, ovs.height, ovs.pix_fmt = ivs.codec_context.width, ivs.codec_context.height, "yuv420p"
        frame = next(ic.decode(ivs))
        frame.pts = None
        oc.mux(ovs.encode(frame))
        oc.mux(ovs.encode(None))
    return out


def faces_table(rows: list[Row]) -> None:
    """Detector wall ms per frame against the faces it found, per streamguard row."""
    buckets = ((0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 10**6))
    for r in rows:
        calls = r.res.get("calls") or []
        if not calls:
            continue
        print(f"\n{r.name}: detector ms per frame by faces found on it")
        print("\n| faces | frames | mean ms | median ms |\n|---|---|---|---|")
        for lo, hi in buckets:
            ms = sorted(m for m, n in calls if lo <= n <= hi)
            if ms:
                label = f"{lo}" if lo == hi else (f">={lo}" if hi > 1000 else f"{lo}-{hi}")
                print(f"| {label} | {len(ms)} | {sum(ms) / len(ms):.1f} | {ms[len(ms) // 2]:.1f} |")
        n = [c[1] for c in calls]
        if len(set(n)) > 1:
            mn, mm = sum(n) / len(n), sum(c[0] for c in calls) / len(calls)
            slope = (sum((f - mn) * (m - mm) for m, f in calls) / sum((f - mn) ** 2 for f in n))
            print(f"\nslope {slope:.2f} ms per face found (mean {mm:.1f} ms at {mn:.1f} faces)")


def speed_mode(a: argparse.Namespace) -> None:
    if a.real:
        clips = list(a.files) + real_clips()
    else:
        clips = list(a.files) or [make_clip(int(h), a.seconds, pan) for h in a.heights.split(",")
                                  for pan in ([0.0, a.pan] if a.pan else [0.0])]
    if a.with_deface:
        print(f"deface {deface_version()} from {DEFACE_VENV}", flush=True)
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    OUT.mkdir(exist_ok=True)
    for clip in clips:
        frames_in = _count_packets(clip, "video")
        print(f"\n{clip.name}: {frames_in} frames", flush=True)
        rows: list[Row] = []
        out = OUT / f"{clip.stem}.transcode.mp4"
        res = run_worker("transcode", str(clip), str(out), str(a.crf), a.x264_preset)
        rows.append(measure_row("(a) transcode", clip, out, *res, with_recall=a.recall))
        if a.no_detector:
            out = OUT / f"{clip.stem}.no-detector.mp4"
            res = run_worker("streamguard", str(clip), str(out), "no-detector", str(a.crf), a.x264_preset)
            rows.append(measure_row("(a2) pipeline, no detector", clip, out, *res, with_recall=a.recall))
        for preset in a.presets.split(","):
            first = first_frame_clip(clip)
            out = OUT / f"{first.stem}.sg-{preset}.mp4"
            args = (preset, str(a.crf), a.x264_preset)
            startup = run_worker("streamguard", str(first), str(out), *args)[1].wall
            out = OUT / f"{clip.stem}.sg-{preset}.mp4"
            res = run_worker("streamguard", str(clip), str(out), preset, str(a.crf), a.x264_preset)
            rows.append(measure_row(f"(b) streamguard {preset}", clip, out, *res, with_recall=a.recall))
            rows[-1].startup = startup
        if a.with_deface:
            for scale in (None, deface_scale(clip)):
                out = OUT / f"{clip.stem}.deface-{scale or 'default'}.mp4"
                name = f"(c) deface {'--scale ' + scale if scale else 'defaults'}"
                rows.append(measure_row(name, clip, out, *run_deface(clip, out, scale), with_recall=a.recall))
        print_table(clip.name, rows)
        faces_table(rows)
        sys.stdout.flush()


def measure_row(name: str, clip: Path, out: Path, res: dict, m: Measured, *, with_recall: bool) -> Row:
    row = Row(name, res, m, _count_packets(clip, "video"), _count_packets(clip, "audio"),
              _count_packets(out, "audio"), recall(clip, out) if with_recall else {}, _frame_size(out))
    print(f"  {name}: {row.fps:.1f} fps, {res['frames']}/{row.frames_in} frames, "
          f"peak {row.rss:.0f} MB, load {m.load:.1f}", flush=True)
    return row


@dataclass
class Row:
    name: str
    res: dict
    m: Measured
    frames_in: int
    audio_in: int
    audio_out: int
    recall: dict
    out_size: tuple[int, int]
    #: Wall seconds of the same command on the clip's first frame alone (streamguard rows).
    startup: float | None = None

    @property
    def fps_run(self) -> float:
        """Frames per second of wall time after start-up."""
        return self.res["frames"] / max(1e-6, self.m.wall - (self.startup or 0.0))

    @property
    def fps(self) -> float:
        return self.res["frames"] / self.m.wall

    @property
    def rss(self) -> float:
        return max(self.m.peak_mb, self.res.get("rss_mb", 0.0))


def print_table(title: str, rows: list[Row]) -> None:
    cols = ("decode", "detect", "TrackStage", "Anonymizer", "encode")
    base = rows[0].fps
    print(f"\n### {title}\n")
    head = " | ".join(f"{c.removesuffix('Stage').removesuffix('r').lower()} ms" for c in cols)
    print(f"| run | frames | fps | x transcode | start-up s | fps run | {head} | CPU ms/frame | peak RSS MB "
          f"| audio | recall | recall >=32px | load |")
    print("|---" * (len(cols) + 12) + "|")
    for r in rows:
        st = r.res["stages"]
        stage_ms = " | ".join(f"{st[c]:.1f}" if c in st else "-" for c in cols)
        rc = f"{r.recall['all']:.3f}" if r.recall else "-"
        rc32 = f"{r.recall['>=32']:.3f}" if r.recall else "-"
        audio = "copied" if r.audio_out == r.audio_in else f"{r.audio_out}/{r.audio_in}"
        audio = audio if r.audio_in else "-"
        cpu = 1000 * r.m.cpu / max(1, r.res["frames"])
        start = f"{r.startup:.2f} | {r.fps_run:.1f}" if r.startup is not None else "- | -"
        print(f"| {r.name} | {r.res['frames']}/{r.frames_in} | {r.fps:.1f} | {r.fps / base:.2f} | {start} "
              f"| {stage_ms} | {cpu:.0f} | {r.rss:.0f} | {audio} | {rc} | {rc32} | {r.m.load:.1f} |")
    for r in rows:
        if r.res["frames"] != r.frames_in:
            print(f"\nNOTE {r.name}: wrote {r.res['frames']} frames for {r.frames_in} in.")
    sizes = {r.out_size for r in rows}
    if len(sizes) > 1:
        what = ", ".join(f"{r.name} {r.out_size[0]}x{r.out_size[1]}" for r in rows)
        print(f"\nNOTE output sizes differ: {what} (recall scales back to the source size).")


# ------------------------------------------------------------------ long run


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def long_mode(a: argparse.Namespace) -> None:
    clip = make_long_clip(a.long)
    frames_in = _count_packets(clip, "video")
    out = OUT / f"{clip.stem}.out.mp4"
    progress_file = OUT / f"{clip.stem}.progress"
    progress_file.unlink(missing_ok=True)
    print(f"\n### long run: streamguard {a.long_preset} on {clip.name} ({frames_in} frames, "
          f"{frames_in / 30 / 60:.1f} min), {os.cpu_count()} CPUs, load before {os.getloadavg()[0]:.2f}\n")
    print("| minute | frames | fps in interval | RSS MB | peak RSS MB | load |")
    print("|---|---|---|---|---|---|")
    points: list[tuple[float, int, float]] = []  # (seconds, frames, RSS MB)
    state = {"next": a.interval, "t": 0.0, "frames": 0, "hwm": 0.0}

    def frames_done() -> int:
        try:
            return int(progress_file.read_text() or 0)
        except (OSError, ValueError):
            return points[-1][1] if points else 0

    def on_sample(pid: int, el: float, rss: float) -> None:
        n = frames_done()
        points.append((el, n, rss))
        state["hwm"] = max(state["hwm"], _status_kb(pid, "VmHWM") / 1024)
        if el >= state["next"]:
            fps = (n - state["frames"]) / (el - state["t"])
            print(f"| {el / 60:.1f} | {n} | {fps:.1f} | {rss:.0f} | {max(state['hwm'], rss):.0f} "
                  f"| {os.getloadavg()[0]:.1f} |", flush=True)
            state.update(next=state["next"] + a.interval, t=el, frames=n)

    res, m = run_worker("streamguard", str(clip), str(out), a.long_preset, str(a.crf), a.x264_preset,
                        str(progress_file), on_sample=on_sample, every=a.sample_every)
    n = res["frames"]
    fps = (n - state["frames"]) / max(1e-9, m.wall - state["t"])
    print(f"| {m.wall / 60:.1f} (end) | {n} | {fps:.1f} | - | {max(res['rss_mb'], m.peak_mb):.0f} "
          f"| {os.getloadavg()[0]:.1f} |")
    # Only samples while frames were flowing: start-up and tear-down are not growth.
    half = [p for p in points if p[0] >= m.wall / 2 and 0 < p[1] < n]
    per_min = _slope([(t / 60, r) for t, _, r in half])
    per_kframe = _slope([(f / 1000, r) for _, f, r in half if f > 0])
    peak = max(res["rss_mb"], m.peak_mb)
    rss_half = [r for _, _, r in half]
    flat = not math.isnan(per_min) and per_min < a.flat_tol
    print(f"\n{n}/{frames_in} frames in {m.wall / 60:.1f} min: {n / m.wall:.1f} fps overall, "
          f"CPU {1000 * m.cpu / max(1, n):.0f} ms/frame, mean load {m.load:.1f}")
    print(f"peak RSS {peak:.0f} MB (VmHWM {res['rss_mb']:.0f} MB): "
          f"{'under' if peak < a.rss_limit else 'OVER'} the {a.rss_limit:.0f} MB goal")
    if rss_half:
        print(f"second half: RSS {min(rss_half):.0f}-{max(rss_half):.0f} MB, slope {per_min:+.2f} MB/min, "
              f"{per_kframe:+.2f} MB per 1000 frames ({len(half)} samples)")
    print(f"verdict: RSS {'FLAT' if flat else 'GROWS'} (tolerance {a.flat_tol:g} MB/min); "
          f"peak {'OK' if peak < a.rss_limit else 'OVER'}")
    progress_file.unlink(missing_ok=True)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    from streamguard.config import EncodeConfig

    enc = EncodeConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="clips to measure instead of the generated ones")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the generated clips (default 30)")
    ap.add_argument("--pan", type=float, default=0.0, metavar="PX_PER_S",
                    help="also a moving-camera clip per height, panning this fast (fixed cameras let "
                    "streamguard skip tiles where nothing changed; a pan changes every tile)")
    ap.add_argument("--heights", default="720,1080", help="heights of the generated clips (default 720,1080)")
    ap.add_argument("--presets", default="fast,balanced,thorough",
                    help="streamguard presets (comma-separated)")
    ap.add_argument("--crf", type=int, default=enc.crf, help=f"x264 CRF of (a) and (b) (default {enc.crf})")
    ap.add_argument("--x264-preset", "--preset", default=enc.preset,
                    help=f"x264 preset of (a) and (b) (default streamguard's, {enc.preset})")
    ap.add_argument("--with-deface", action="store_true",
                    help="add deface rows (installs it into its own venv)")
    ap.add_argument("--no-detector", action="store_true",
                    help="add streamguard's pipeline with a detector that finds nothing: the most any "
                    "preset could reach with detection free")
    ap.add_argument("--no-recall", dest="recall", action="store_false", help="skip the recall columns")
    ap.add_argument("--real", action="store_true",
                    help="measure the real clips (benchmarks/real/media.json videos and speed_media.json)")
    g = ap.add_argument_group("long-run check")
    g.add_argument("--long", type=float, nargs="?", const=10.0, metavar="MINUTES",
                   help="run the long-run check on MINUTES of generated 1080p instead (default 10)")
    g.add_argument("--long-preset", default="balanced", help="streamguard preset of the long run")
    g.add_argument("--interval", type=float, default=60.0, help="seconds between table rows (default 60)")
    g.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples (default 2)")
    g.add_argument("--flat-tol", type=float, default=1.0,
                   help="second-half RSS slope, MB/min, under which RSS counts as flat (default 1)")
    g.add_argument("--rss-limit", type=float, default=600.0, help="peak RSS goal in MB (default 600)")
    a = ap.parse_args(argv)
    if a.long is not None:
        if a.files:
            ap.error("--long runs on its own generated clip; give no files")
        long_mode(a)
    else:
        speed_mode(a)


if __name__ == "__main__":
    main()
