"""Value types that flow through the pipeline: boxes, detections, covered regions, frames."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

__all__ = ["Box", "Detection", "Region", "RegionSource", "Frame", "Stage", "overlap_groups", "normal_roll"]


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixels, ``x2``/``y2`` exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x1, self.y1, self.x2, self.y2)):
            raise ValueError(f"Box coordinates must be finite, got {self!r}")

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, x + w, y + h)

    @classmethod
    def from_center(cls, cx: float, cy: float, w: float, h: float) -> Box:
        return cls(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, sx: float, sy: float | None = None) -> Box:
        sy = sx if sy is None else sy
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    @classmethod
    def bounding(cls, boxes: Iterable[Box]) -> Box:
        """The smallest box that holds all of ``boxes`` (at least one)."""
        bs = list(boxes)
        return cls(min(b.x1 for b in bs), min(b.y1 for b in bs), max(b.x2 for b in bs), max(b.y2 for b in bs))

    def contains(self, other: Box) -> bool:
        """Whether ``other`` lies wholly inside this box."""
        return self.x1 <= other.x1 and self.y1 <= other.y1 and other.x2 <= self.x2 and other.y2 <= self.y2

    def lerp(self, other: Box, k: float) -> Box:
        """The box ``k`` of the way from this one to ``other`` (0 = this, 1 = other), edge by edge."""
        return Box(self.x1 + (other.x1 - self.x1) * k, self.y1 + (other.y1 - self.y1) * k,
                   self.x2 + (other.x2 - self.x2) * k, self.y2 + (other.y2 - self.y2) * k)

    def grown(self, fraction: float) -> Box:
        """The box enlarged by ``fraction`` of its size on every side (0.1 = 10% each side)."""
        dx, dy = self.width * fraction, self.height * fraction
        return Box(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def clipped(self, width: int, height: int) -> Box:
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def mirrored(self, width: float) -> Box:
        """This box in the picture mirrored left to right (``width`` px wide)."""
        return Box(width - self.x2, self.y1, width - self.x1, self.y2)

    def rotated(self, degrees: int, width: int, height: int) -> Box:
        """Map a box from an image ``width`` x ``height`` into that image turned
        counter-clockwise by ``degrees`` (a multiple of 90), as ``np.rot90`` turns it."""
        k = (degrees // 90) % 4
        b = self
        w, h = width, height
        for _ in range(k):
            # One counter-clockwise quarter turn: (x, y) -> (y, w - x).
            b = Box(b.y1, w - b.x2, b.y2, w - b.x1)
            w, h = h, w
        return b

    def as_int(self) -> tuple[int, int, int, int]:
        """Integer pixel bounds that contain the box (floor the start, ceil the end)."""
        return (
            math.floor(self.x1),
            math.floor(self.y1),
            math.ceil(self.x2),
            math.ceil(self.y2),
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by a detector: its face box (eyes, nose, mouth) and confidence."""

    box: Box
    score: float
    #: The eye line's angle in degrees (y down, -180..180]: 0 upright, about +-90 a face lying on
    #: its side, 180 upside down. Lets a face be followed in a crop turned the way it lies.
    roll: float = 0.0


def normal_roll(degrees: float) -> float:
    """An angle in degrees brought into (-180, 180]."""
    r = math.fmod(degrees, 360.0)
    if r <= -180.0:
        r += 360.0
    elif r > 180.0:
        r -= 360.0
    return r


#: "motion": a part of a live picture that changed since the detector last looked (no face known
#: there yet, covered whole as a rectangle); "curtain": the whole picture hidden.
def overlap_groups(boxes: Sequence[Box]) -> list[list[int]]:
    """Indices of ``boxes`` in groups whose bounding boxes do not overlap one another: boxes that
    overlap, directly or through others, end in one group (empty boxes in none). For covering
    each pixel once where covers overlap."""
    groups: list[tuple[Box, list[int]]] = []
    for i, box in enumerate(boxes):
        if box.is_empty():
            continue
        bound, members = box, [i]
        merged = True
        while merged:  # the grown group may now reach others
            merged = False
            for k, (other, idx) in enumerate(groups):
                if bound.intersection(other) > 0:
                    bound, members = Box.bounding((bound, other)), idx + members
                    del groups[k]
                    merged = True
                    break
        groups.append((bound, members))
    return [members for _, members in groups]


RegionSource = Literal["detection", "prediction", "backfill", "motion", "curtain", "gap"]


@dataclass(frozen=True, slots=True)
class Region:
    """A face box that the anonymizer must cover, and why it is there."""

    box: Box
    source: RegionSource = "detection"
    track_id: int | None = None
    score: float = 1.0

    @property
    def is_face(self) -> bool:
        """Whether ``box`` is a face (covered with the head around it), not an area covered whole."""
        return self.source not in ("motion", "curtain")


@dataclass(slots=True)
class Frame:
    """One video frame or still image on its way through the pipeline.

    ``image`` is H x W x 3 uint8 RGB in stored orientation; ``rotation`` is the
    counter-clockwise display rotation in degrees (0, 90, 180, 270).
    A frame belongs to one stage at a time, so stages edit it in place.
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    rotation: int = 0
    detections: tuple[Detection, ...] = ()
    # True when the detector ran on this frame (it may skip frames for speed).
    detected: bool = False
    regions: tuple[Region, ...] = ()
    # Set only by the anonymizer; sinks refuse frames that are not protected.
    protected: bool = False
    # Wall-clock capture time (live sources) for latency measurement.
    captured_at: float | None = None
    # Frame content could not be trusted (e.g. decode error): cover it whole.
    damaged: bool = False
    notes: list[str] = field(default_factory=list)
    # The picture as 4:2:0 YUV planes (I420 layout). While ``image`` is a placeholder they are
    # the picture (``colour.pack``); beside a real, read-only ``image`` (as a video file source
    # decodes them) they show the same picture, until ``colour.unpack`` drops them.
    packed: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def time(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


class Stage:
    """A step between source and sink: takes frames in order, hands frames on in order.

    Most stages hand on each frame at once (override :meth:`__call__`); a stage
    that needs to look ahead (the tracker's backfill window) may hold frames back
    and return several later. :meth:`flush` returns whatever is still held at end
    of stream. Stages know nothing of threads.
    """

    def process(self, frame: Frame) -> list[Frame]:
        return [self(frame)]

    def __call__(self, frame: Frame) -> Frame:  # pragma: no cover - overridden
        raise NotImplementedError

    def flush(self) -> list[Frame]:
        return []
