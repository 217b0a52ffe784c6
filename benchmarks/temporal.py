"""Temporal safety: exposed face-frames when the detector misses faces, on generated clips.

    python benchmarks/temporal.py [--quick] [--seed N] [--preset fast|balanced] [--no-cache]

Clips come from :mod:`streamguard.synth` (real public-domain faces, exact ground truth) at
960x540, 30 fps: faces walking in and out through the frame edges, crossing in front of each
other, turning and tilting, approaching, popping up mid-shot and on both sides of a scene cut.
The real detector (``create_detector``) runs once per frame; its raw detections are cached (in
memory, and on disk under ``benchmarks/out/temporal_cache`` keyed by the scene and the
detector's source) and then thinned on purpose, per face: each detection goes to the ground-truth
face it overlaps most and is dropped by that face's pattern (none; random 1 in 3; bursts of 1-5
consecutive frames every 3-12 frames). The same detections feed three variants: no tracking
(``DetectionsToRegions``), tracking (``TrackStage``, lookahead 0) and tracking + backfill
(``TrackStage`` defaults: hold 0.5 s, lookahead 0.5 s).

Measures, per variant and drop pattern (covered = union of the ``head_box(region, 0.5)``
ellipses the anonymizer blurs, rasterised):

- exposed: face-frames where less than 90% of the face's visible part is covered. The face is its
  ground-truth face box (turned with the face), minus what lies outside the frame or behind a face
  drawn over it; a face-frame counts when at least a quarter of the face box is visible.
- entering: for each appearance of a face >= 32 px (clip start, walking in, popping up, after a
  cut, out from behind another face), is it covered on its first fully visible frame, and how
  many frames late is it when not.
- jitter: mean (and 95th percentile) frame-to-frame change of the covered ellipse's size
  (relative to the face) and of its centre beyond the face's own motion (in face heights), over
  consecutive frames where a face >= 32 px is fully visible and keeps its track.
- over-cover: covered area outside every face box / face area, summed over all frames. The
  "GT boxes" row covers the exact ground-truth boxes: the floor set by the head margin itself.

Then: the detector's own recall, over-cover split by region source, old-shot regions after the
cut, the look-ahead window's memory (``TrackStage.window_bytes``) and every exposure of a face
>= 32 px with its cause. About 1 min with ``--quick`` and 3-5 min in full on 2 busy cores when
the detector must run; seconds when its output is cached.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamguard import synth  # noqa: E402
from streamguard.anonymize import head_box, past_the_edge  # noqa: E402
from streamguard.config import AnonymizeConfig, DetectConfig, TrackConfig  # noqa: E402
from streamguard.detect import DetectionsToRegions, FaceDetector, create_detector  # noqa: E402
from streamguard.lookahead import TrackStage  # noqa: E402
from streamguard.types import Box, Detection, Frame, Region, Stage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / "out" / "temporal_cache"
W, H, FPS = 960, 540, 30
COVERED = 0.9  # share of the visible face that must be covered
MIN_SIZE = 32  # the goal's face size (face box height, px)
MIN_VISIBLE = 0.25  # share of the face box visible for a face-frame to count
FULL = 0.95  # visible share of the face box that counts as "fully visible"
MARGIN = AnonymizeConfig().margin
SUB = 4  # sub-pixel bits for cv2 polygon/ellipse rasterisation
VARIANTS = ("no tracking", "tracking", "tracking + backfill")
PATTERNS = ("none", "random 1/3", "bursts <= 5")
REFERENCE = "GT boxes"


# -- clips -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    name: str
    scene: synth.Scene
    labels: tuple[str, ...]  # one per scene face, for the failure list


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _aspect(sprite: int) -> float:
    faces = synth.load_faces()
    f = faces[sprite % len(faces)].face
    return f.width / f.height


def _walk(rng: np.random.Generator, d: float, seed: int) -> Clip:
    """Faces walking in through the left, right and top edges; two leave again."""
    a, b, c = _u(rng, 60, 110), _u(rng, 40, 70), _u(rng, 110, 150)
    ya, yb, xc = _u(rng, 0.28, 0.4) * H, _u(rng, 0.62, 0.72) * H, _u(rng, 0.45, 0.6) * W
    faces = (
        synth.FaceTrack(0, 0, d, ((0.15, -0.6 * a, ya, a), (d - 0.5, W + 0.6 * a, ya + _u(rng, -30, 30), a))),
        synth.FaceTrack(1, 0, d, ((0.4, W + 0.6 * b, yb, b), (d - 0.2, -0.6 * b, yb - 20, b))),
        synth.FaceTrack(0, 0, d, ((0.6, xc, -0.7 * c, c), (0.6 + _u(rng, 0.8, 1.2), xc, 0.42 * H, c),
                                  (d, xc + 40, 0.42 * H, c))),
        synth.FaceTrack(1, 0, d, ((0, 0.08 * W, 0.9 * H, 24), (d, 0.14 * W, 0.9 * H, 24))),
        synth.FaceTrack(0, 0, d, ((0, 0.92 * W, 0.9 * H, 34), (d, 0.84 * W, 0.88 * H, 34))),
    )
    labels = (f"enters L, leaves R {a:.0f}px", f"enters R, leaves L {b:.0f}px", f"enters top {c:.0f}px",
              "small 24px", "small 34px")
    return Clip("walk", synth.Scene(W, H, FPS, d, faces, seed=seed), labels)


def _cross(rng: np.random.Generator, d: float, seed: int) -> Clip:
    """Two faces crossing (the second passes in front), one approaching the camera."""
    a, b = _u(rng, 90, 120), _u(rng, 80, 110)
    y = _u(rng, 0.5, 0.58) * H
    faces = (
        synth.FaceTrack(0, 0, d, ((0.2, 0.14 * W, y, a), (d - 0.2, 0.86 * W, y + 10, a))),
        synth.FaceTrack(1, 0, d, ((0.2, 0.86 * W, y + _u(rng, -25, 25), b), (d - 0.2, 0.14 * W, y, b))),
        synth.FaceTrack(1, 0, d, ((0, 0.5 * W, 0.2 * H, 40), (d, _u(rng, 0.42, 0.58) * W, 0.24 * H, 105))),
    )
    labels = (f"crossing, behind {a:.0f}px", f"crossing, in front {b:.0f}px", "approaching 40-105px")
    return Clip("cross", synth.Scene(W, H, FPS, d, faces, seed=seed), labels)


def _turn(rng: np.random.Generator, d: float, seed: int) -> Clip:
    """Faces tilting +-40 degrees, a dark one, and a fast one crossing the whole frame."""
    a, b, c = _u(rng, 100, 140), _u(rng, 60, 80), _u(rng, 70, 90)
    tilt = _u(rng, 30, 42)
    faces = (
        synth.FaceTrack(0, 0, d, ((0, 0.22 * W, 0.38 * H, a), (d, 0.3 * W, 0.42 * H, a)),
                        rotation=((0, 0), (d / 3, tilt), (2 * d / 3, -tilt), (d, 0))),
        synth.FaceTrack(1, 0, d, ((0, 0.72 * W, 0.25 * H, b), (d, 0.6 * W, 0.4 * H, b)),
                        rotation=((0, 0), (d, -25)), brightness=_u(rng, 0.4, 0.55)),
        # ~600 px/s: a quarter of a face per frame.
        synth.FaceTrack(0, 0, d, ((0.3, -0.6 * c, 0.8 * H, c), (1.9, W + 0.6 * c, 0.78 * H, c))),
    )
    labels = (f"tilting +-{tilt:.0f} deg {a:.0f}px", f"dark, tilting {b:.0f}px", f"fast crossing {c:.0f}px")
    return Clip("turn", synth.Scene(W, H, FPS, d, faces, seed=seed), labels)


def _cut(rng: np.random.Generator, d: float, seed: int) -> Clip:
    """A hard cut half way: new faces, one near an old face's place, one walking in, one popping up."""
    cut = round(d / 2 * FPS) / FPS
    a, b, c = _u(rng, 100, 130), _u(rng, 60, 90), _u(rng, 80, 100)
    faces = (
        synth.FaceTrack(0, 0, cut, ((0, 0.3 * W, 0.45 * H, a), (cut, 0.34 * W, 0.47 * H, a))),
        synth.FaceTrack(1, 0, cut, ((0, 0.72 * W, 0.5 * H, b), (cut, 0.62 * W, 0.5 * H, b))),
        synth.FaceTrack(1, cut, d, ((cut, 0.36 * W, 0.5 * H, c), (d, 0.4 * W, 0.5 * H, c))),
        synth.FaceTrack(0, cut + 0.2, d, ((cut + 0.2, W + 45, 0.3 * H, 75), (d, 0.7 * W, 0.32 * H, 75))),
        synth.FaceTrack(0, cut + 0.6, d, ((cut + 0.6, 0.75 * W, 0.75 * H, 60), (d, 0.78 * W, 0.75 * H, 60))),
    )
    labels = (f"shot A {a:.0f}px", f"shot A moving {b:.0f}px", f"shot B, near A's spot {c:.0f}px",
              "shot B enters R 75px", "shot B pops up 60px")
    return Clip("cut", synth.Scene(W, H, FPS, d, faces, seed=seed, cuts=(cut,)), labels)


