"""Which parts of a video's frame changed since a tile of the sweep last looked at them.

:class:`~streamguard.detect.sweep.SweepDetectStage` skips a due tile whose pixels did not change
(the model would give the same answer on the same pixels); its module docs tell the rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..motion import CELL, STILL, block_means
from ..types import Box
from .plan import Tile, TileKey

__all__ = ["ChangeMap", "HEAD", "QUIET", "QUIET_RESCAN"]

#: A known face's box grown by this on every side is its head, where change does not count.
HEAD = 0.25
#: A tile whose best anchor scored under this (or under 0.4 x a lower threshold) is quiet.
QUIET = 0.2
#: An unchanged quiet tile runs again after this many times ``rescan`` (by default).
QUIET_RESCAN = 4.0


class ChangeMap:
    """Which parts of the frame changed since a tile last looked at them (see module docs)."""

    def __init__(self, *, still: float = STILL, quiet: float = QUIET) -> None:
        self.still = still
        #: A tile whose best score was under this waits ``quiet_rescan`` (see :meth:`changed`).
        self.quiet = quiet
        self.current: np.ndarray | None = None
        #: Blocks inside the heads of known faces (True: change there does not count).
        self.known: np.ndarray | None = None
        self._seen: dict[TileKey, tuple[float, np.ndarray, float]] = {}

    def update(self, upright: np.ndarray, known: Sequence[Box] = ()) -> None:
        """Take the next frame (upright RGB) and the faces that are followed on it."""
        self.current = block_means(upright, grey=True)
        self.known = None
        if known:
            rows, cols = self.current.shape
            self.known = np.zeros((rows, cols), bool)
            for box in known:
                head = box.grown(HEAD)
                # Only blocks wholly inside the head.
                x1, y1 = max(0, math.ceil(head.x1 / CELL)), max(0, math.ceil(head.y1 / CELL))
                x2, y2 = min(cols, int(head.x2 // CELL)), min(rows, int(head.y2 // CELL))
                if x2 > x1 and y2 > y1:
                    self.known[y1:y2, x1:x2] = True

    def changed(self, tile: Tile, now: float, rescan: float, quiet_rescan: float | None = None) -> bool:
        """Whether ``tile`` needs to run: never ran, ran ``rescan`` s ago (``quiet_rescan`` if
        it was quiet then), or its pixels moved."""
        return self.rescan_due(tile, now, rescan, quiet_rescan) or self.moved(tile)

    def rescan_due(self, tile: Tile, now: float, rescan: float, quiet_rescan: float | None = None) -> bool:
        """Whether ``tile`` never ran, or ran ``rescan`` s ago (``quiet_rescan`` if it was quiet
        then), whatever its pixels did."""
        seen = self._seen.get(tile.key)
        if seen is None or self.current is None:
            return True
        quiet = quiet_rescan is not None and self.is_quiet(tile)
        return now - seen[0] >= (max(rescan, quiet_rescan) if quiet else rescan)

    def moved(self, tile: Tile) -> bool:
        """Whether ``tile``'s pixels changed since it last ran (outside known faces' heads); True
        for a tile that never ran."""
        seen = self._seen.get(tile.key)
        if seen is None or self.current is None:
            return True
        return self.moved_since(tile.box, seen[1], heads=True)

    def moved_since(self, box: Box, before: np.ndarray, *, heads: bool = False) -> bool:
        """Whether the pixels under ``box`` changed between the map ``before`` (an earlier
        :attr:`current`) and now; with ``heads``, change inside known faces' heads does not count."""
        if self.current is None or before.shape != self.current.shape:
            return True
        x1, y1 = max(0, int(box.x1 // CELL)), max(0, int(box.y1 // CELL))
        x2, y2 = math.ceil(box.x2 / CELL), math.ceil(box.y2 / CELL)
        cur = self.current[y1:y2, x1:x2]
        if cur.size == 0:
            return True
        diff = np.abs(cur - before[y1:y2, x1:x2])
        if heads and self.known is not None:
            diff[self.known[y1:y2, x1:x2]] = 0
        return int(diff.max()) > self.still

    def is_quiet(self, tile: Tile) -> bool:
        """Whether ``tile``'s best score was under ``quiet`` when it last ran."""
        seen = self._seen.get(tile.key)
        return seen is not None and seen[2] < self.quiet

    def ran(self, tiles: list[Tile], now: float, peaks: dict[TileKey, float] | None = None) -> None:
        """``tiles`` ran on the current frame at ``now`` s; ``peaks``: each one's best score
        (a tile missing there counts as not quiet)."""
        if self.current is not None:
            for t in tiles:
                key = t.key
                self._seen[key] = (now, self.current, peaks.get(key, 1.0) if peaks is not None else 1.0)
