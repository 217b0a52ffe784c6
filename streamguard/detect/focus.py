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

A picture sharp as a whole can hold a soft part: a blurred background behind a sharp subject, a
face in the dark at the back of a stage. In video (``Focus(regional=True)``, the sweep's) such a
picture's blocks of :data:`BLOCK` px are judged one by one with the same ratio, and the soft ones,
grown by a block, are sharpened alone (:func:`soft_parts`, :func:`sharpened_in`). On generated
scenes (a real 40-55 px face blurred by sigma 2-3.5 px and darkened to 40% in a sharp 720p or
1080p picture, 16 kinds, 4 scenes each, 12 frames through x264: ``benchmarks/softparts.py``)
the face was covered on 696 of 768 frames against 616 without; on the fresh clips
(``benchmarks/fresh.py``) a canteen against a bright window and a classroom filmed on a phone
left 32 proposals exposed against 114. The real benchmark's sharp shop clip has no soft block
and is unchanged. The price is false finds on smooth clutter (generated backgrounds' shapes read
soft). Photos keep the verdict for the whole picture (a second look at each would double their
time).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["Focus", "soft_parts", "softness", "sharpened", "sharpened_in"]

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
#: In a picture that is not soft all over, blocks of this side (at :data:`LINES` lines) are judged
#: one by one: a blurred background behind a sharp subject.
BLOCK = 24
#: A block whose coarse detail is under this (grey levels) is flat: nothing in it to judge.
FLAT = 0.5


def _at_lines(image: np.ndarray) -> np.ndarray:
    """``image`` shrunk to :data:`LINES` lines, or itself when it has no more."""
    h, w = image.shape[:2]
    if h <= LINES:
        return image
    return cv2.resize(image, (max(1, round(w * LINES / h)), LINES), interpolation=cv2.INTER_AREA)


def _detail(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|picture - blur(1)| and |picture - blur(4)| of a grey copy at :data:`LINES` lines: the
    picture's fine and coarse detail, pixel by pixel."""
    g = _at_lines(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).astype(np.float32)
    return np.abs(g - cv2.GaussianBlur(g, (0, 0), 1.0)), np.abs(g - cv2.GaussianBlur(g, (0, 0), 4.0))


def _ratio(fine: np.ndarray, coarse: np.ndarray) -> float:
    c = float(coarse.mean())
    if c < FLAT:  # flat: no detail at any scale, nothing to sharpen
        return 1.0
    return float(fine.mean()) / c


def softness(rgb: np.ndarray) -> float:
    """How much of an RGB picture's detail is fine: mean |picture - blur(1)| over mean
    |picture - blur(4)|, at :data:`LINES` lines. Lower is softer; a flat picture reads 1."""
    return _ratio(*_detail(rgb))


def soft_parts(rgb: np.ndarray, fine: np.ndarray | None = None,
               coarse: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
    """Rectangles (x1, y1, x2, y2 in ``rgb``'s pixels) round the soft parts of a picture: blocks
    of :data:`BLOCK` px at :data:`LINES` lines whose fine detail is under :data:`SOFT` of their
    coarse detail (flat blocks left out), each grown by a block so that a face across a block's
    edge is inside, touching ones joined. ``fine``, ``coarse``: :func:`_detail` of ``rgb``."""
    if fine is None or coarse is None:
        fine, coarse = _detail(rgb)
    h, w = fine.shape
    rows, cols = max(1, round(h / BLOCK)), max(1, round(w / BLOCK))
    f = cv2.resize(fine, (cols, rows), interpolation=cv2.INTER_AREA)
    c = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_AREA)
    soft = ((c >= FLAT) & (f < SOFT * c)).astype(np.uint8)
    if not soft.any():
        return []
    soft = cv2.dilate(soft, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(soft, connectivity=8)
    fy, fx = rgb.shape[0] / rows, rgb.shape[1] / cols
    return [(round(x * fx), round(y * fy), round((x + bw) * fx), round((y + bh) * fy))
            for x, y, bw, bh, _ in stats[1:n]]


def _unsharp(rgb: np.ndarray, k: float) -> np.ndarray:
    """The unsharp mask of sigma :data:`SIGMA` x ``k`` px: on a picture of ``k`` x :data:`LINES`
    lines (``k`` > 1) its blur is taken on a copy ``k`` times smaller and scaled back up, the same
    blur at a fraction of the cost of a wide kernel."""
    h, w = rgb.shape[:2]
    if k > 1:
        small = cv2.resize(rgb, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)
        blur = cv2.resize(cv2.GaussianBlur(small, (0, 0), SIGMA), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        blur = cv2.GaussianBlur(rgb, (0, 0), SIGMA * k)
    return cv2.addWeighted(rgb, 1.0 + AMOUNT, blur, -AMOUNT, 0.0)


def sharpened(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` with an unsharp mask of sigma :data:`SIGMA` at :data:`LINES` lines."""
    return _unsharp(rgb, rgb.shape[0] / LINES)


def sharpened_in(rgb: np.ndarray, parts: list[tuple[int, int, int, int]]) -> np.ndarray:
    """A copy of ``rgb`` with :func:`sharpened`'s mask inside each rectangle of ``parts`` and the
    pixels outside as they are. Each part's blur sees the picture round it (three sigmas), so
    its edges are sharpened as they would be in the whole picture."""
    out = rgb.copy()
    h, w = rgb.shape[:2]
    k = h / LINES
    pad = int(np.ceil(3 * SIGMA * max(k, 1.0) + max(k, 1.0)))
    for x1, y1, x2, y2 in parts:
        cx1, cy1, cx2, cy2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
        part = _unsharp(rgb[cy1:cy2, cx1:cx2], k)
        out[y1:y2, x1:x2] = part[y1 - cy1:y2 - cy1, x1 - cx1:x2 - cx1]
    return out


class Focus:
    """The picture the detector is shown, frame after frame of one stream: sharpened while the
    stream's pictures are soft (see module docs), else the picture itself. ``regional``: in a
    picture that is not soft all over, its soft parts (:func:`soft_parts`) sharpened."""

    def __init__(self, enabled: bool = True, *, regional: bool = False) -> None:
        self.enabled = enabled
        self.regional = regional
        self._soft = False
        self._parts: list[tuple[int, int, int, int]] = []
        self._seen = 0
        #: Frames shown sharpened, all over and in parts (tests and benchmarks read them).
        self.sharpened = 0
        self.sharpened_parts = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if not self.enabled or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
            return rgb
        if self._seen % EVERY == 0:
            fine, coarse = _detail(rgb)
            self._soft = _ratio(fine, coarse) < (SHARP if self._soft else SOFT)
            self._parts = soft_parts(rgb, fine, coarse) if self.regional and not self._soft else []
        self._seen += 1
        if self._soft:
            self.sharpened += 1
            return sharpened(rgb)
        if self._parts:
            self.sharpened_parts += 1
            return sharpened_in(rgb, self._parts)
        return rgb