def _pop(rng: np.random.Generator, d: float, seed: int) -> Clip:
    """Faces that appear and vanish inside the frame (turning to the camera, stepping out)."""
    spots = [(0.15, 0.3), (0.45, 0.3), (0.78, 0.3), (0.2, 0.75), (0.55, 0.75), (0.85, 0.72)]
    faces, labels = [], []
    for k, (x, y) in enumerate(spots):
        size = _u(rng, 40, 120)
        start = _u(rng, 0.1, d / 2)
        end = min(d, start + _u(rng, 1.0, d))
        path = ((0, x * W, y * H, size), (d, x * W + 20, y * H, size))
        faces.append(synth.FaceTrack(k % 2, start, end, path))
        labels.append(f"pops up {start:.2f}-{end:.2f}s {size:.0f}px")
    return Clip("pop", synth.Scene(W, H, FPS, d, tuple(faces), seed=seed), tuple(labels))


def clips(quick: bool, seed: int) -> list[Clip]:
    """``--quick``: walk, cross and cut, 3 s each; else every kind twice (different layouts), 4 s each."""
    rng = np.random.default_rng(seed)
    kinds: list[Callable[[np.random.Generator, float, int], Clip]] = [_walk, _cross, _turn, _cut, _pop]
    if quick:
        made = [(0, k(rng, 3.0, 40 + i)) for i, k in enumerate((_walk, _cross, _cut))]
    else:
        made = [(rep, k(rng, 4.0, 40 + 10 * rep + i)) for rep in range(2) for i, k in enumerate(kinds)]
    return [replace(c, name=f"{c.name}-{rep + 1}") for rep, c in made]


