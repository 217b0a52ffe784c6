"""Multi-scale tiled BlazeFace: finds faces far smaller than a whole-frame pass can.

BlazeFace sees a 192x192 (full-range) or 128x128 (short-range) copy of its input and
finds faces from ~18 px up to ~75% of that input: on a whole 1080p frame, nothing
under ~180 px. So the frame is resized into a pyramid of *levels*, each cut into
model-sized square tiles that overlap by 1.5x the largest face of the level, so every
such face lies whole, with some context, inside at least one tile. Level ``k`` takes
faces of ``min_face * 2**k`` to ``min_face * 2**(k+1)`` frame px, shown to the model at
18-20 px and up. The finest level uses the short-range model (measured: 95-100% vs
72-88% for full-range on 16-32 px faces, at a similar cost per frame pixel); coarser
levels the full-range one (more robust to blur and tilt at larger sizes, fewer false
faces). Two whole-frame passes take the largest faces (one shrunk into a blank border
for faces filling the frame); each level's border is mirrored (faces cut by the frame
edge look whole). Boxes are grown to cover the head's roll (from the eye keypoints),
mapped back to frame pixels, merged across tiles and levels (a box cut by a tile's inner
edge is dropped when the face is seen whole elsewhere); large low-score boxes are re-checked.

Preset face sizes are for 1080p and grow with the frame (4K costs what 1080p does); an explicit
``min_face`` is used as is. One model call costs ~4-6 ms (full) / ~1.5-2 ms (short) on LiteRT
(``blazeface``); batching tiles was measured slower per tile, so calls are not batched.

The measured before/after of this plan per preset is in ``docs/design.md`` ("Tiling history").
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np

from ..types import Box, Detection, normal_roll
from .base import BlazeFaceDetector
from .canvas import (
    Work,
    box_to_frame,
    cut_tile,
    halve_to,
    level_affine,
    level_canvas,
    other_view,
    rolled_box,
    tile_by_tile,
    tile_warp,
    touches_inner_edge,
)
from .fuse import fuse
from .plan import MODEL_INPUT, MODEL_MIN, PRESETS, Level, Preset, Tile, TileKey, View, positions
from .recheck import centred_finds, fold_in, second_look

__all__ = ["TiledDetector"]

PLAIN = View()  # the picture as it is, the preset's own levels

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Videos with a shorter side under this are searched for smaller faces (see ``_size_factor``).
SMALL_VIDEO = 720
SMALL_VIDEO_FACE = 12
#: A known face is followed in a crop this many times its size (see ``near_crop``).
NEAR_CROP = 3.0


class TiledDetector:
    """BlazeFace over a multi-scale tile plan; implements the FaceDetector protocol.

    ``detect(image)`` runs the whole plan. ``detect(image, tiles=...)`` runs only the given
    tiles (from :meth:`plan`), so a caller can spread the sweep over several frames;
    :meth:`tiles_near` picks the tiles that would find faces around known boxes.
    """

    def __init__(self, preset: str | Preset = "balanced", *, min_face: int | None = None,
                 threshold: float | None = None, workers: int | None = None) -> None:
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.min_face = min_face
        self.threshold = threshold
        # Model calls release the GIL, so tiles run on ``workers`` threads, each with its own
        # pair of models (an interpreter takes one call at a time). Measured on 2 cores:
        # a 1080p balanced sweep 751 -> 404 ms with 2 workers.
        self.workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
        self._models: list[dict[str, BlazeFaceDetector]] = [{} for _ in range(self.workers)]
        self._pool: ThreadPoolExecutor | None = None
        self._plans: dict[tuple[int, int, bool, float], list[Level]] = {}
        for w in range(self.workers):  # load them now: a bad install should fail at start-up
            for name in ("full", "short"):
                self._model(name, w)

    def score(self, model: str, still: bool = False) -> float:
        """Minimum score of ``model``'s finds: the user's threshold, else the preset's (video's, or
        with ``still`` the photo plan's)."""
        return self.threshold if self.threshold is not None else self._preset(still).score(model)

    def _min_score(self, model: str, still: bool) -> float:
        """The score a tile's find needs to be looked at further: the model's, or for the
        full-range model the preset's ``candidate`` score (such finds must pass :meth:`verify`)."""
        p = self._preset(still)
        if model == "full" and p.candidate is not None and self.threshold is None:
            return min(p.candidate, self.score(model, still))
        if model == "short" and (floor := p.weak_bar()) is not None and self.threshold is None:
            return min(floor, self.score(model, still))
        return self.score(model, still)

    def _preset(self, still: bool) -> Preset:
        return self.preset.still if still and self.preset.still is not None else self.preset

    @property
    def still_preset(self) -> Preset:
        """The preset of the photo plan (the ``still`` one, or the video's when it has none)."""
        return self._preset(still=True)

    def face_range(self, width: int, height: int, still: bool = False) -> float:
        """Smallest face (frame px) the plan for this frame size is built to find."""
        if self.min_face is not None:
            return float(self.min_face)
        p = self._preset(still)
        # A small video's faces are searched for down to SMALL_VIDEO_FACE, not below the preset's.
        return max(min(p.min_face, SMALL_VIDEO_FACE), p.min_face * self._size_factor(width, height, still))

    def _size_factor(self, width: int, height: int, still: bool) -> float:
        # Video preset sizes are for 1080p; they scale with the frame so 4K costs about what
        # 1080p does, and below 720p they shrink (to 0.6x at most) so a small video, whose
        # faces are small too, is searched about as finely as 720p costs.
        if not self._preset(still).scaled:
            return 1.0
        short = min(width, height)
        return max(1.0, short / 1080) if short >= SMALL_VIDEO else max(0.6, short / SMALL_VIDEO)

    def _upscale(self, width: int, height: int, still: bool) -> float:
        """Largest upscale of the frame: the preset's, and up to 1.6x for videos under 720p."""
        p = self._preset(still)
        short = min(width, height)
        if not p.scaled or short >= SMALL_VIDEO:
            return p.max_upscale
        return max(p.max_upscale, min(1.6, p.max_upscale * SMALL_VIDEO / short))

    def plan(self, width: int, height: int, still: bool = False, view: View = PLAIN) -> list[Level]:
        """The levels and tiles for a ``width`` x ``height`` frame (cached per size): for a video's
        frames, or with ``still`` for a photo (the preset's ``still`` plan, when it has one), in
        ``view`` (its ``shift`` multiplies every level's face range; its ``upscale``, if set,
        replaces the preset's largest upscale; its ``max_face``, if set, ends the levels there,
        with no whole-frame passes; mirroring is the caller's)."""
        if view.mirrored:  # a mirrored view has the same plan
            view = dataclasses.replace(view, mirrored=False)
        key = (width, height, still, view)
        if key not in self._plans:
            self._plans[key] = self._make_plan(width, height, still, view)
            log.debug("tile plan %dx%d%s: %s", width, height, " (still)" if still else "",
                      ", ".join(f"s={lv.scale:.3g}/{lv.angle:g}:{len(lv.tiles)}" for lv in self._plans[key]))
        return self._plans[key]

    def _make_plan(self, w: int, h: int, still: bool, view: View) -> list[Level]:
        p = self._preset(still)
        full, e_full, long = MODEL_INPUT["full"], MODEL_MIN["full"], max(w, h)
        # The whole-frame pass shows the frame with a 10% mirrored border at 192 px.
        whole_scale = full / (1.2 * long)
        whole_min = e_full / whole_scale
        specs: list[tuple[float, float, float, float, str, float, bool]] = []  # scale angle lo hi model pad
        lo = self.face_range(w, h, still) * view.shift
        turn_min = p.turn_min_face * self._size_factor(w, h, still)
        upscale = self._upscale(w, h, still) if view.upscale is None else view.upscale
        whole = view.max_face is None  # the passes over the whole frame run too
        top = whole_min if whole else min(whole_min, view.max_face)
        k = 0
        while lo < top:
            model = p.models[min(k, len(p.models) - 1)]
            hi = min(lo * p.ratio, whole_min * 1.05)
            scale = min(MODEL_MIN[model] / lo, upscale)
            for angle in (0.0, *p.angles, *p.turns):
                if not angle or (lo >= turn_min if angle in p.turns else hi > p.angle_min_face):
                    # Mirror half the largest face beyond the frame edge (faces cut by it).
                    specs.append((scale, angle, lo, hi, model, 0.5 * hi * scale, True))
            lo, k = hi, k + 1
        # The whole frame at 192 px, and faces filling most of it shrunk into a blank border (too
        # big for the model otherwise); both turned too, a face lying down may be that large.
        big = full / (1.6 * long)
        for angle in (0.0, *p.turns) if whole else ():
            specs.append((whole_scale, angle, whole_min, 0.75 * long, "full", 0.1 * long * whole_scale, True))
            specs.append((big, angle, 0.5 * long, math.inf, "full", 0.3 * long * big, False))
        for a in p.angles if whole else ():  # one tile: the tilted frame shrunk to fit it
            c, sn = abs(math.cos(math.radians(a))), abs(math.sin(math.radians(a)))
            fit = full / max(w * c + h * sn, w * sn + h * c)
            specs.append((fit, a, e_full / fit, math.inf, "full", 0.0, True))
        levels = []
        for i, (scale, angle, lo, hi, model, pad_f, mirror) in enumerate(specs):
            size, pad = MODEL_INPUT[model], math.ceil(pad_f)
            m, (cw, ch) = level_affine(scale, angle, w, h, pad)
            # Tiles share the largest face plus context, so each face is whole in one of them.
            overlap = min(size - 8, math.ceil(p.context * hi * scale)) if math.isfinite(hi) else 0
            frame_poly = cv2.transform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), m)[0]
            tiles = []
            for y in positions(ch, size, overlap):
                for x in positions(cw, size, overlap):
                    sq = np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]], np.float32)
                    # A turned frame leaves empty canvas corners: skip tiles that show (almost) no frame.
                    if angle and cv2.intersectConvexConvex(sq, frame_poly)[0] < 0.05 * size * size:
                        continue
                    tiles.append(Tile(i, x, y, box_to_frame(m, Box(x, y, x + size, y + size)).clipped(w, h)))
            levels.append(Level(i, scale, angle, model, size, overlap, lo, hi, (cw, ch), tuple(tiles),
                                pad, mirror, self._min_score(model, still)))
        return levels

    def tiles_near(self, width: int, height: int, boxes: Iterable[Box], grow: float = 0.5) -> list[Tile]:
        """Tiles that would find a face near each of ``boxes`` (e.g. a tracker's predictions):
        at the levels whose face range fits the box, tiles that contain it grown by ``grow``."""
        out: dict[TileKey, Tile] = {}
        for b in boxes:
            area = b.grown(grow).clipped(width, height)
            for lv in self.plan(width, height):
                if not lv.min_face / 1.5 <= b.height <= lv.max_face * 1.5:
                    continue
                for t in lv.tiles:
                    if t.box.intersection(area) > 0:
                        out[t.key] = t
        return list(out.values())

    def detect_regions(self, image: np.ndarray, boxes: Iterable[Box]) -> list[Detection]:
        """Faces near ``boxes`` only (a partial sweep)."""
        h, w = image.shape[:2]
        return self.detect(image, tiles=self.tiles_near(w, h, boxes))

    def detect(self, image: np.ndarray, tiles: Iterable[Tile] | None = None,
               near: Iterable[Detection] = (), peaks: dict[TileKey, float] | None = None,
               still: bool = False, view: View = PLAIN, weak: list[Detection] | None = None,
               mirrored: Collection[TileKey] = (), sharpened: Collection[TileKey] = ()) -> list[Detection]:
        """Faces in an H x W x 3 uint8 RGB image; ``tiles`` limits the sweep to those tiles, and
        ``near`` adds a look at each of these known faces (see :meth:`near_crop`). ``peaks``, if
        given, receives each tile's best anchor score, keyed by ``(level, x, y)``. ``still`` runs
        the photo plan, in ``view``'s levels (see :meth:`plan`; not mirrored here). ``weak``,
        if given, receives the short-range model's finds under its score (``Preset.weak``),
        which are otherwise dropped. The tiles of ``mirrored`` and of ``sharpened`` (keys of ``tiles``)
        are shown mirrored left to right or sharpened, and give only finds at the threshold (see
        ``sweep.MIRROR``, ``sweep.SHARPEN``)."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        levels = self.plan(w, h, still, view)
        chosen = [t for lv in levels for t in lv.tiles] if tiles is None else list(tiles)
        by_level: dict[int, list[Tile]] = {}
        for t in chosen:
            by_level.setdefault(t.level, []).append(t)
        pyramid = [image]  # the frame halved again and again, shared by the levels
        jobs: list[tuple[Level, np.ndarray, np.ndarray, list[Tile]]] = []
        per_tile: list[Work] = []
        for i, lv_tiles in sorted(by_level.items()):
            lv = levels[i]
            if tile_by_tile(lv, len(lv_tiles), w, h):
                m = level_affine(lv.scale, 0.0, w, h, lv.pad)[0]
                inv = cv2.invertAffineTransform(m)
                per_tile += [(lv, image, inv, t, tile_warp(m, t)) for t in lv_tiles]
                continue
            m, canvas = level_canvas(pyramid, lv)
            jobs.append((lv, canvas, cv2.invertAffineTransform(m), lv_tiles))
        for face in near:
            jobs.append(self.near_crop(pyramid, face.box, face.roll))
        # Interleave every level's tiles over the workers so each gets a fair share.
        work = [(lv, canvas, inv, t, None) for lv, canvas, inv, lv_tiles in jobs for t in lv_tiles] + per_tile
        parts = self._each_worker(lambda k: self._run_tiles(work[k :: self.workers], k, w, h, peaks,
                                                            (mirrored, sharpened)), len(work) > 1)
        scores = {m: self.score(m, still) for m in ("full", "short")}
        # Weak short-range finds (``Preset.weak``) are fused apart, so the sure finds fuse exactly
        # as without them (a weak whole box would swallow a sure face's cut pieces).
        is_weak = [[name == "short" and f[0].score < scores["short"] for f, name in part] for part in parts]
        tagged = [(f, name, wk) for part, ws in zip(parts, is_weak, strict=True)
                  for (f, name), wk in zip(part, ws, strict=True)]
        found = [f for f, _, wk in tagged if not wk]
        models = [(f[0].box, name) for f, name, wk in tagged if not wk]  # the other model re-checks
        candidates = self._min_score("full", still) < scores["full"]
        fused = fuse(found)
        looks = [second_look(d, {m for b, m in models if b.iou(d.box) > 0.3}, (w, h), still, scores,
                             candidates) for d in fused]
        # The second looks run on the tile workers too: on the detector's own thread they were a
        # sixth of a 1080p street frame's detection time, with a core left idle.
        todo = [(d, look) for d, look in zip(fused, looks, strict=True) if look is not None]
        confirmed = iter(self._spread(
            lambda e, k: any(self.verify(image, e[0].box, m, e[0].roll, still, e[1].bar, worker=k)
                             for m in e[1].judges), todo))
        out = [d for d, look in zip(fused, looks, strict=True) if look is None or next(confirmed)]
        if weak is not None:
            faint = [f for f, _, wk in tagged if wk]
            weak += [d for d in fuse(faint) if not any(d.box.iou(o.box) > 0.3 for o in out)]
        return out

    def can_crop(self, width: int, height: int, box: Box) -> bool:
        """Whether :meth:`near_crop` can look at ``box``: its crop fits in the frame and
        shows the face no bigger than the frame has it (upscaled faces look blurred)."""
        side = NEAR_CROP * max(box.width, box.height)
        return MODEL_INPUT["short"] / self.preset.max_upscale <= side <= min(width, height)

    def near_crop(self, pyramid: list[np.ndarray], box: Box,
                  roll: float = 0.0) -> tuple[Level, np.ndarray, np.ndarray, list[Tile]]:
        """One short-range model call centred on a known face, the face a third of its input,
        the crop turned by the quarter turn nearest the face's ``roll`` so the model sees it upright.

        Following a known face this way costs one short-range call (~1.7 ms) where the tile
        of its level is often a full-range one (~4.5 ms); the short-range model is the one
        made for faces that large in its input (the same crop confirms boxes in :meth:`verify`).
        The square is kept inside the frame, so the face may sit off its centre. ``pyramid``
        is the frame halved again and again (``pyramid[0]`` the frame itself), shared with the
        levels: the crop is cut from the smallest halving still at least the model's size, so
        no crop pays for halving its own pixels (1080p, 5 faces: 3 ms a frame of halving saved).
        """
        image = pyramid[0]
        h, w = image.shape[:2]
        size = MODEL_INPUT["short"]
        side = min(round(NEAR_CROP * max(box.width, box.height)), w, h)
        k = 0
        while side >> k >= 2 * size:  # halved (smoothed) while still twice the size
            k += 1
        halve_to(pyramid, k)
        step = 1 << k
        cx, cy = box.center
        x0 = min(max(0, round(cx - side / 2)), w - side) // step
        y0 = min(max(0, round(cy - side / 2)), h - side) // step
        src = pyramid[k]
        n = min(side // step, src.shape[0] - y0, src.shape[1] - x0)
        part = src[y0:y0 + n, x0:x0 + n]
        # A factor under 2, bilinear as for the levels (see ``level_canvas``): INTER_AREA at a
        # fractional factor cost ~0.5 ms a crop.
        crop = cv2.resize(part, (size, size), interpolation=cv2.INTER_LINEAR)
        # Level-k pixel i covers frame pixels i * step .. (i + 1) * step.
        sc = size / (n * step)
        x0, y0 = x0 * step, y0 * step
        inv = np.array([[1 / sc, 0, x0], [0, 1 / sc, y0]], np.float64)
        turns = round(roll / 90) % 4
        if turns:
            # np.rot90 turns counter-clockwise, as a positive angle does in OpenCV (y down).
            crop = np.ascontiguousarray(np.rot90(crop, turns))
            back = cv2.invertAffineTransform(cv2.getRotationMatrix2D((size / 2, size / 2), 90.0 * turns, 1.0))
            inv = inv @ np.vstack([back, [0, 0, 1]])
        lv = Level(-1, sc, 90.0 * turns, "short", size, 0, 0.0, math.inf, (size, size), (), 0, True,
                   self.score("short"))
        return lv, crop, inv, [Tile(-1, 0, 0, Box(x0, y0, x0 + n * step, y0 + n * step))]

    def _run_tiles(self, work: list[Work], worker: int, w: int,
                   h: int, peaks: dict[TileKey, float] | None = None,
                   shown: tuple[Collection[TileKey], Collection[TileKey]] = ((), ())
                   ) -> list[tuple[tuple[Detection, bool], str]]:
        """Model calls for ``work`` on worker ``worker``'s models; boxes in frame pixels. Each
        tile's best anchor score goes into ``peaks`` (workers fill disjoint keys); the tiles of
        ``shown``'s two sets are shown mirrored left to right, and sharpened."""
        out = []
        for lv, canvas, inv, t, warp in work:
            if warp is not None:  # ``canvas`` is the frame: this tile's pixels straight from it
                crop = cut_tile(canvas, warp, lv, t)
            else:
                crop = canvas[t.y:t.y + lv.size, t.x:t.x + lv.size]
            if crop.shape[:2] != (lv.size, lv.size):
                # Short levels: pad to a full square so the model sees the level's scale.
                crop = cv2.copyMakeBorder(crop, 0, lv.size - crop.shape[0], 0, lv.size - crop.shape[1],
                                          cv2.BORDER_CONSTANT, value=(0, 0, 0))
            flip, sharp = (lv.index >= 0 and t.key in keys for keys in shown)
            crop = other_view(crop, lv.size, flip, sharp)
            found, peak = self._model(lv.model, worker).detect_peak(np.ascontiguousarray(crop), lv.min_score)
            if peaks is not None and lv.index >= 0:
                peaks[t.key] = peak
            for det, roll in found:
                box, score = det.box, det.score
                if (flip or sharp) and score < self.score(lv.model):
                    continue  # see sweep.MIRROR: a tile shown otherwise gives finds at the threshold
                if flip:  # back to the tile's own pixels
                    box, roll = box.mirrored(lv.size), -roll
                if box.height > 2 * lv.max_face * lv.scale:
                    # A face this big is a coarser level's job; the short-range model on a
                    # small tile calls big blurred blobs faces (0.5-0.7).
                    continue
                b = box.shifted(t.x, t.y)
                cx, cy = inv[:, :2] @ b.center + inv[:, 2]
                f = 1.0 / lv.scale
                raw = rolled_box(cx, cy, b.width * f, b.height * f, roll + lv.angle)
                fb = raw.clipped(w, h)
                # Mostly outside the frame: a reflection in the mirrored border.
                if fb.area >= 0.3 * raw.area:
                    found_face = Detection(fb, score, normal_roll(roll + lv.angle))
                    out.append(((found_face, touches_inner_edge(b, t, lv)), lv.model))
        return out

    def verify(self, image: np.ndarray, box: Box, model: str = "short", roll: float = 0.0,
               still: bool = False, min_score: float | None = None, *, worker: int = 0) -> bool:
        """Whether ``model`` finds a face at ``box`` again in a crop centred on it, the face at a
        third or at half of the crop, turned by the quarter turn nearest ``roll``. A second
        opinion should come from the other model: each model repeats its own mistakes.
        ``worker``: whose models to use (each tile worker has its own)."""
        score = min_score or self.score(model, still)
        looks = centred_finds(self._model(model, worker), image, box, roll, score, (3.0, 2.0), fold=not still)
        if any(d.box.iou(box) > 0.25 for d in looks):
            return True
        log.debug("dropped unconfirmed box %s", box)
        return False

    def look_again(self, image: np.ndarray, faces: Sequence[Detection],
                   min_scores: Sequence[float]) -> list[Detection | None]:
        """For each of ``faces``, the short-range model's best find at its box in a crop centred
        on it, the face at half of it (where weak, small faces score highest), at the face's own
        score of ``min_scores``, or None. The crops run on the tile workers."""

        def best(face: tuple[Detection, float], k: int) -> Detection | None:
            f, min_score = face
            looks = centred_finds(self._model("short", k), image, f.box, f.roll, min_score, (2.0,))
            where = fold_in(f.box, image.shape[1], image.shape[0])  # in the frame, as the finds are
            return max((d for d in looks if d.box.iou(where) > 0.25), key=lambda d: d.score, default=None)

        return self._spread(best, list(zip(faces, min_scores, strict=True)))

    def _each_worker(self, fn: Callable[[int], _T], spread: bool = True) -> list[_T]:
        """``fn(k)`` for every tile worker ``k`` at once, on the pool (``fn`` must use only worker
        ``k``'s models: an interpreter takes one call at a time); without ``spread``, ``fn(0)``."""
        if self.workers == 1 or not spread:
            return [fn(0)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tiled-detector")
        return list(self._pool.map(fn, range(self.workers)))

    def _spread(self, fn: Callable[[_T, int], _R], items: Sequence[_T]) -> list[_R]:
        """``fn(item, k)`` for each of ``items``, spread over the tile workers (``k``: the worker
        whose models it may use); the results in the order of ``items``."""
        n = len(items)
        parts = self._each_worker(lambda k: [(i, fn(items[i], k)) for i in range(k, n, self.workers)], n > 1)
        done = dict(r for part in parts for r in part)
        return [done[i] for i in range(n)]

    def _model(self, name: str, worker: int = 0) -> BlazeFaceDetector:
        models = self._models[worker]
        if name not in models:
            # Calls from the tiles pass their plan's score (photos keep lower ones than video).
            models[name] = BlazeFaceDetector(threshold=self.score(name), model=name)
        return models[name]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for models in self._models:
            for model in models.values():
                model.close()
            models.clear()

    def __enter__(self) -> TiledDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
