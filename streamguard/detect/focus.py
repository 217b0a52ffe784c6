"""What the detector is shown of an out-of-focus picture: its fine detail brought back up.

BlazeFace was trained on sharp faces. A long lens's shallow focus, a phone that focused on the
wrong thing or footage blown up from a smaller copy leave faces whose edges are smeared, and the
models score such faces 0.3-0.5, under their thresholds: on a commuter crowd filmed with a long
lens (``benchmarks/fresh.py``'s ``v2_commuter_crowd``, 640x360, every face out of focus), faces
of 29-50 px went uncovered, a 49 px woman in the middle of the first frame among them. An unsharp
mask on the detector's copy (the picture plus its difference from a Gaussian blur of sigma 2 at
360 lines) took that clip's exposed proposals 34 -> 12; the output keeps the original pixels.

A sharp picture is shown as it is. Sharpening it did harm: on the real benchmark's shop clip
(sharp 16-24 px shoppers) it took the exposed face-frames 6 -> 24. So the mask is used only when
the whole picture is soft: :func:`softness` compares the picture's finest detail (its difference
from a blur of sigma 1) with its coarser detail (from a blur of sigma 4) on a copy of 360 lines:
the commuter crowd's frames read 0.16-0.19, every other real and fresh benchmark clip 0.23-0.48
on the median (a few frames of four of them dip under 0.2), every real photo 0.24-0.46. In
video the verdict is held while the ratio stays on its side of a band (:data:`SOFT` to
:data:`SHARP`): a mask that came and went would make tiles look changed to the sweep's change
map and faces flicker in and out of the models' reach. The ratio is measured on every
:data:`EVERY`-th picture (3.5 ms at 1080p on this machine; a lens's focus does not change from
one frame to the next) and held between.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["Focus", "softness", "sharpened", "unsharp"]

#: Lines of the copy a picture's softness is measured on, and the scale :data:`SIGMA` is given at.
LINES = 360
#: A picture whose ratio falls under this is soft: the detector is shown it sharpened.
SOFT = 0.20
#: ... and stays so until its ratio rises over this.
SHARP = 0.22
#: The unsharp mask's blur at :data:`LINES` lines (it grows with the picture) and its strength.
SIGMA = 2.0
AMOUNT = 1.0
#: The softness of every this many pictures of a stream is measured; the others keep the verdict.
EVERY = 8


def _at_lines(image: np.ndarray) -> np.ndarray:
    """``image`` shrunk to :data:`LINES` lines, or itself when it has no more."""
    h, w = image.shape[:2]
    if h <= LINES:
        return image
    return cv2.resize(image, (max(1, round(w * LINES / h)), LINES), interpolation=cv2.INTER_AREA)


def softness(rgb: np.ndarray) -> float:
    """How much of an RGB picture's detail is fine: mean |picture - blur(1)| over mean
    |picture - blur(4)|, at :data:`LINES` lines. Lower is softer; a flat picture reads 1."""
    g = _at_lines(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).astype(np.float32)
    coarse = float(np.abs(g - cv2.GaussianBlur(g, (0, 0), 4.0)).mean())
    if coarse < 0.5:  # flat: no detail at any scale, nothing to sharpen
        return 1.0
    return float(np.abs(g - cv2.GaussianBlur(g, (0, 0), 1.0)).mean()) / coarse


def sharpened(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` with an unsharp mask of sigma :data:`SIGMA` at :data:`LINES` lines. On a larger
    picture the blur is taken on a smaller copy and scaled back up: the same blur, at a fraction
    of the cost of a wide kernel."""
    h, w = rgb.shape[:2]
    if h > LINES:
        small = cv2.GaussianBlur(_at_lines(rgb), (0, 0), SIGMA)
        blur = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.addWeighted(rgb, 1.0 + AMOUNT, blur, -AMOUNT, 0.0)
    return unsharp(rgb, SIGMA * h / LINES)


def unsharp(image: np.ndarray, sigma: float, amount: float = AMOUNT) -> np.ndarray:
    """``image`` plus ``amount`` times its difference from a Gaussian blur of ``sigma`` px."""
    return cv2.addWeighted(image, 1.0 + amount, cv2.GaussianBlur(image, (0, 0), sigma), -amount, 0.0)


class Focus:
    """The picture the detector is shown, frame after frame of one stream: sharpened while the
    stream's pictures are soft (see module docs), else the picture itself."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._soft = False
        self._seen = 0
        #: Frames shown sharpened (tests and benchmarks read it).
        self.sharpened = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if not self.enabled or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
            return rgb
        if self._seen % EVERY == 0:
            self._soft = softness(rgb) < (SHARP if self._soft else SOFT)
        self._seen += 1
        if not self._soft:
            return rgb
        self.sharpened += 1
        return sharpened(rgb)