# -- ground truth --------------------------------------------------------------------------------

@dataclass
class FaceGT:
    face: int  # index in scene.faces
    box: Box  # bounding box of the (turned) face box, clipped: what synth.render reports
    quad: np.ndarray  # 4 x 2 corners of the face box, turned with the face
    size: float  # face box height in pixels
    roi: tuple[int, int, int, int]  # x1, y1, x2, y2 of ``visible``
    visible: np.ndarray  # bool mask over roi: in frame, inside the face box, not behind a later face
    share: float  # visible pixels / face box area
    inside: bool  # the whole face box is inside the frame


def _sprite_args(scene: synth.Scene, k: int, t: float) -> tuple[synth.FaceSprite, Box, float] | None:
    st = scene.faces[k].state(t)
    if st is None:
        return None
    cx, cy, fh, angle = st
    sprites = synth.load_faces()
    sprite = sprites[scene.faces[k].sprite % len(sprites)]
    fw = fh * sprite.face.width / sprite.face.height
    return sprite, Box.from_center(cx, cy, fw, fh), angle


def _alpha_mask(sprite: synth.FaceSprite, box: Box, angle: float) -> np.ndarray:
    """Where a pasted sprite hides what is under it (alpha > 0.5): paste it on black and on white."""
    black, white = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 255, np.uint8)
    synth.paste_face(black, sprite, box, angle=angle)
    synth.paste_face(white, sprite, box, angle=angle)
    return (white.astype(np.int16) - black.astype(np.int16)).max(axis=2) < 128


