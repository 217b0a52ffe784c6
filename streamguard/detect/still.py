"""Photos: the tiled detector's photo plan, run in each of its views and the finds merged."""

from __future__ import annotations

import numpy as np

from ..types import Detection
from .fuse import fuse
from .tiling import TiledDetector

__all__ = ["StillDetector"]


class StillDetector:
    """A :class:`TiledDetector` running its photo plan (the preset's ``still``) on every image, in
    each of the plan's views (:class:`~streamguard.detect.plan.View`): a FaceDetector for still
    images that shares the tiled detector's models and threads, and leaves closing them to it."""

    def __init__(self, tiled: TiledDetector) -> None:
        self.tiled = tiled

    def detect(self, image: np.ndarray) -> list[Detection]:
        views = self.tiled.still_preset.views
        w = image.shape[1]
        found: list[Detection] = []
        for view in views:
            if view.mirrored:  # its finds mirrored back
                finds = self.tiled.detect(np.ascontiguousarray(image[:, ::-1]), still=True, shift=view.shift)
                found += [Detection(d.box.mirrored(w), d.score, -d.roll) for d in finds]
            else:
                found += self.tiled.detect(image, still=True, shift=view.shift)
        # A face seen in several views merged into one box, as the plan's own tiles are.
        return found if len(views) == 1 else fuse([(d, False) for d in found])

    def close(self) -> None:
        """Nothing: the models belong to the tiled detector, closed by its owner."""
