"""Multi-scale tiled BlazeFace: finds faces far smaller than a whole-frame pass can.

BlazeFace sees a 192x192 (full-range) or 128x128 (short-range) copy of its input and
finds faces from ~18 px up to ~75% of that input. On a whole 1080p frame that means
nothing under ~180 px. So the frame is resized into a pyramid of *levels*; each level
is cut into model-sized square tiles that overlap by more than the largest face the
level is meant for, so every such face lies fully inside at least one tile. Level
``k`` targets faces of ``min_face * ratio**k`` to ``min_face * ratio**(k+1)`` frame
pixels, shown to the model at ``MODEL_MIN`` px. Two whole-frame passes (plain, and
padded for faces filling the frame) take the largest faces. Boxes from all tiles
are mapped back to frame pixels; a box cut by a tile's inner edge is dropped when
the same face is seen whole elsewhere, and the rest are fused (score-weighted).

Preset minimum face sizes are for a 1080p frame and grow with the frame (a 4K frame
uses twice the size), so cost stays near the 1080p cost; an explicit ``min_face``
is taken as is, and the cost grows with the frame area over min_face squared.

Measured here (2 cores, ``python benchmarks/recall.py``; recall = GT face box >= 90%
inside the covered ellipse; FP = frame fraction covered by regions touching no face):
PRESET_TABLE_PLACEHOLDER
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .detect import BlazeFaceDetector
from .types import Box, Detection

__all__ = ["Preset", "PRESETS", "Level", "Tile", "TiledDetector", "fuse"]

log = logging.getLogger(__name__)

#: Model input side in pixels.
MODEL_INPUT = {"full": 192, "short": 128}
#: Smallest face (px, in model input) each model finds reliably (measured: ~90% at 16, ~98% at 20).
MODEL_MIN = {"full": 20, "short": 18}


@dataclass(frozen=True, slots=True)
class Preset:
    """How hard to look. ``min_face`` is in frame pixels at 1080p."""

    min_face: int
    model: str = "full"
    #: Face size range covered by one level (max/min); 2 minimises tiles per frame.
    ratio: float = 2.0
    #: Tile overlap as a multiple of the largest face of the level: the face plus context.
    context: float = 1.5
    #: Extra passes with the image turned by these angles (degrees), for tilted heads.
    angles: tuple[float, ...] = ()
    #: Smallest face for which the rotated passes run.
    angle_min_face: int = 0
    #: Largest upscale of the frame: blown-up faces look blurred to the model.
    max_upscale: float = 1.25


PRESETS: dict[str, Preset] = {
    "fast": Preset(min_face=32),
    "balanced": Preset(min_face=20),
    "thorough": Preset(min_face=14, angles=(-35.0, 35.0), angle_min_face=24),
}


@dataclass(frozen=True, slots=True)
class Tile:
    """One model call: the square at ``x, y`` (level pixels) of level ``level``; ``box`` is
    the region of the frame it shows (the bounding box for a rotated level)."""

    level: int
    x: int
    y: int
    box: Box


@dataclass(frozen=True, slots=True)
class Level:
    """One pyramid level: the frame scaled by ``scale`` (and turned by ``angle``), cut into
    ``size`` px tiles overlapping by ``overlap`` px, for faces ``min_face..max_face`` frame px."""

    index: int
    scale: float
    angle: float
    model: str
    size: int
    overlap: int
    min_face: float
    max_face: float
    canvas: tuple[int, int]
    tiles: tuple[Tile, ...]
    #: Border added around the scaled frame (level px): mirrored, so the model sees faces cut
    #: by the frame edge as whole; or blank, to shrink faces that fill the frame.
    pad: int = 0
    mirror: bool = True


def _positions(length: int, size: int, overlap: int) -> list[int]:
    """Tile starts covering ``0..length`` with at least ``overlap`` px shared, spread evenly."""
    if length <= size:
        return [0]
    n = math.ceil((length - overlap) / (size - overlap))
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def _affine(scale: float, angle: float, w: int, h: int, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Frame -> level canvas transform (2x3) and canvas size: scale, turn about the centre, pad."""
    sw, sh = w * scale, h * scale
    if not angle:
        cw, ch = max(1, round(sw)), max(1, round(sh))
        # The exact per-axis factors of the resize that makes this canvas.
        m = np.array([[cw / w, 0, pad], [0, ch / h, pad]], np.float64)
        return m, (cw + 2 * pad, ch + 2 * pad)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    cw, ch = math.ceil(sw * c + sh * s) + 2 * pad, math.ceil(sw * s + sh * c) + 2 * pad
    rot = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, 1.0)
    rot[:, 2] += (cw / 2 - sw / 2, ch / 2 - sh / 2)
    return rot @ np.array([[scale, 0, 0], [0, scale, 0], [0, 0, 1]], np.float64), (cw, ch)


