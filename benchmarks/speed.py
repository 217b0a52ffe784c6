"""Speed against the transcode limit (and optionally deface), with recall, in one run.

    python benchmarks/speed.py                      # generated 30 s 720p and 1080p clips
    python benchmarks/speed.py --seconds 10 --presets balanced
    python benchmarks/speed.py --with-deface        # also the peer, in its own venv
    python benchmarks/speed.py my_clip.mp4          # any file (no recall without ground truth)

Every measurement runs in a fresh subprocess, so peak RSS is that run's own.
Rows: (a) "transcode": PyAV decode + x264 encode of the same file with the same
preset and CRF, the floor any anonymizer that re-encodes must pay; (b)
streamguard per preset, end to end; (c) deface at its defaults and downscaled.
Recall is measured on output pixels against the clip's ground truth: a face-frame
counts as covered when its face box is destroyed (tests/pixels.py measure), so
every tool is judged the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))


def make_clip(height: int, seconds: float) -> Path:
    """A clip with faces of mixed sizes (16-300 px at 1080p), cached in benchmarks/out."""
    from streamguard import synth

    width = height * 16 // 9
    path = OUT / f"speed_{height}p_{seconds:g}s.mp4"
    gt_path = path.with_suffix(".json")
    if path.exists() and gt_path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    k = height / 1080
    faces = []
    sizes = [300, 160, 96, 64, 48, 32, 24, 20]
    for i, s in enumerate(sizes):
        y = (140 + (i % 4) * 230) * k
        x0, x1 = (150 + 210 * i) * k, (150 + 210 * i + (80 if i % 2 else -80)) * k
        faces.append(
            synth.FaceTrack(i % 2, 0.0, seconds, ((0.0, x0, y, s * k), (seconds, x1, y + 20 * k, s * k)))
        )
    scene = synth.Scene(width=width, height=height, fps=30, duration=seconds, faces=tuple(faces), seed=12)
    tmp = path.with_name(".tmp-" + path.name)
    gt = synth.write_clip(tmp, scene, crf=20)
    gt.to_json(gt_path)
    os.replace(tmp, path)
    return path


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage: a child started with vfork reports its parent's peak there.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_transcode(src: str, dst: str, crf: int, preset: str) -> dict:
    import av

    t0 = time.perf_counter()
    n = 0
    with av.open(src) as ic, av.open(dst, "w") as oc:
        ivs = ic.streams.video[0]
        ivs.thread_type = "AUTO"
        ovs = oc.add_stream("libx264", rate=ivs.average_rate)
        ovs.width, ovs.height, ovs.pix_fmt = ivs.codec_context.width, ivs.codec_context.height, "yuv420p"
        ovs.time_base = ivs.time_base
        ovs.codec_context.time_base = ivs.time_base
        ovs.codec_context.options = {"crf": str(crf), "preset": preset}
        for f in ic.decode(ivs):
            for p in ovs.encode(f):
                oc.mux(p)
            n += 1
        for p in ovs.encode(None):
            oc.mux(p)
    dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "fps": n / dt, "rss_mb": _peak_rss_mb(), "stages": {}}


def worker_streamguard(src: str, dst: str, preset: str) -> dict:
    from streamguard import Config, DetectConfig, anonymize_video

    t0 = time.perf_counter()
    result = anonymize_video(src, dst, Config(detect=DetectConfig(preset=preset)), overwrite=True)
    dt = time.perf_counter() - t0
    s = result.stats
    return {
        "frames": s.frames_out,
        "seconds": dt,
        "fps": s.frames_out / dt,
        "rss_mb": _peak_rss_mb(),
        # The detect stage is SweepDetectStage or DetectStage depending on the options.
        "stages": {("detect" if "Detect" in k else k): v for k, v in s.ms_per_frame().items()},
    }


def run_worker(kind: str, *args: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def deface_python() -> Path:
    """deface in its own virtual environment (never a dependency of streamguard)."""
    venv = OUT / "deface-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "deface"], check=True)
    return py


def run_deface(src: Path, dst: Path, scale: str | None) -> dict:
    exe = deface_python().parent / "deface"
    cmd = [str(exe), str(src), "-o", str(dst), "--keep-audio"]
    if scale:
        cmd += ["--scale", scale]
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"deface failed: {r.stderr[-2000:]}")
    rss_kb = float(r.stderr.strip().splitlines()[-1])
    from tests.pixels import decode_rgb

    n = len(decode_rgb(dst))
    return {"frames": n, "seconds": dt, "fps": n / dt, "rss_mb": rss_kb / 1024, "stages": {}}


def recall(src: Path, out: Path, min_size: float = 0) -> dict[str, float]:
    """Share of ground-truth face-frames destroyed in ``out``, overall and for faces >= 32 px."""
    from streamguard.synth import GroundTruth
    from tests.pixels import face_similarity

    gt_path = src.with_suffix(".json")
    if not gt_path.exists():
        return {}
    gt = GroundTruth.from_json(gt_path)
    import av

    hits = {"all": [0, 0], ">=32": [0, 0]}
    with av.open(str(src)) as a, av.open(str(out)) as b:
        for f, fa, fb in zip(gt.frames, a.decode(video=0), b.decode(video=0), strict=False):
            ia, ib = fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
            for box in f.boxes:
                if box.height < min_size:
                    continue
                energy, corr = face_similarity(ia, ib, box)
                ok = energy < 0.2 and corr < 0.5
                for key in ("all", ">=32") if box.height >= 32 else ("all",):
                    hits[key][0] += ok
                    hits[key][1] += 1
    return {k: (h / n if n else float("nan")) for k, (h, n) in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--heights", default="720,1080")
    ap.add_argument("--presets", default="fast,balanced,thorough")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--preset", default="veryfast", help="x264 preset of the transcode row (streamguard's)")
    ap.add_argument("--with-deface", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args()
    if a.worker:
        params = [str(x) for x in a.files] + rest
        if a.worker == "transcode":
            res = worker_transcode(params[0], params[1], int(params[2]), params[3])
        else:
            res = worker_streamguard(params[0], params[1], params[2])
        print(json.dumps(res))
        return
    clips = list(a.files) or [make_clip(int(h), a.seconds) for h in a.heights.split(",")]
    rows = []
    for clip in clips:
        out = OUT / f"{clip.stem}.out.mp4"
        OUT.mkdir(exist_ok=True)
        base = run_worker("transcode", str(clip), str(out), str(a.crf), a.preset)
        rows.append((clip.name, "(a) transcode", base, {}))
        for preset in a.presets.split(","):
            res = run_worker("streamguard", str(clip), str(out), preset)
            rows.append((clip.name, f"(b) streamguard {preset}", res, recall(clip, out)))
        if a.with_deface:
            for scale in (None, "640x360"):
                res = run_deface(clip, out, scale)
                rows.append((clip.name, f"(c) deface {scale or 'default'}", res, recall(clip, out)))
        print_table([r for r in rows if r[0] == clip.name], base["fps"])
        sys.stdout.flush()


def print_table(rows: list, base_fps: float) -> None:
    cols = ("decode", "detect", "TrackStage", "Anonymizer", "encode")
    print(f"\n### {rows[0][0]}\n")
    head = " | ".join(f"{c} ms" for c in cols)
    print(f"| run | fps | x transcode | {head} | peak RSS MB | recall | recall >=32px |")
    print("|---" * (len(cols) + 6) + "|")
    for _, name, r, rec in rows:
        st = r["stages"]
        stage_ms = " | ".join(f"{st[c]:.1f}" if c in st else "-" for c in cols)
        rc = f"{rec['all']:.3f}" if rec else "-"
        rc32 = f"{rec['>=32']:.3f}" if rec else "-"
        ratio = r["fps"] / base_fps
        print(f"| {name} | {r['fps']:.1f} | {ratio:.2f} | {stage_ms} | {r['rss_mb']:.0f} | {rc} | {rc32} |")


if __name__ == "__main__":
    main()
