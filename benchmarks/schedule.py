"""What the sweep's schedule costs in faces: video outputs against the detector looking everywhere.

    python benchmarks/schedule.py                                   # every real clip, defaults
    python benchmarks/schedule.py --variant slow:detect.sweep_period=0.5,track.lookahead=1.0
    python benchmarks/schedule.py --only towncentre,dance --frames 150

In a video streamguard does not run its whole tile plan on every frame: each frame runs a
slice of it, tiles whose pixels did not change are skipped, known faces are followed in crops,
and the tracker covers between looks (see ``streamguard/detect/sweep.py``). Those choices are
where its speed comes from, and each could leave a face the model *would* have found exposed.
This benchmark measures exactly that loss, on real footage with no hand-made ground truth:

* **reference**: the detector's whole plan (``TiledDetector.detect``, every tile of every level,
  the preset's video scores) on every frame, upright: every face the model can find when it
  looks everywhere all the time. Cached per clip, preset and detector source in
  ``benchmarks/out/schedule`` (computing it costs ~0.4 s a 1080p frame).
* **each variant**: ``anonymize_video`` with the default :class:`~streamguard.config.Config`,
  changed by the variant's ``section.field=value`` pairs; its output is decoded upright.
* a reference face is **exposed** in an output frame when its detail survived there, judged by
  ``benchmarks/real.py``'s evaluator (band-pass correlation and energy, the same thresholds).

The reference also holds the model's false finds and its flicker (a face found on one frame
and not the next), so its exposed counts are not a recall; compare variants with each other.
An exposed face-frame is one a schedule lost that looking everywhere would have covered; each
one's crop is written to ``benchmarks/out/schedule/exposed/<variant>/`` to be looked at.

Clips: the videos of ``benchmarks/real/media.json`` and ``benchmarks/real/speed_media.json``,
materialized by ``benchmarks/real.py`` from the fetched snapshots (see its docstring).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real import (  # noqa: E402
    DEFAULT_OUT,
    REAL,
    _bucket,
    _upright,
    face_scores,
    is_exposed,
    load_media,
    materialize,
    video_frames,
)
from streamguard.config import Config  # noqa: E402
from streamguard.types import Box  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "schedule"
MEDIA = DEFAULT_OUT / "media"
SIZES = ("<16", "16-24", "24-32", "32-48", "48-96", ">=96")


def _source_digest() -> str:
    """The detector's code, so a changed detector recomputes its reference (the sweep's own
    schedule, which the reference does not use, is left out)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "streamguard" / "detect").glob("*.py")):
        if p.name != "sweep.py":
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def reference(clip: Path, preset: str) -> list[list[Box]]:
    """Every face the whole plan finds on each frame (upright pixels), cached."""
    from streamguard.detect import TiledDetector

    cache = OUT / f"{clip.stem}.{preset}.{_source_digest()}.json"
    if cache.exists():
        return [[Box(*b) for b in f] for f in json.loads(cache.read_text())]
    out: list[list[Box]] = []
    t0 = time.perf_counter()
    with TiledDetector(preset) as det, av.open(str(clip)) as c:
        for f in c.decode(video=0):
            out.append([d.box for d in det.detect(_upright(f, "rgb24"))])
    print(f"  reference {clip.name}: {len(out)} frames in {time.perf_counter() - t0:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([[[b.x1, b.y1, b.x2, b.y2] for b in f] for f in out]))
    return out


def apply(config: Config, pairs: list[str]) -> Config:
    """``config`` with ``section.field=value`` changes (values parsed as JSON, else strings)."""
    for pair in pairs:
        name, _, value = pair.partition("=")
        section, _, field = name.strip().partition(".")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        part = dataclasses.replace(getattr(config, section), **{field: parsed})
        config = dataclasses.replace(config, **{section: part})
    return config


def run_variant(src: Path, pairs: list[str], dst: Path) -> float:
    from streamguard import anonymize_video

    t0 = time.perf_counter()
    anonymize_video(src, dst, apply(Config(), pairs), overwrite=True)
    return time.perf_counter() - t0


def source(clip: Path, frames: int | None) -> Path:
    """The clip the reference and the variants all run on: ``clip``, or its first ``frames``."""
    if frames is None:
        return clip
    dst = OUT / f"{clip.stem}.first{frames}{clip.suffix}"
    if not dst.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        _cut(clip, dst, frames)
    return dst


def _cut(clip: Path, dst: Path, frames: int) -> None:
    """The first ``frames`` video packets' worth of ``clip`` (up to the next keyframe), by packet
    copy (no re-encode)."""
    with av.open(str(clip)) as inp, av.open(str(dst), "w") as out:
        vs = inp.streams.video[0]
        os_ = out.add_stream_from_template(vs)
        n = 0
        for p in inp.demux(vs):
            if p.dts is None:
                continue
            if n >= frames and p.is_keyframe:
                break
            p.stream = os_
            out.mux(p)
            n += 1


def evaluate(clip: Path, out: Path, ref: list[list[Box]], crops: Path | None = None) -> dict[str, list[int]]:
    """Per size bucket: [reference face-frames, exposed in ``out``]; with ``crops``, each exposed
    face (grown by half its size, grey, 3x) is written there for a person to judge: the
    reference's false finds are exposed too."""
    tally = {s: [0, 0] for s in SIZES}
    for i, (orig, got, faces) in enumerate(zip(video_frames(clip), video_frames(out), ref, strict=True)):
        for box in faces:
            b = _bucket(box.height)
            tally[b][0] += 1
            if is_exposed(*face_scores(orig, got, box)):
                tally[b][1] += 1
                if crops is not None:
                    crops.mkdir(parents=True, exist_ok=True)
                    x1, y1, x2, y2 = box.grown(0.5).clipped(orig.shape[1], orig.shape[0]).as_int()
                    big = cv2.resize(orig[y1:y2, x1:x2], None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
                    cv2.imwrite(str(crops / f"{clip.stem}_{i:05d}_{x1}_{y1}.png"), big)
    return tally


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V",
                    help="a Config change to measure beside the defaults (repeatable)")
    ap.add_argument("--only", help="comma-separated clip ids")
    ap.add_argument("--preset", default="balanced", help="detection preset of the reference and runs")
    ap.add_argument("--frames", type=int, help="only the first N frames of each clip")
    a = ap.parse_args(argv)

    variants = [("default", [f"detect.preset={a.preset}"])]
    for v in a.variant:
        name, _, spec = v.partition(":")
        variants.append((name, [f"detect.preset={a.preset}", *[p for p in spec.split(",") if p]]))
    media = [m for m in load_media() + load_media(REAL / "speed_media.json") if m.kind == "video"]
    if a.only:
        ids = set(a.only.split(","))
        media = [m for m in media if m.id in ids]
    for name, _ in variants:
        shutil.rmtree(OUT / "exposed" / name, ignore_errors=True)
    totals = {name: {s: [0, 0] for s in SIZES} for name, _ in variants}
    rows = []
    for m in media:
        clip = materialize(m, MEDIA)
        if clip is None:
            continue
        src = source(clip, a.frames)
        ref = reference(src, a.preset)
        for name, pairs in variants:
            dst = OUT / f"{clip.stem}.{name}.mp4"
            secs = run_variant(src, pairs, dst)
            crops = OUT / "exposed" / name
            tally = evaluate(src, dst, ref, crops)
            for s in SIZES:
                totals[name][s][0] += tally[s][0]
                totals[name][s][1] += tally[s][1]
            faces, exposed = (sum(v[i] for v in tally.values()) for i in (0, 1))
            big = sum(tally[s][1] for s in ("32-48", "48-96", ">=96"))
            rows.append(f"| {m.id} | {name} | {len(ref)} | {faces} | {exposed} | {big} | {secs:.1f} |")
            print(rows[-1], flush=True)
    print("\n| clip | variant | frames | reference face-frames | exposed | exposed >= 32 px | s |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| variant | " + " | ".join(SIZES) + " | all |")
    print("|---|" + "---|" * (len(SIZES) + 1))
    for name, _ in variants:
        t = totals[name]
        cells = [f"{t[s][1]}/{t[s][0]}" for s in SIZES]
        all_ = f"{sum(v[1] for v in t.values())}/{sum(v[0] for v in t.values())}"
        print(f"| {name} | " + " | ".join(cells) + f" | {all_} |")


if __name__ == "__main__":
    main()