def _to_frame(m: np.ndarray, box: Box) -> Box:
    """Bounding box in frame pixels of a level-canvas box, through the inverse of ``m``."""
    inv = cv2.invertAffineTransform(m)
    pts = np.array([[box.x1, box.y1], [box.x2, box.y1], [box.x1, box.y2], [box.x2, box.y2]])
    p = pts @ inv[:, :2].T + inv[:, 2]
    return Box(p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())


def fuse(found: Sequence[tuple[Detection, bool]], iou: float = 0.35) -> list[Detection]:
    """Merge detections of one face from overlapping tiles and levels into one box.

    ``found`` pairs a detection (frame pixels) with whether it touched a tile's inner
    edge (the face may be cut there). Cut boxes that lie mostly inside a whole box are
    dropped; the rest are grouped by IoU. Whole boxes fuse by score-weighted mean; a
    group of only cut pieces fuses to their union, which covers the face between them.
    """
    whole = [d for d, cut in found if not cut]
    cut = [d for d, c in found if c]
    cut = [d for d in cut if not any(d.box.intersection(w.box) >= 0.5 * d.box.area for w in whole)]
    out: list[Detection] = []
    for group_of, union in ((whole, False), (cut, True)):
        rest = sorted(group_of, key=lambda d: -d.score)
        while rest:
            head = rest[0]
            group = [d for d in rest if d is head or _same(head.box, d.box, iou, union)]
            rest = [d for d in rest if not any(d is g for g in group)]
            if union:
                box = Box(min(g.box.x1 for g in group), min(g.box.y1 for g in group),
                          max(g.box.x2 for g in group), max(g.box.y2 for g in group))
            else:
                wts = np.array([g.score for g in group])
                c = np.array([[g.box.x1, g.box.y1, g.box.x2, g.box.y2] for g in group])
                box = Box(*(wts @ c / wts.sum()).tolist())
            out.append(Detection(box=box, score=head.score))
    return out


def _same(a: Box, b: Box, iou: float, loose: bool) -> bool:
    if a.iou(b) >= iou:
        return True
    # Pieces of one cut face overlap little but share most of the smaller piece.
    return loose and a.intersection(b) >= 0.3 * min(a.area, b.area)


class _Model(BlazeFaceDetector):
    """BlazeFace that also reports each face's roll, from the eye keypoints."""

    def detect_rolled(self, image: np.ndarray) -> list[tuple[Box, float, float]]:
        """``(box, score, roll)`` per face; roll in degrees, the eye line's angle (y down)."""
        h, w = image.shape[:2]
        with self._lock:
            result = self._impl.process(image)
        out = []
        for d in result.detections or ():
            rb = d.location_data.relative_bounding_box
            box = Box.from_xywh(rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h)
            kp = d.location_data.relative_keypoints
            # Keypoint 0 is the right eye (image left), 1 the left eye.
            roll = math.degrees(math.atan2((kp[1].y - kp[0].y) * h, (kp[1].x - kp[0].x) * w)) if len(kp) > 1 else 0
            if not box.is_empty():
                out.append((box, float(d.score[0]) if d.score else 0.0, roll))
        return out


def _rolled_box(cx: float, cy: float, bw: float, bh: float, roll: float) -> Box:
    """Bounding box of a ``bw`` x ``bh`` face box turned by ``roll`` degrees about its centre:
    BlazeFace gives an upright box even for a tilted head, which leaves its chin and brow out."""
    c, s = abs(math.cos(math.radians(roll))), abs(math.sin(math.radians(roll)))
    return Box.from_center(cx, cy, bw * c + bh * s, bw * s + bh * c)