def _poly(mask: np.ndarray, pts: np.ndarray, origin: tuple[int, int] = (0, 0)) -> None:
    p = np.round((pts - origin) * (1 << SUB)).astype(np.int32)
    cv2.fillPoly(mask, [p], 1, cv2.LINE_8, SUB)


def ground_truth(scene: synth.Scene, index: int, rendered: list[Box]) -> list[FaceGT]:
    """Per-face ground truth of one frame, checked against what :func:`synth.render` reported."""
    t = index / scene.fps
    args = [_sprite_args(scene, k, t) for k in range(len(scene.faces))]
    out: list[FaceGT] = []
    for k, a in enumerate(args):
        if a is None:
            continue
        _, box, angle = a
        rot = cv2.getRotationMatrix2D(box.center, angle, 1.0)
        corners = np.array([[box.x1, box.y1], [box.x2, box.y1], [box.x2, box.y2], [box.x1, box.y2]])
        quad = corners @ rot[:, :2].T + rot[:, 2]
        bb = Box(quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max())
        clipped = bb.clipped(W, H)
        if clipped.is_empty():
            continue
        x1, y1, x2, y2 = clipped.as_int()
        x2, y2 = min(x2, W), min(y2, H)
        vis = np.zeros((y2 - y1, x2 - x1), np.uint8)
        _poly(vis, quad, (x1, y1))
        for j in range(k + 1, len(args)):  # later faces are pasted on top
            b = args[j]
            if b is not None and b[1].grown(0.6).intersection(clipped) > 0:
                vis[_alpha_mask(*b)[y1:y2, x1:x2]] = 0
        visible = vis.astype(bool)
        # The whole face box rasterised the same way, out-of-frame part included: the share's base.
        bx1, by1 = math.floor(bb.x1), math.floor(bb.y1)
        whole = np.zeros((math.ceil(bb.y2) - by1, math.ceil(bb.x2) - bx1), np.uint8)
        _poly(whole, quad, (bx1, by1))
        inside = bool(quad[:, 0].min() >= 0 and quad[:, 1].min() >= 0 and quad[:, 0].max() <= W
                      and quad[:, 1].max() <= H)
        out.append(FaceGT(k, Box(*(round(v, 3) for v in (clipped.x1, clipped.y1, clipped.x2, clipped.y2))),
                          quad, box.height, (x1, y1, x2, y2), visible,
                          float(visible.sum()) / max(float(whole.sum()), 1.0), inside))
    if [g.box for g in out] != rendered:
        raise RuntimeError(f"frame {index}: ground truth disagrees with synth.render: {out} vs {rendered}")
    return out


# -- detections ----------------------------------------------------------------------------------

