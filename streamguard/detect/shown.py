"""What the detector is shown of one stream's pictures: a copy made easier to read, never the output.

Each step keeps its own state from frame to frame of the stream (a held stretch, a held verdict
on focus), so a stream has one :class:`Shown`: the photo stage and the video sweep both use it,
and a step added here reaches both in the same order.
"""

from __future__ import annotations

import numpy as np

from .focus import Focus
from .levels import Levels

__all__ = ["Shown"]


class Shown:
    """A dim or tinted picture with its levels stretched (:mod:`.levels`), then a soft one
    sharpened (:mod:`.focus`); ``enabled=False`` shows every picture as it is."""

    def __init__(self, enabled: bool = True) -> None:
        self.levels = Levels(enabled)
        self.focus = Focus(enabled)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` as the detector should see it, or ``rgb`` itself when nothing changed it."""
        return self.focus(self.levels(rgb))
