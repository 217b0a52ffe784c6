"""What the detector is shown of a dim or off-colour picture: its levels stretched, channel by channel.

BlazeFace scores a face by its pixels as they are, and it was trained on daylight photos. At
night, in a dim room or under coloured stage light a face's pixels sit in a narrow, tinted
band: real faces of the benchmark's photos, relit as a street at night (a tenth of the light,
sodium-amber) or under magenta stage light, lost about a sixth of the short-range model's
finds (faces of 20-200 px in a crop of their own: 54% -> 45% found). Stretching each channel
from its 1st to its 99th percentile to the full range (what a photo editor's "auto levels" does)
gave back most of it (52% and 51%), at no model call: the detector looks at a copy so
stretched, the output keeps the original pixels.

A picture that already spans the range is shown as it is: only a channel that would need more
than :data:`GATE` times its contrast turns the stretch on, so daylight footage is not touched
at all. In video the stretch is held from frame to frame while the picture's levels stay
within :data:`HOLD` grey levels of it: a stretch that flickered would make every tile of the
frame look changed to the sweep's change map.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Stretch", "Levels", "measure"]

#: Percentiles each channel is stretched between: the darkest and brightest 1% may clip.
LOW, HIGH = 1.0, 99.0
#: A channel's contrast is raised by at most this factor (more raises noise, not faces).
MAX_GAIN = 4.0
#: The stretch is used when some channel would gain at least this factor: dim or tinted pictures
#: (night 3-4x, stage light 2.8-3.5x on the benchmark's relit photos), not daylight (the real
#: benchmark's photos and clips 1.0-1.55x; among the fresh clips a dim sitcom kitchen reaches 2.5x).
GATE = 2.0
#: Grey levels a channel's ends may move before a video's stretch is measured anew.
HOLD = 6
#: About this many pixels are sampled to measure a picture's levels.
SAMPLES = 1 << 16


@dataclass(frozen=True, slots=True)
class Stretch:
    """Each channel's (R, G, B) darkest and brightest level, mapped to 0 and 255."""

    low: tuple[int, int, int]
    high: tuple[int, int, int]

    @property
    def gain(self) -> float:
        """The largest factor a channel's contrast would need (the table caps it at :data:`MAX_GAIN`)."""
        return max(255 / max(h - lo, 1) for lo, h in zip(self.low, self.high, strict=True))

    def near(self, other: Stretch, tol: int = HOLD) -> bool:
        ends = zip(self.low + self.high, other.low + other.high, strict=True)
        return all(abs(a - b) <= tol for a, b in ends)

    def table(self) -> np.ndarray:
        """The 256 x 1 x 3 look-up table ``cv2.LUT`` applies."""
        x = np.arange(256, dtype=np.float32)[:, None]
        low = np.array(self.low, np.float32)
        gain = np.minimum(255 / np.maximum(np.array(self.high, np.float32) - low, 1), MAX_GAIN)
        return np.clip((x - low) * gain + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def measure(rgb: np.ndarray) -> Stretch:
    """The stretch ``rgb`` (H x W x 3 uint8) would take: each channel's 1st and 99th percentile."""
    h, w = rgb.shape[:2]
    step = max(1, int((h * w / SAMPLES) ** 0.5))
    sample = rgb[::step, ::step].reshape(-1, 3)
    low, high = [], []
    for c in range(3):
        cum = np.cumsum(np.bincount(sample[:, c], minlength=256))
        n = cum[-1]
        low.append(int(np.searchsorted(cum, n * LOW / 100)))
        high.append(int(np.searchsorted(cum, n * HIGH / 100)))
    return Stretch(tuple(low), tuple(high))  # type: ignore[arg-type]


class Levels:
    """The picture the detector is shown, frame after frame of one stream (see module docs).
    One per stream: it holds a video's stretch while the picture's levels stay near it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stretch: Stretch | None = None
        self._table: np.ndarray | None = None
        #: Frames shown stretched (tests read it).
        self.stretched = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` as the detector should see it: stretched, or ``rgb`` itself."""
        if not self.enabled or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
            return rgb
        now = measure(rgb)
        if self._stretch is None or not now.near(self._stretch):
            self._stretch = now
            self._table = now.table() if now.gain >= GATE else None
        if self._table is None:
            return rgb
        self.stretched += 1
        return cv2.LUT(np.ascontiguousarray(rgb), self._table)