def _cache_key(scene: synth.Scene, preset: str) -> str:
    h = hashlib.sha256(repr(scene).encode())
    h.update(f"{preset} {DetectConfig().threshold} {metadata.version('ai-edge-litert')}".encode())
    # A detector change invalidates the cache.
    for path in sorted((ROOT / "streamguard" / "detect").glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


class CachedDetections:
    """The detector's raw output per frame of one clip, computed once (the detector is deterministic)."""

    def __init__(self, scene: synth.Scene, preset: str, use_disk: bool) -> None:
        self.path = CACHE / f"{_cache_key(scene, preset)}.json" if use_disk else None
        self.frames: dict[int, list[Detection]] = {}
        self.computed = 0
        self.seconds = 0.0
        if self.path is not None and self.path.exists():
            data = json.loads(self.path.read_text())
            self.frames = {int(i): [Detection(Box(*d[:4]), d[4]) for d in v] for i, v in data.items()}

    def get(self, index: int, image: np.ndarray, detector: Callable[[], FaceDetector]) -> list[Detection]:
        if index not in self.frames:
            t0 = time.perf_counter()
            self.frames[index] = detector().detect(image)
            self.seconds += time.perf_counter() - t0
            self.computed += 1
        return self.frames[index]

    def save(self) -> None:
        if self.path is None or not self.computed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {i: [[d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score] for d in v]
                for i, v in self.frames.items()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


def drop_pattern(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Which of ``n`` frames lose this face's detections."""
    if kind == "none":
        return np.zeros(n, bool)
    if kind == "random 1/3":
        return rng.random(n) < 1 / 3
    out = np.zeros(n, bool)
    i = int(rng.integers(0, 8))  # bursts may start on the face's very first frames
    while i < n:
        length = int(rng.integers(1, 6))
        out[i:i + length] = True
        i += length + int(rng.integers(3, 13))
    return out


def owner(det: Detection, faces: list[FaceGT]) -> int | None:
    """The scene face a detection overlaps most (None: a false detection, never dropped)."""
    best, face = 0.0, None
    for g in faces:
        a = det.box.intersection(g.box)
        if a > best:
            best, face = a, g.face
    return face


# -- evaluation ----------------------------------------------------------------------------------

def covered_mask(regions: Iterable[Region]) -> np.ndarray:
    """What the anonymizer blurs: the union of the head ellipses (a box the frame edge cuts
    squared up past it, as the anonymizer does), 1 where covered."""
    mask = np.zeros((H, W), np.uint8)
    for r in regions:
        e = head_box(past_the_edge(r.box, W, H), MARGIN)
        if e.is_empty():
            continue
        cx, cy = e.center
        cv2.ellipse(mask, (round(cx * (1 << SUB)), round(cy * (1 << SUB))),
                    (max(1, round(e.width / 2 * (1 << SUB))), max(1, round(e.height / 2 * (1 << SUB)))),
                    0, 0, 360, 1, -1, cv2.LINE_8, SUB)
    return mask


@dataclass
class Exposure:
    clip: str
    face: int
    label: str
    frame: int
    coverage: float
    share: float
    size: float
    cause: str  # "detector missed", "dropped" or "detected, region too small"


@dataclass
class Entry:
    clip: str
    face: int
    label: str
    frame: int  # first fully visible frame
    kind: str  # "appears", "from edge", "from behind"
    late: int  # frames from ``frame`` to the first covered one (-1: never covered)


@dataclass
class Result:
    counted: dict[str, int] = field(default_factory=lambda: {"ge32": 0, "all": 0})
    exposed: list[Exposure] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    size_jitter: list[float] = field(default_factory=list)
    centre_jitter: list[float] = field(default_factory=list)
    outside: float = 0.0
    # Outside area covered by detection regions alone, and with prediction regions added.
    outside_det: float = 0.0
    outside_pred: float = 0.0
    face_area: float = 0.0
    carried: int = 0  # regions after a cut that belong to a track from before it
    by_clip: dict[str, list[float]] = field(default_factory=dict)  # clip kind: [outside, face area]


def _match(g: FaceGT, regions: tuple[Region, ...]) -> Region | None:
    """The region meant for this face: best IoU, so a large coasting box nearby does not win."""
    best, match = 0.0, None
    for r in regions:
        a = r.box.iou(g.box)
        if a > best:
            best, match = a, r
    return match


def evaluate(clip: Clip, gts: list[list[FaceGT]], raw_owner: list[dict[int, bool]],
             regions: dict[int, tuple[Region, ...]], res: Result) -> None:
    """Score one variant's regions on one clip into ``res``. ``raw_owner[i][face]``: True when the
    detector found that face on frame i and it was dropped, False when found and kept."""
    n = len(gts)
    cov: list[dict[int, float]] = []
    present: list[dict[int, FaceGT]] = []  # frame: scene face index: its ground truth
    for i in range(n):
        mask = covered_mask(regions[i])
        faces_mask = np.zeros((H, W), np.uint8)
        cov.append({})
        present.append({})
        for g in gts[i]:
            _poly(faces_mask, g.quad)
            x1, y1, x2, y2 = g.roi
            seen = g.visible.sum()
            c = float(mask[y1:y2, x1:x2][g.visible].sum() / seen) if seen else 1.0
            cov[i][g.face], present[i][g.face] = c, g
            if g.share < MIN_VISIBLE:
                continue
            big = g.size >= MIN_SIZE
            res.counted["all"] += 1
            res.counted["ge32"] += int(big)
            if c < COVERED:
                cause = ("detector missed" if g.face not in raw_owner[i]
                         else "dropped" if raw_owner[i][g.face] else "detected, region too small")
                label = clip.labels[g.face]
                res.exposed.append(Exposure(clip.name, g.face, label, i, c, g.share, g.size, cause))
        away = 1 - faces_mask
        res.outside += float((mask & away).sum())
        acc = res.by_clip.setdefault(clip.name.split("-")[0], [0.0, 0.0])
        acc[0] += float((mask & away).sum())
        acc[1] += float(faces_mask.sum())
        if any(r.source != "detection" for r in regions[i]):
            det = covered_mask(r for r in regions[i] if r.source == "detection")
            pred = covered_mask(r for r in regions[i] if r.source in ("detection", "prediction"))
            res.outside_det += float((det & away).sum())
            res.outside_pred += float((pred & away).sum())
        else:
            res.outside_det += float((mask & away).sum())
            res.outside_pred += float((mask & away).sum())
        res.face_area += float(faces_mask.sum())
    # Appearances: the first fully visible frame after the face was absent or less than half visible.
    for k in range(len(clip.scene.faces)):
        armed, kind = True, "appears"
        for i in range(n):
            g = present[i].get(k)
            if g is None or g.share < 0.5:
                if g is None:
                    kind = "appears"
                elif not g.inside:
                    kind = "from edge"
                else:
                    kind = "from behind"
                armed = True
                continue
            if armed and g.inside and g.share >= FULL:
                late = -1
                for j in range(i, n):
                    if k not in cov[j]:
                        break  # gone again before it was ever covered
                    if cov[j][k] >= COVERED:
                        late = j - i
                        break
                if g.size >= MIN_SIZE:
                    res.entries.append(Entry(clip.name, k, clip.labels[k], i, kind, late))
                armed = False
    # Jitter over consecutive fully visible frames of the same track.
    for i in range(1, n):
        for k, g in present[i].items():
            p = present[i - 1].get(k)
            if p is None or g.size < MIN_SIZE or not (g.inside and p.inside and g.share >= FULL
                                                        and p.share >= FULL):
                continue
            r, q = _match(g, regions[i]), _match(p, regions[i - 1])
            if r is None or q is None or r.track_id != q.track_id:
                continue
            er, eq = head_box(r.box, MARGIN), head_box(q.box, MARGIN)
            res.size_jitter.append(abs(math.sqrt(er.area) / g.size - math.sqrt(eq.area) / p.size))
            gc, pc = np.mean(g.quad, axis=0), np.mean(p.quad, axis=0)
            d = np.subtract(er.center, eq.center) - (gc - pc)
            res.centre_jitter.append(float(np.hypot(*d)) / g.size)
    if clip.scene.cuts:
        first = math.ceil(clip.scene.cuts[0] * clip.scene.fps - 1e-9)
        before = {r.track_id for i in range(first) for r in regions[i] if r.track_id is not None}
        res.carried += sum(1 for i in range(first, n) for r in regions[i] if r.track_id in before)


# -- running -------------------------------------------------------------------------------------

def make_stage(variant: str) -> Stage:
    if variant == "no tracking":
        return DetectionsToRegions()
    if variant == "tracking":
        return TrackStage(TrackConfig(lookahead=0), fps=FPS)
    return TrackStage(TrackConfig(), fps=FPS)


def run_clip(ci: int, clip: Clip, seed: int, preset: str, use_disk: bool,
             get_detector: Callable[[], FaceDetector], results: dict[tuple[str, str], Result],
             detector_hits: dict[str, list[int]]) -> tuple[int, float]:
    """Render each frame once, feed it to every (variant, pattern) stage, score them all into
    ``results``. Returns the frames the detector ran on and its seconds."""
    scene = clip.scene
    n = scene.frame_count
    cache = CachedDetections(scene, preset, use_disk)
    drops = {(p, k): drop_pattern(p, n, np.random.default_rng([seed, ci, k, pi]))
             for pi, p in enumerate(PATTERNS) for k in range(len(scene.faces))}
    stages = {(v, p): make_stage(v) for v in VARIANTS for p in PATTERNS}
    regions: dict[tuple[str, str], dict[int, tuple[Region, ...]]] = {key: {} for key in stages}
    gts: list[list[FaceGT]] = []
    owners: dict[str, list[dict[int, bool]]] = {p: [] for p in PATTERNS}
    tb = Fraction(1, FPS)
    for i in range(n):
        image, boxes = synth.render(scene, i)
        image.setflags(write=False)  # shared by all variants: no stage may draw on it
        gt = ground_truth(scene, i, boxes)
        gts.append(gt)
        raw = cache.get(i, image, get_detector)
        found = {owner(d, gt) for d in raw}
        for g in gt:
            if g.share >= MIN_VISIBLE:
                detector_hits["ge32" if g.size >= MIN_SIZE else "lt32"].append(int(g.face in found))
        for p in PATTERNS:
            kept, owned = [], {}
            for d in raw:
                k = owner(d, gt)
                dropped = k is not None and bool(drops[p, k][i])
                if k is not None:
                    owned[k] = owned.get(k, False) or dropped
                if not dropped:
                    kept.append(d)
            owners[p].append(owned)
            for v in VARIANTS:
                frame = Frame(image, i, pts=i, time_base=tb, detections=tuple(kept), detected=True)
                for f in stages[v, p].process(frame):
                    regions[v, p][f.index] = f.regions
        regions_ref = tuple(Region(g.box) for g in gt)
        regions.setdefault((REFERENCE, "none"), {})[i] = regions_ref
    for key, stage in stages.items():
        for f in stage.flush():
            regions[key][f.index] = f.regions
    cache.save()
    for (v, p), regs in regions.items():
        assert sorted(regs) == list(range(n)), f"{v}/{p}: frames lost"
        evaluate(clip, gts, owners[p], regs, results.setdefault((v, p), Result()))
    return cache.computed, cache.seconds


# -- report --------------------------------------------------------------------------------------

def _ranges(frames: list[int]) -> str:
    out: list[str] = []
    for f in sorted(frames):
        if out and int(out[-1].split("-")[-1]) == f - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{f}"
        else:
            out.append(str(f))
    return ",".join(out)


def _jitter(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{100 * np.mean(values):.1f}% ({100 * np.percentile(values, 95):.0f}%)"


def table(results: dict[tuple[str, str], Result]) -> str:
    head = ["variant", "drops", "exposed >=32 px", "exposed all", "entering covered on 1st full frame",
            "late frames (max)", "size jitter (p95)", "centre jitter (p95)", "over-cover"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (v, p), r in results.items():
        big = sum(1 for e in r.exposed if e.size >= MIN_SIZE)
        ok = sum(1 for e in r.entries if e.late == 0)
        late = [e.late for e in r.entries if e.late != 0]
        worst = "never" if -1 in late else str(max(late, default=0))
        cells = [v, p, f"{big} / {r.counted['ge32']}", f"{len(r.exposed)} / {r.counted['all']}",
                 f"{ok} / {len(r.entries)}", worst,
                 _jitter(r.size_jitter), _jitter(r.centre_jitter),
                 f"{r.outside / max(r.face_area, 1.0):.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(results: dict[tuple[str, str], Result], variant: str) -> list[str]:
    lines = []
    for (v, p), r in results.items():
        if v != variant:
            continue
        groups: dict[tuple[str, int, str, str], list[Exposure]] = {}
        for e in r.exposed:
            if e.size >= MIN_SIZE:
                groups.setdefault((e.clip, e.face, e.label, e.cause), []).append(e)
        for (clip, face, label, cause), es in groups.items():
            cov, vis = [e.coverage for e in es], [e.share for e in es]
            lines.append(f"- {p}: {clip} face {face} ({label}) frames {_ranges([e.frame for e in es])}: "
                         f"{cause}; {min(cov):.1%}-{max(cov):.1%} of the visible part covered, "
                         f"{min(vis):.0%}-{max(vis):.0%} of the face visible")
        for e in r.entries:
            if e.late != 0:
                lines.append(f"- {p}: {e.clip} face {e.face} ({e.label}) {e.kind} at frame {e.frame}: "
                             + ("never covered" if e.late < 0 else f"covered {e.late} frame(s) late"))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 clips of 3 s, not 10 of 4 s (about a minute)")
    ap.add_argument("--seed", type=int, default=0, help="scene layout and drop patterns")
    ap.add_argument("--preset", default="fast", choices=("fast", "balanced", "thorough"))
    ap.add_argument("--no-cache", action="store_true", help="run the detector even if its output is cached")
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    t0 = time.perf_counter()
    detector: list[FaceDetector] = []

    def get_detector() -> FaceDetector:
        if not detector:
            detector.append(create_detector(DetectConfig(preset=args.preset)))
        return detector[0]

    results: dict[tuple[str, str], Result] = {}
    hits: dict[str, list[int]] = {"ge32": [], "lt32": []}
    all_clips = clips(args.quick, args.seed)
    try:
        for ci, clip in enumerate(all_clips):
            t1 = time.perf_counter()
            n_det, s_det = run_clip(ci, clip, args.seed, args.preset, not args.no_cache, get_detector,
                                    results, hits)
            det = f"detector {s_det:.1f}s on {n_det} frames" if n_det else "detections cached"
            took = time.perf_counter() - t1
            print(f"{clip.name}: {clip.scene.frame_count} frames, {det}, {took:.1f}s total", flush=True)
    finally:
        for d in detector:
            d.close()
    frames = sum(c.scene.frame_count for c in all_clips)
    print(f"\n{len(all_clips)} clips, {frames} frames at {W}x{H} {FPS} fps, seed {args.seed}, "
          f"preset {args.preset}, {time.perf_counter() - t0:.0f}s\n")
    order = [(v, p) for v in VARIANTS for p in PATTERNS] + [(REFERENCE, "none")]
    print(table({k: results[k] for k in order}))
    g, s = hits["ge32"], hits["lt32"]
    print(f"\nDetector alone (raw, nothing dropped): finds {100 * np.mean(g):.1f}% of {len(g)} face-frames "
          f">= {MIN_SIZE} px and {100 * np.mean(s) if s else 0:.1f}% of {len(s)} smaller ones.")
    kinds: dict[str, int] = {}
    for e in results["GT boxes", "none"].entries:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"Appearances of faces >= {MIN_SIZE} px: {kinds}")
    print("\nOver-cover by region source (detection / + prediction / + backfill):")
    for v in ("tracking", "tracking + backfill"):
        for p in PATTERNS:
            r = results[v, p]
            a = max(r.face_area, 1.0)
            clip_cover = ", ".join(f"{k} {o / max(fa, 1.0):.2f}x" for k, (o, fa) in r.by_clip.items())
            print(f"- {v}, {p}: {r.outside_det / a:.2f}x / {r.outside_pred / a:.2f}x / {r.outside / a:.2f}x"
                  f" (total by clip kind: {clip_cover})")
    for v in ("tracking", "tracking + backfill"):
        carried = {p: results[v, p].carried for p in PATTERNS}
        print(f"Scene cut, {v}: regions of an old-shot track after the cut: {carried}")
    print("\nLook-ahead window (TrackStage.window_bytes, default lookahead 0.5 s):")
    for fps in (30, 60):
        stage = TrackStage(TrackConfig(), fps=fps)
        for name, (w, h) in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            mb = stage.window_bytes(w, h) / 1e6
            print(f"- {name} {fps} fps: {stage.max_held_frames} frames, {mb:.1f} MB")
    for v in ("tracking + backfill", "tracking"):
        lines = failures(results, v)
        print(f"\nExposed faces >= {MIN_SIZE} px and late entries, {v}:" + ("" if lines else " none"))
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