class TiledDetector:
    """BlazeFace over a multi-scale tile plan; implements the FaceDetector protocol.

    ``detect(image)`` runs the whole plan. ``detect(image, tiles=...)`` runs only the given
    tiles (from :meth:`plan`), so a caller can spread the sweep over several frames;
    :meth:`tiles_near` picks the tiles that would find faces around known boxes.
    """

    def __init__(self, preset: str | Preset = "balanced", *, min_face: int | None = None,
                 threshold: float = 0.3) -> None:
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.min_face = min_face
        self.threshold = threshold
        self._models: dict[str, _Model] = {}
        self._plans: dict[tuple[int, int], list[Level]] = {}
        for name in {self.preset.model, "full"}:
            self._models[name] = _Model(threshold=threshold, model=name)

    def face_range(self, width: int, height: int) -> float:
        """Smallest face (frame px) the plan for this frame size is built to find."""
        if self.min_face is not None:
            return float(self.min_face)
        # Preset sizes are for 1080p; scale with the frame so 4K costs about what 1080p does.
        return self.preset.min_face * max(1.0, min(width, height) / 1080)

    def plan(self, width: int, height: int) -> list[Level]:
        """The levels and tiles for a ``width`` x ``height`` frame (cached per size)."""
        key = (width, height)
        if key not in self._plans:
            self._plans[key] = self._make_plan(width, height)
            log.debug("tile plan %dx%d: %s", width, height,
                      ", ".join(f"s={lv.scale:.3g}/{lv.angle:g}:{len(lv.tiles)}" for lv in self._plans[key]))
        return self._plans[key]

    def _make_plan(self, w: int, h: int) -> list[Level]:
        p = self.preset
        full, e_full, long = MODEL_INPUT["full"], MODEL_MIN["full"], max(w, h)
        # The whole-frame pass shows the frame with a 10% mirrored border at 192 px.
        whole_scale = full / (1.2 * long)
        whole_min = e_full / whole_scale
        specs: list[tuple[float, float, float, float, str, float, bool]] = []  # scale angle lo hi model pad
        lo = self.face_range(w, h)
        while lo < whole_min:
            hi = min(lo * p.ratio, whole_min * 1.05)
            scale = min(MODEL_MIN[p.model] / lo, p.max_upscale)
            for angle in (0.0, *p.angles):
                if not angle or hi > p.angle_min_face:
                    # Mirror half the largest face beyond the frame edge (faces cut by it).
                    specs.append((scale, angle, lo, hi, p.model, 0.5 * hi * scale, True))
            lo = hi
        specs.append((whole_scale, 0.0, whole_min, 0.75 * long, "full", 0.1 * long * whole_scale, True))
        # Faces filling most of the frame are too big for the model: shrink into a blank border.
        big = full / (1.6 * long)
        specs.append((big, 0.0, 0.5 * long, math.inf, "full", 0.3 * long * big, False))
        for a in p.angles:
            specs.append((whole_scale, a, whole_min, math.inf, "full", 0.0, True))
        levels = []
        for i, (scale, angle, lo, hi, model, pad_f, mirror) in enumerate(specs):
            size, pad = MODEL_INPUT[model], math.ceil(pad_f)
            m, (cw, ch) = _affine(scale, angle, w, h, pad)
            # Tiles share the largest face plus context, so each face is whole in one of them.
            overlap = min(size - 8, math.ceil(p.context * hi * scale)) if math.isfinite(hi) else 0
            frame_poly = cv2.transform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), m)[0]
            tiles = []
            for y in _positions(ch, size, overlap):
                for x in _positions(cw, size, overlap):
                    sq = np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]], np.float32)
                    # A turned frame leaves empty canvas corners: skip tiles that show (almost) no frame.
                    if angle and cv2.intersectConvexConvex(sq, frame_poly)[0] < 0.05 * size * size:
                        continue
                    tiles.append(Tile(i, x, y, _to_frame(m, Box(x, y, x + size, y + size)).clipped(w, h)))
            levels.append(Level(i, scale, angle, model, size, overlap, lo, hi, (cw, ch), tuple(tiles),
                                pad, mirror))
        return levels

    def tiles_near(self, width: int, height: int, boxes: Iterable[Box], grow: float = 0.5) -> list[Tile]:
        """Tiles that would find a face near each of ``boxes`` (e.g. a tracker's predictions):
        at the levels whose face range fits the box, tiles that contain it grown by ``grow``."""
        out: dict[tuple[int, int, int], Tile] = {}
        for b in boxes:
            area = b.grown(grow).clipped(width, height)
            for lv in self.plan(width, height):
                if not lv.min_face / 1.5 <= b.height <= lv.max_face * 1.5:
                    continue
                for t in lv.tiles:
                    if t.box.intersection(area) > 0:
                        out[(t.level, t.x, t.y)] = t
        return list(out.values())

    def detect_regions(self, image: np.ndarray, boxes: Iterable[Box]) -> list[Detection]:
        """Faces near ``boxes`` only (a partial sweep)."""
        h, w = image.shape[:2]
        return self.detect(image, tiles=self.tiles_near(w, h, boxes))

    def detect(self, image: np.ndarray, tiles: Iterable[Tile] | None = None) -> list[Detection]:
        """Faces in an H x W x 3 uint8 RGB image; ``tiles`` limits the sweep to those tiles."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        levels = self.plan(w, h)
        chosen = [t for lv in levels for t in lv.tiles] if tiles is None else list(tiles)
        by_level: dict[int, list[Tile]] = {}
        for t in chosen:
            by_level.setdefault(t.level, []).append(t)
        found: list[tuple[Detection, bool]] = []
        for i, lv_tiles in sorted(by_level.items()):
            lv = levels[i]
            m, canvas = self._canvas(image, lv)
            inv = cv2.invertAffineTransform(m)
            model = self._models[lv.model]
            for t in lv_tiles:
                crop = canvas[t.y:t.y + lv.size, t.x:t.x + lv.size]
                if crop.shape[:2] != (lv.size, lv.size):
                    # Short levels: pad to a full square so the model sees the level's scale.
                    crop = cv2.copyMakeBorder(crop, 0, lv.size - crop.shape[0], 0, lv.size - crop.shape[1],
                                              cv2.BORDER_CONSTANT, value=(0, 0, 0))
                for box, score, roll in model.detect_rolled(np.ascontiguousarray(crop)):
                    b = box.shifted(t.x, t.y)
                    cx, cy = inv[:, :2] @ b.center + inv[:, 2]
                    f = 1.0 / lv.scale
                    fb = _rolled_box(cx, cy, b.width * f, b.height * f, roll + lv.angle).clipped(w, h)
                    if not fb.is_empty():
                        found.append((Detection(fb, score), self._touches_inner_edge(b, t, lv)))
        return fuse(found)

    @staticmethod
    def _touches_inner_edge(b: Box, t: Tile, lv: Level) -> bool:
        # Within 2% of a tile side that is not also the canvas edge: the face may go on beyond it.
        m = 0.02 * lv.size
        cw, ch = lv.canvas
        return ((t.x > 0 and b.x1 < t.x + m) or (t.y > 0 and b.y1 < t.y + m)
                or (t.x + lv.size < cw and b.x2 > t.x + lv.size - m)
                or (t.y + lv.size < ch and b.y2 > t.y + lv.size - m))

    @staticmethod
    def _canvas(image: np.ndarray, lv: Level) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        m, (cw, ch) = _affine(lv.scale, lv.angle, w, h, lv.pad)
        border = cv2.BORDER_REFLECT_101 if lv.mirror else cv2.BORDER_CONSTANT
        sw, sh = max(1, round(w * lv.scale)), max(1, round(h * lv.scale))
        # INTER_AREA when shrinking: plain sampling aliases small faces away.
        small = image if (sw, sh) == (w, h) else cv2.resize(
            image, (sw, sh), interpolation=cv2.INTER_AREA if lv.scale < 1 else cv2.INTER_LINEAR)
        if not lv.angle:
            if not lv.pad:
                return m, small
            return m, cv2.copyMakeBorder(small, lv.pad, lv.pad, lv.pad, lv.pad, border, value=(0, 0, 0))
        mm = m @ np.array([[w / sw, 0, 0], [0, h / sh, 0], [0, 0, 1]])
        return m, cv2.warpAffine(small, mm, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=border)

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()

    def __enter__(self) -> TiledDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
