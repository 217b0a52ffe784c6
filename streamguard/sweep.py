"""Spreading the tiled sweep over frames: the detector's cost per frame, divided.

A full multi-scale sweep of a 1080p frame is hundreds of model calls. In a video
a face does not appear and vanish within a few frames, so each frame runs only
one slice of the sweep (every tile is run once per ``period`` seconds), plus, on
every frame, the coarse whole-frame passes and one tile around each face found
on the frame before, so a known face is matched frame by frame. A new face is
found at most ``period`` seconds late; the tracker's look-ahead backfill (0.5 s)
then covers it back to its first frame, which is why ``period`` must stay under
the look-ahead window (and under ``hold``, so a face between two looks stays
covered).
"""

from __future__ import annotations

import logging

import numpy as np

from .detect import detect_upright
from .tiling import Level, Tile, TiledDetector
from .types import Box, Detection, Frame, Stage

__all__ = ["SweepDetectStage"]

log = logging.getLogger(__name__)

#: A level with at most this many tiles runs on every frame (the whole-frame passes).
ALWAYS_TILES = 2


def _best_tile(level: Level, box: Box) -> Tile | None:
    """The tile of ``level`` that holds ``box`` with the most room around it."""
    best, best_margin = None, -1.0
    for t in level.tiles:
        margin = min(box.x1 - t.box.x1, box.y1 - t.box.y1, t.box.x2 - box.x2, t.box.y2 - box.y2)
        if margin > best_margin:
            best, best_margin = t, margin
    return best


class _Slice:
    """Adapter that runs one chosen set of tiles and remembers what it found (upright pixels)."""

    def __init__(self, detector: TiledDetector) -> None:
        self.detector = detector
        self.tiles: list[Tile] | None = None
        self.found: list[Detection] = []

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.found = self.detector.detect(image, tiles=self.tiles)
        return self.found

    def close(self) -> None:
        pass


class SweepDetectStage(Stage):
    """Runs a slice of the tiled sweep on each frame the detector runs on (see module docs)."""

    def __init__(self, detector: TiledDetector, *, fps: float, period: float = 0.25, every: int = 1) -> None:
        if period < 0:
            raise ValueError(f"period must be >= 0 seconds, got {period}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector = detector
        self.every = every
        #: Detector runs per full sweep.
        self.slices = max(1, round(period * fps / every))
        self._slice = _Slice(detector)
        self._runs = 0
        self._plans: dict[tuple[int, int], tuple[list[Tile], list[list[Tile]], list[Level]]] = {}
        self._recent: list[Box] = []

    def _plan(self, width: int, height: int) -> tuple[list[Tile], list[list[Tile]], list[Level]]:
        key = (width, height)
        if key not in self._plans:
            levels = self.detector.plan(width, height)
            always = [t for lv in levels if len(lv.tiles) <= ALWAYS_TILES for t in lv.tiles]
            spread = [t for lv in levels if len(lv.tiles) > ALWAYS_TILES for t in lv.tiles]
            # Interleaved, so each slice samples the whole frame rather than one band of it.
            slices = [spread[i :: self.slices] for i in range(self.slices)]
            self._plans[key] = (always, slices, levels)
            log.debug(
                "sweep %dx%d: %d tiles every frame, %d spread over %d frames",
                width,
                height,
                len(always),
                len(spread),
                self.slices,
            )
        return self._plans[key]

    def tiles_for(self, width: int, height: int) -> list[Tile]:
        """The tiles of the next run, for an upright frame of ``width`` x ``height``."""
        always, slices, levels = self._plan(width, height)
        chosen = {(t.level, t.x, t.y): t for t in always + slices[self._runs % self.slices]}
        for box in self._recent:
            for lv in levels:
                if lv.angle == 0 and len(lv.tiles) > ALWAYS_TILES and lv.min_face / 1.5 <= box.height:
                    if box.height <= lv.max_face * 1.5:
                        t = _best_tile(lv, box)
                        if t is not None:
                            chosen[(t.level, t.x, t.y)] = t
        return list(chosen.values())

    def __call__(self, frame: Frame) -> Frame:
        if frame.index % self.every:
            return frame
        k = (frame.rotation // 90) % 4
        uw, uh = (frame.width, frame.height) if k % 2 == 0 else (frame.height, frame.width)
        self._slice.tiles = self.tiles_for(uw, uh)
        frame.detections = tuple(detect_upright(self._slice, frame.image, frame.rotation))
        frame.detected = True
        self._recent = [d.box for d in self._slice.found]
        self._runs += 1
        return frame
