"""Recall, false-positive area and speed of the face detectors on generated labelled frames.

    python benchmarks/recall.py [--quick] [--seed N] [--out-dir DIR] [--presets before,fast,...]

Frames are built with :mod:`streamguard.synth` (real public-domain faces) at 720p, 1080p
and 4K: face heights 12-400 px, turned up to +-45 degrees, dark/bright, motion blur,
JPEG artefacts, partly occluded, cut by the frame border, several per frame over
cluttered backgrounds with face-coloured distractors. A face counts as covered when
at least 90% of its ground-truth box lies inside the union of the ellipses the
anonymizer would cover (``head_box(det, margin=0.5)``). "before" is the plain
whole-frame BlazeFace. Crops of missed faces and frames with false positives are
written to ``--out-dir`` (default ``$TMPDIR/streamguard-recall``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamguard import synth  # noqa: E402
from streamguard.anonymize import head_box  # noqa: E402
from streamguard.config import DetectConfig  # noqa: E402
from streamguard.detect import BlazeFaceDetector, create_detector  # noqa: E402
from streamguard.types import Box, Detection  # noqa: E402

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
BUCKETS = ((0, 24, "<24"), (24, 48, "24-48"), (48, 96, "48-96"), (96, math.inf, ">96"))
COVERED = 0.9
MARGIN = 0.5


@dataclass
class Face:
    box: Box  # ground truth (clipped to the frame)
    height: float  # unclipped face height in pixels, before rotation
    tags: tuple[str, ...]


@dataclass
class Sample:
    res: str
    index: int
    image: np.ndarray
    faces: list[Face] = field(default_factory=list)


def _sprites() -> list[synth.FaceSprite]:
    out = []
    for s in synth.load_faces():
        mirrored = s.face.mirrored(s.rgb.shape[1])
        out += [s, synth.FaceSprite(s.name + "-mirror", np.ascontiguousarray(s.rgb[:, ::-1]),
                                    np.ascontiguousarray(s.alpha[:, ::-1]), mirrored)]
    return out


def _motion_blur(img: np.ndarray, box: Box, length: int, angle: float) -> None:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1
    c = (length - 1) / 2
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((c, c), angle, 1), (length, length))
    k /= k.sum()
    h, w = img.shape[:2]
    x1, y1, x2, y2 = box.grown(0.6).clipped(w, h).as_int()
    if x2 > x1 and y2 > y1:
        img[y1:y2, x1:x2] = cv2.filter2D(img[y1:y2, x1:x2], -1, k, borderType=cv2.BORDER_REPLICATE)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if hi > lo else (lo + hi) / 2


def make_frame(res: str, index: int, n_faces: int, rng: np.random.Generator) -> Sample:
    """One labelled frame: background, distractors, then faces that do not overlap."""
    w, h = RESOLUTIONS[res]
    img = synth.background(w, h, int(rng.integers(0, 10_000)))
    for _ in range(int(rng.integers(2, 6))):  # skin-coloured blobs: false-positive bait
        c = (int(rng.uniform(150, 230)), int(rng.uniform(100, 170)), int(rng.uniform(80, 140)))
        r = float(rng.uniform(8, 120)) * w / 1920
        cv2.ellipse(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), (int(r), int(r * 1.3)),
                    0, 0, 360, c, -1, cv2.LINE_AA)
    sprites = _sprites()
    sample = Sample(res, index, img)
    taken: list[Box] = []
    for _ in range(n_faces * 20):
        if len(sample.faces) >= n_faces:
            break
        fh = float(np.exp(rng.uniform(np.log(12), np.log(400))))
        sp = sprites[int(rng.integers(0, len(sprites)))]
        fw = fh * sp.face.width / sp.face.height
        tags: list[str] = []
        if rng.random() < 0.12:  # cut by the frame border: 15-45% of the face outside
            side, cut = int(rng.integers(0, 4)), float(rng.uniform(0.15, 0.45))
            cx = [fw / 2 - cut * fw, w - fw / 2 + cut * fw, _u(rng, fw, w - fw), _u(rng, fw, w - fw)][side]
            cy = [_u(rng, fh, h - fh), _u(rng, fh, h - fh), fh / 2 - cut * fh, h - fh / 2 + cut * fh][side]
            tags.append("border")
        else:
            cx, cy = _u(rng, fw * 0.8, w - fw * 0.8), _u(rng, fh * 1.0, h - fh * 0.9)
        face = Box.from_center(float(cx), float(cy), fw, fh)
        if any(face.grown(0.7).intersection(t) > 0 for t in taken):
            continue
        angle = float(rng.uniform(-45, 45)) if rng.random() < 0.25 else float(rng.uniform(-12, 12))
        if abs(angle) > 20:
            tags.append("tilted")
        bright = 1.0
        if rng.random() < 0.25:
            bright = float(rng.choice([rng.uniform(0.3, 0.6), rng.uniform(1.25, 1.5)]))
            tags.append("dark" if bright < 1 else "bright")
        gt = synth.paste_face(img, sp, face, angle=angle, brightness=bright)
        if gt.area < 0.3 * face.area:
            continue
        if rng.random() < 0.15:
            _motion_blur(img, face, max(3, int(fh * rng.uniform(0.08, 0.2))) | 1, float(rng.uniform(0, 180)))
            tags.append("blur")
        if rng.random() < 0.12:  # a hand, a mask or a sign over up to a third of the face
            part = float(rng.uniform(0.2, 0.35))
            oy = face.y2 - part * fh if rng.random() < 0.5 else face.y1
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            p1, p2 = (int(face.x1 - 0.1 * fw), int(oy)), (int(face.x2 + 0.1 * fw), int(oy + part * fh))
            cv2.rectangle(img, p1, p2, colour, -1)
            tags.append("occluded")
        taken.append(face)
        sample.faces.append(Face(gt, fh, tuple(tags)))
    if rng.random() < 0.3:
        q = int(rng.integers(15, 40))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        img[:] = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        for f in sample.faces:
            f.tags += ("jpeg",)
    return sample


def dataset(quick: bool, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    counts = {"720p": (4, 6), "1080p": (8, 8), "4K": (2, 10)} if quick else \
        {"720p": (12, 6), "1080p": (32, 8), "4K": (6, 10)}
    return [make_frame(res, i, per, rng) for res, (n, per) in counts.items() for i in range(n)]


def covered_mask(shape: tuple[int, int], dets: list[Detection]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for d in dets:
        e = head_box(d.box, MARGIN)
        # 4 fractional bits: the ellipse is rasterised at 1/16 px precision.
        centre = (round(e.center[0] * 16), round(e.center[1] * 16))
        axes = (max(1, round(e.width * 8)), max(1, round(e.height * 8)))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, 4)
    return mask


def coverage(mask: np.ndarray, b: Box) -> float:
    x1, y1, x2, y2 = (round(v) for v in (b.x1, b.y1, b.x2, b.y2))
    region = mask[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    return float(region.mean()) if region.size else 1.0


def false_positive_area(shape: tuple[int, int], dets: list[Detection], faces: list[Face]) -> float:
    stray = []
    for d in dets:
        e = head_box(d.box, MARGIN)
        if not any(e.intersection(f.box) > 0 for f in faces):
            stray.append(d)
    return float(covered_mask(shape, stray).mean()) if stray else 0.0


def _save_failures(out: Path, name: str, s: Sample, dets: list[Detection], missed: list[Face],
                   fp: float) -> None:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR)
    for k, f in enumerate(missed):
        x1, y1, x2, y2 = f.box.grown(1.0).clipped(s.image.shape[1], s.image.shape[0]).as_int()
        crop = bgr[y1:y2, x1:x2]
        if crop.size:
            scale = max(1, 128 // max(1, crop.shape[0]))
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            tag = "-".join(f.tags) or "plain"
            cv2.imwrite(str(d / f"miss_{s.res}_{s.index:02d}_{k}_h{round(f.height)}_{tag}.png"), crop)
    if missed or fp > 0.002:
        vis = bgr.copy()
        for det in dets:
            e = head_box(det.box, MARGIN)
            axes = (round(e.width / 2), round(e.height / 2))
            cv2.ellipse(vis, (round(e.center[0]), round(e.center[1])), axes, 0, 0, 360, (0, 255, 0), 2)
        for f in s.faces:
            colour = (0, 0, 255) if any(f is m for m in missed) else (255, 200, 0)
            b = f.box.as_int()
            cv2.rectangle(vis, b[:2], b[2:], colour, 2)
        cv2.imwrite(str(d / f"frame_{s.res}_{s.index:02d}.jpg"), vis, [cv2.IMWRITE_JPEG_QUALITY, 80])


def evaluate(name: str, det, samples: list[Sample], out: Path | None) -> dict:
    hits: dict[tuple[str, str], list[int]] = {}
    fps: dict[str, list[float]] = {}
    ms: dict[str, list[float]] = {}
    det.detect(samples[0].image)  # warm up
    for s in samples:
        t0 = time.perf_counter()
        dets = det.detect(s.image)
        ms.setdefault(s.res, []).append((time.perf_counter() - t0) * 1000)
        mask = covered_mask(s.image.shape[:2], dets)
        missed = []
        for f in s.faces:
            ok = coverage(mask, f.box) >= COVERED
            bucket = next(b for lo, hi, b in BUCKETS if lo <= f.height < hi)
            for key in ((s.res, bucket), ("all", bucket)):
                hits.setdefault(key, []).append(int(ok))
            if s.res == "1080p" and f.height >= 16:
                hits.setdefault(("1080p", "16-32" if f.height < 32 else ">=32"), []).append(int(ok))
            if f.height >= 16:
                for tag in f.tags or ("plain",):
                    hits.setdefault(("tag", tag), []).append(int(ok))
            if not ok:
                missed.append(f)
        fp = false_positive_area(s.image.shape[:2], dets, s.faces)
        fps.setdefault(s.res, []).append(fp)
        if out is not None:
            _save_failures(out, name, s, dets, missed, fp)
    return {"hits": hits, "fp": fps, "ms": ms}


def _pct(v: list[int]) -> str:
    return f"{100 * sum(v) / len(v):.1f}% ({len(v)})" if v else "-"


def table(results: dict[str, dict]) -> str:
    head = ["detector", *(b for _, _, b in BUCKETS), "FP area",
            *(f"ms {r}" for r in RESOLUTIONS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        fp = [v for vs in r["fp"].values() for v in vs]
        cells = [name, *(_pct(r["hits"].get(("all", b), [])) for _, _, b in BUCKETS),
                 f"{100 * float(np.mean(fp)):.2f}%",
                 *(f"{np.mean(r['ms'][res]):.0f}" if res in r["ms"] else "-" for res in RESOLUTIONS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Recall by resolution (face height buckets), and the 1080p goal buckets:", ""]
    head2 = ["detector", "res", *(b for _, _, b in BUCKETS), "16-32 (1080p)", ">=32 (1080p)"]
    lines += ["| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
    for name, r in results.items():
        for res in RESOLUTIONS:
            goal = [_pct(r["hits"].get((res, g), [])) if res == "1080p" else "" for g in ("16-32", ">=32")]
            cells = [name, res, *(_pct(r["hits"].get((res, b), [])) for _, _, b in BUCKETS), *goal]
            lines.append("| " + " | ".join(cells) + " |")
    tags = ["plain", "tilted", "dark", "bright", "blur", "jpeg", "occluded", "border"]
    lines += ["", "Recall by condition, all resolutions, faces >= 16 px (a face can have several):", ""]
    lines += ["| detector | " + " | ".join(tags) + " |", "|" + "---|" * (len(tags) + 1)]
    for name, r in results.items():
        lines.append("| " + " | ".join([name, *(_pct(r["hits"].get(("tag", t), [])) for t in tags)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames (about a minute)")
    ap.add_argument("--seed", type=int, default=0)
    # Outside the repo by default: failure images are for looking at, not for committing.
    ap.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "streamguard-recall")
    ap.add_argument("--presets", default="before,fast,balanced,thorough")
    ap.add_argument("--no-save", action="store_true", help="do not write failure images")
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    t0 = time.perf_counter()
    samples = dataset(args.quick, args.seed)
    n = sum(len(s.faces) for s in samples)
    took = time.perf_counter() - t0
    print(f"{len(samples)} frames, {n} faces (seed {args.seed}), generated in {took:.1f}s", flush=True)
    results = {}
    for name in args.presets.split(","):
        t1 = time.perf_counter()
        if name == "before":
            det = BlazeFaceDetector(threshold=DetectConfig().threshold, model="full")
        else:
            det = create_detector(DetectConfig(preset=name))
        try:
            results[name] = evaluate(name, det, samples, None if args.no_save else args.out_dir)
        finally:
            det.close()
        print(f"{name}: {time.perf_counter() - t1:.1f}s", flush=True)
    print()
    print(table(results))
    if not args.no_save:
        print(f"\nfailure images: {args.out_dir}/<detector>/ (miss_*.png crops, frame_*.jpg overlays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
