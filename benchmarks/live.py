"""Live mode in real time: fps, dropped frames, latency, CPU and faces exposed, with and without a
stalling detector.

    python benchmarks/live.py                          # 640x480 and 1280x720, 30 s each
    python benchmarks/live.py --seconds 10 --sizes 1280x720
    python benchmarks/live.py --detection balanced     # another preset than the live default
    python benchmarks/live.py --modes normal,wait      # the default against live --wait

A 10 s labelled clip per size (real public-domain faces from :mod:`streamguard.synth`, cached in
``benchmarks/out/live``) is played by the stand-in camera at 30 fps on the wall clock, looping, for
``--seconds``; the session records its output with the live recorder. Each run is its own
subprocess, so CPU use is that run's own (process CPU seconds / wall seconds; 100% = one core).

Faces (heights in pixels at both sizes): a 180 px meeting participant swaying, 80 px walking across,
40 px and 32 px nearly still, 110 px moving fast (~190/380 px/s at 640/1280 wide) from 5 to 9 s,
a 64 px face that appears out of nowhere at 3 s and one of 60 px that walks in through the left
edge at 1 s. The clip loops every 10 s: the faces jump back, a new "segment" for the session.

Columns:
  latency     capture timestamp -> every sink handed the frame (p50 / p95), ms
  exposed     face-frames (faces >= 32 px, clear of other heads) not covered: face box < 90%
              inside the covered ellipses (regions) of a frame that was not curtained, over all
              output frames;
              "new" are those in a face's first 0.5 s on screen (without waiting for a look,
              nothing covers a face before the detector has seen it once)
  pixels      the same judged on the recorded file's pixels (tests/pixels.py face_similarity:
              destroyed = detail energy < 0.2 and correlation < 0.5; on curtained frames the
              notice text along the bottom adds energy of its own, so there a face reaching into
              it is judged above it, or by correlation alone if less than half is above)
  raw         frames that reached a sink unprotected, or not curtained although (waiting) no look at
              the frame or a newer one covered it, or (not waiting) detection had
              delivered nothing for longer than --max-detect-age: must be 0
  moving      mean share of the picture covered whole as "changed since the last look" (not waiting)

Modes: normal (the live default: frames shown at once, what changed since the last look covered
whole), stall (the same with a detector that sleeps 1 s every 5 s) and wait (live --wait).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "live"
sys.path.insert(0, str(ROOT))

from tests.fakes import StallingDetector  # noqa: E402  (the same stall the tests inject)

CLIP_SECONDS = 10.0
FPS = 30
MIN_FACE = 32
COVERED = 0.9
NEW = 0.5  # seconds after a face appears in which the detector may not have seen it yet
#: A face box more than this share of which lies under a head pasted after it is left out: that
#: head hides part of it, and the detector rightly boxes only the visible part.
OVERLAP = 0.05


def scene(width: int, height: int):
    from streamguard import synth

    def at(fx: float, fy: float) -> tuple[float, float]:
        return fx * width, fy * height

    d = CLIP_SECONDS
    # Paths keep faces mostly apart at 640x480 (sizes are pixels at both sizes); face-frames that
    # are still partly hidden by another head are left out of the count (see OVERLAP).
    faces = (
        synth.FaceTrack(0, 0.0, d, ((0.0, *at(0.30, 0.45), 180), (d / 2, *at(0.36, 0.47), 190),
                                    (d, *at(0.30, 0.45), 180))),
        synth.FaceTrack(1, 0.0, d, ((0.0, *at(0.10, 0.10), 80), (d, *at(0.90, 0.10), 80))),
        synth.FaceTrack(0, 0.0, d, ((0.0, *at(0.62, 0.30), 40), (d, *at(0.55, 0.32), 40))),
        synth.FaceTrack(1, 0.0, d, ((0.0, *at(0.85, 0.30), 32), (d, *at(0.88, 0.30), 32))),
        synth.FaceTrack(0, 3.0, 7.5, ((3.0, *at(0.85, 0.55), 64), (7.5, *at(0.75, 0.55), 64))),
        synth.FaceTrack(1, 5.0, 9.0, ((5.0, *at(0.15, 0.88), 110), (7.0, *at(0.75, 0.82), 110),
                                      (9.0, *at(0.20, 0.88), 110))),
        synth.FaceTrack(0, 1.0, 6.0, ((1.0, -30.0, 0.65 * height, 60), (3.0, *at(0.08, 0.65), 60),
                                      (6.0, *at(0.09, 0.65), 60))),
    )
    return synth.Scene(width=width, height=height, fps=FPS, duration=d, faces=faces, seed=21)


def make_clip(width: int, height: int) -> Path:
    from streamguard import synth

    path = OUT / f"clip_{width}x{height}.mp4"
    gt_path = path.with_suffix(".json")
    if path.exists() and gt_path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    gt = synth.write_clip(tmp, scene(width, height), audio=False, crf=18)
    gt.to_json(gt_path)
    os.replace(tmp, path)
    return path


def _coverage(shape: tuple[int, int], faces, box, areas=()) -> float:
    """Share of ``box`` inside the union of the ellipses covered for ``faces`` (region face boxes)
    and the rectangles ``areas`` (moving parts covered whole)."""
    import cv2
    import numpy as np

    from streamguard.anonymize import head_box

    h, w = shape
    x1, y1, x2, y2 = (int(round(v)) for v in (box.x1, box.y1, box.x2, box.y2))
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, max(x2, x1 + 1)), min(h, max(y2, y1 + 1))
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    for f in faces:
        e = head_box(f, 0.5)
        cx, cy = e.center
        axes = (max(1, round(e.width * 8)), max(1, round(e.height * 8)))
        centre = (round((cx - x1) * 16), round((cy - y1) * 16))  # 4 fractional bits
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, 4)
    for a in areas:
        ax1, ay1, ax2, ay2 = a.as_int()
        mask[max(0, ay1 - y1):max(0, ay2 - y1), max(0, ax1 - x1):max(0, ax2 - x1)] = 1
    return float(mask.mean()) if mask.size else 1.0


def _head(face):
    """Where a pasted synth sprite is mostly opaque: its crop (2 face widths wide, 2.1 face heights
    tall, centred a little above the face) shrunk to 80%."""
    from streamguard.types import Box

    cx, cy = face.center
    return Box.from_center(cx, cy - 0.1 * face.height, 1.6 * face.width, 1.68 * face.height)


def _task_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every thread of this process (Linux), with its kernel name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{t}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/self/task/{t}/comm").read_text().strip()
        except OSError:
            continue
        out[int(t)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _roles(samples: list, main_tid: int | None) -> dict[str, float]:
    """CPU ms per output frame of each role (and per detector run for "detect") between samples."""
    if len(samples) < 2:
        return {}
    (a, det_a, out_a, ta, _), (b, det_b, out_b, tb, names) = samples
    cpu: dict[str, float] = {}
    for tid, (comm, secs) in b.items():
        name = names.get(tid, comm)
        if tid == main_tid:
            role = "output"
        elif name == "streamguard-live-detect":
            role = "detect"
        elif name == "streamguard-live-capture":
            role = "capture"
        elif name == "streamguard-live-record":
            role = "record"
        else:
            role = "other"  # libav's decoder and x264's threads, Python's own
        cpu[role] = cpu.get(role, 0.0) + secs - a.get(tid, (comm, 0.0))[1]
    frames, runs = max(1, out_b - out_a), max(1, det_b - det_a)
    out = {k: 1000 * v / frames for k, v in cpu.items() if k != "detect"}
    out["detect_per_run"] = 1000 * cpu.get("detect", 0.0) / runs
    out["detect_share"] = cpu.get("detect", 0.0) / (tb - ta)
    return out


def _judged(boxes) -> list:
    """The face boxes that count: >= MIN_FACE px tall, and not under a head pasted later (synth
    pastes faces in the order of the ground-truth boxes)."""
    # A face cut by the frame edge to a sliver (< 8 px wide) shows nothing to recognise, nor to measure.
    return [b for i, b in enumerate(boxes) if b.height >= MIN_FACE and b.width >= 8
            and not any(_head(o).intersection(b) > OVERLAP * b.area for o in boxes[i + 1:])]


def _appeared(sc, t: float, box) -> float:
    """Seconds since the face at ``box`` (time ``t`` in the clip) came on screen."""
    best, since = float("inf"), float("inf")
    cx, cy = box.center
    for tr in sc.faces:
        st = tr.state(t)
        if st is None:
            continue
        d = (st[0] - cx) ** 2 + (st[1] - cy) ** 2
        if d < best:
            # A face walking in through an edge comes on screen when its box first touches the frame.
            start = tr.start
            for k in range(int(tr.start * FPS), int(t * FPS) + 1):
                s = tr.state(k / FPS)
                if s is not None and s[0] + s[2] / 2 > 0 and s[1] + s[2] / 2 > 0:
                    start = k / FPS
                    break
            best, since = d, t - start
    return since


def worker(size: str, mode: str, seconds: float, detection: str, max_age: float) -> dict:
    import av
    import numpy as np

    from streamguard.config import Config, DetectConfig
    from streamguard.live import LiveSession, RecordSink, StandInCamera, create_live_detector, draw_notice
    from streamguard.synth import GroundTruth
    from streamguard.types import Box
    from tests.pixels import face_similarity

    w, h = (int(v) for v in size.split("x"))
    clip = OUT / f"clip_{w}x{h}.mp4"
    gt = GroundTruth.from_json(clip.with_suffix(".json"))
    sc = scene(w, h)

    class Camera(StandInCamera):
        positions: list[int] = []

        def read(self, stop):
            f = super().read(stop)
            if f is not None:
                self.positions.append(self.position)
            return f

    config = Config(detect=DetectConfig(preset=detection))
    det = create_live_detector(config.detect)
    # The detector alone on a clip frame, for scale: what one run costs without the session around it.
    with av.open(str(clip)) as c:
        still = next(c.decode(video=0)).to_ndarray(format="rgb24")
    alone = []
    for _ in range(8):
        t = time.monotonic()
        det.detect(still)
        alone.append(time.monotonic() - t)
    detect_alone = 1000 * float(np.median(alone[1:]))
    if mode == "stall":
        det = StallingDetector(det, every=5.0, pause=1.0, owns_inner=True)
    cam = Camera(clip, loop=True)
    out = OUT / f"rec_{w}x{h}_{mode}.mp4"
    rec = RecordSink(out, cam.width, cam.height, cam.fps, overwrite=True)
    frames: list[dict] = []

    def on_frame(frame, info) -> None:
        frames.append({"index": frame.index, "pts": frame.pts, "protected": frame.protected,
                       "curtain": info.curtain, "age": info.detect_age, "looked": info.detected_index,
                       "faces": [r.box for r in frame.regions if r.is_face],
                       "areas": [r.box for r in frame.regions if r.source == "motion"]})

    waiting = mode == "wait"
    session = LiveSession(cam, config, [rec], detector=det, max_detect_age=max_age, on_frame=on_frame,
                          wait=waiting)
    samples: list[tuple[dict, int, int, float, dict]] = []

    def sample() -> None:
        # Per-thread CPU between 0.5 s in and 0.3 s before the end (while every thread exists).
        for at in (0.5, max(0.6, seconds - 0.3)):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            names = {t.native_id: t.name for t in threading.enumerate()}
            samples.append((_task_cpu(), session.stats.detections, len(frames), time.monotonic(), names))

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    sampler = threading.Thread(target=sample, name="bench-sampler")
    sampler.start()
    stats = session.run(threading.Event(), duration=seconds)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    sampler.join()
    roles = _roles(samples, threading.main_thread().native_id)
    rec.close()
    cam.close()
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / wall

    # Share of the picture covered whole because it changed since the last look (uncurtained frames).
    shares = []
    for f in frames:
        if f["curtain"] is None:
            cells = np.zeros((h // 8 + 1, w // 8 + 1), bool)
            for a in f["areas"]:
                x1, y1, x2, y2 = a.as_int()
                cells[max(0, y1) // 8:(y2 + 7) // 8, max(0, x1) // 8:(x2 + 7) // 8] = True
            shares.append(cells.mean())
    moving = float(np.mean(shares)) if shares else 0.0

    # Regions against ground truth, every output frame.
    face_frames = exposed = exposed_new = raw = 0
    misses: list[dict] = []  # every exposed face-frame, for results.json
    by_pts = {}
    for f in frames:
        pos = cam.positions[f["index"]]
        t = pos / FPS
        by_pts[f["pts"]] = (f, pos)
        if not f["protected"]:
            raw += 1
        elif f["curtain"] is None and not waiting and (f["age"] is None or f["age"] > max_age):
            raw += 1  # shown from a detection result that was too old
        elif f["curtain"] is None and waiting and (f["looked"] is None or f["looked"] < f["index"]):
            raw += 1  # shown without a look at this frame or a newer one
        for box in _judged(gt.frames[pos].boxes):
            face_frames += 1
            cover = _coverage((h, w), f["faces"], box, f["areas"]) if f["curtain"] is None else 1.0
            if cover < COVERED:
                exposed += 1
                since = _appeared(sc, t, box)
                exposed_new += since < NEW
                misses.append({"frame": f["index"], "clip_time": round(t, 3), "face_px": round(box.height),
                               "centre": [round(v) for v in box.center], "covered": round(cover, 2),
                               "on_screen_s": round(since, 2), "detect_age_ms": round(1000 * f["age"])})

    # Pixels of the recording against the clip's own pixels.
    originals: dict[int, np.ndarray] = {}
    with av.open(str(clip)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            originals[i] = vf.to_ndarray(format="gray")
    pix_frames = pix_exposed = 0
    blank = np.full((h, w, 3), 128, np.uint8)
    draw_notice(blank, "x")
    band_top = int(np.argmax((blank != 128).any(axis=(1, 2))))  # first row the notice band touches
    pix_misses: list[dict] = []
    pts_sorted = sorted(by_pts)
    offset = None  # the muxer starts the file at 0; the session's first frame was later
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        for vf in c.decode(s):
            pts = round(vf.pts * s.time_base * 90000)
            if offset is None:
                offset = pts_sorted[0] - pts
            pts += offset
            k = int(np.searchsorted(pts_sorted, pts))
            near = [p for p in pts_sorted[max(0, k - 1):k + 1] if abs(p - pts) <= 2]
            if not near:
                continue
            f, pos = by_pts[near[0]]
            # Luma of both (what the measure looks at), kept as 3 equal channels for its RGB input.
            orig = np.repeat(originals[pos][..., None], 3, axis=2)
            gray = np.repeat(vf.to_ndarray(format="gray")[..., None], 3, axis=2)
            for box in _judged(gt.frames[pos].boxes):
                pix_frames += 1
                energy, corr = face_similarity(orig, gray, box)
                destroyed = energy < 0.2 and corr < 0.5
                if f["curtain"] is not None and box.y2 > band_top:
                    # The curtain's notice text brings detail energy of its own: judge the part of
                    # the face above it, or by correlation alone when too little is left.
                    above = Box(box.x1, box.y1, box.x2, min(box.y2, band_top))
                    if above.height >= 0.5 * box.height:
                        energy, corr = face_similarity(orig, gray, above)
                        destroyed = energy < 0.2 and corr < 0.5
                    else:
                        destroyed = corr < 0.5
                if not destroyed:
                    pix_exposed += 1
                    pix_misses.append({"frame": f["index"], "clip_time": round(pos / FPS, 3),
                                       "face_px": round(box.height), "centre": [round(v) for v in box.center],
                                       "curtain": f["curtain"], "energy": round(energy, 3),
                                       "corr": round(corr, 3)})
    return {
        "size": size, "mode": mode, "seconds": wall, "fps": stats.frames_out / wall,
        "captured": stats.frames_captured, "out": stats.frames_out, "dropped": stats.frames_dropped,
        "p50": stats.latency_ms(50), "p95": stats.latency_ms(95), "cpu": cpu,
        "detect_ms": stats.detect_ms, "detect_alone_ms": detect_alone, "detections": stats.detections,
        "curtain": stats.curtain_frames, "curtain_reasons": stats.curtain_reasons,
        "face_frames": face_frames, "exposed": exposed, "exposed_new": exposed_new, "moving": moving,
        "pix_frames": pix_frames, "pix_exposed": pix_exposed, "raw": raw,
        "recorded": rec.frames, "record_dropped": rec.dropped,
        "stalls": getattr(det, "stalls", 0), "roles": roles,
        "exposed_list": misses, "pixel_exposed_list": pix_misses,
    }


def run_worker(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = ("| size | detector | out fps | dropped | latency p50 / p95 ms | CPU (1 core = 100%) "
            "| detect ms (in session) | curtained frames | face-frames >= 32 px | exposed (new) "
            "| exposed on recorded pixels | raw frames | moving |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        mode = f"stall 1 s / 5 s (x{r['stalls']})" if r["mode"] == "stall" else r["mode"]
        lines.append(
            f"| {r['size']} | {mode} | {r['fps']:.1f} | {r['dropped']} of {r['captured']} "
            f"| {r['p50']:.0f} / {r['p95']:.0f} | {100 * r['cpu']:.0f}% | {r['detect_ms']:.0f} "
            f"| {r['curtain']} | {r['face_frames']} | {r['exposed']} ({r['exposed_new']}) "
            f"| {r['pix_exposed']} of {r['pix_frames']} | {r['raw']} | {100 * r.get('moving', 0):.0f}% |")
    lines += ["", "CPU ms per output frame by thread (detector: per run), from per-thread CPU time:", "",
              "| size | detector | output loop | capture | recorder "
              "| other threads (libav, x264, OpenCV, BLAS) | detector per run | detector's share of a core "
              "| detector alone, before the run (wall) |",
              "|---" * 9 + "|"]
    for r in rows:
        c = r.get("roles") or {}
        mode = r["mode"]
        lines.append(f"| {r['size']} | {mode} | {c.get('output', 0):.1f} | {c.get('capture', 0):.1f} "
                     f"| {c.get('record', 0):.1f} | {c.get('other', 0):.1f} "
                     f"| {c.get('detect_per_run', 0):.0f} | {100 * c.get('detect_share', 0):.0f}% "
                     f"| {r.get('detect_alone_ms', 0):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds per run (default 30)")
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--modes", default="normal,stall",
                    help="normal (the live default), stall (detector sleeps 1 s every 5 s) and/or wait "
                    "(live --wait)")
    ap.add_argument("--detection", default="fast", help="detector preset (default: the live default, fast)")
    ap.add_argument("--max-detect-age", type=float, default=None,
                    help="as live --max-detect-age (default: the live default)")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.max_detect_age is None:
        from streamguard.live import MAX_DETECT_AGE

        a.max_detect_age = MAX_DETECT_AGE
    if a.worker:
        size, mode, seconds, detection, max_age = a.worker
        print(json.dumps(worker(size, mode, float(seconds), detection, float(max_age))))
        return
    rows = []
    load0 = os.getloadavg()[0]
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        make_clip(w, h)
        for mode in a.modes.split(","):
            print(f"running {size} {mode} for {a.seconds:g} s ...", file=sys.stderr)
            rows.append(run_worker(size, mode, str(a.seconds), a.detection, str(a.max_detect_age)))
            brief = {k: v for k, v in rows[-1].items() if not k.endswith("_list")}
            print(f"  {json.dumps(brief)}", file=sys.stderr)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"streamguard live, stand-in camera at {FPS} fps, {a.seconds:g} s per run, detector "
          f"'{a.detection}', --max-detect-age {a.max_detect_age:g}, {os.cpu_count()} CPUs, load average "
          f"{load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end\n")
    print(table(rows))


if __name__ == "__main__":
    main()
