"""The pipeline stages that run a face detector, and the detector the options ask for."""

from __future__ import annotations

from ..config import DetectConfig
from ..types import Frame, Region, Stage
from .base import FaceDetector, detect_upright
from .fuse import unite
from .shown import Shown
from .tiling import TiledDetector

__all__ = ["DetectStage", "DetectionsToRegions", "create_detector"]


def create_detector(config: DetectConfig) -> FaceDetector:
    """The detector the options ask for: multi-scale tiled BlazeFace for the config's preset."""
    return TiledDetector(config.preset, min_face=config.min_face, threshold=config.threshold)


class DetectStage(Stage):
    """Runs the detector on every ``every``-th frame and stores what it found. ``levels``: show
    the detector a dim or tinted picture stretched (:mod:`.levels`) and a soft one sharpened
    (:mod:`.focus`). ``both`` (photos): when the picture is so changed, look at it as it is too
    and unite the finds of the two."""

    def __init__(self, detector: FaceDetector, every: int = 1, *, levels: bool = True,
                 both: bool = False) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector = detector
        self.every = every
        self.shown = Shown(levels)
        self.both = both

    def __call__(self, frame: Frame) -> Frame:
        if frame.index % self.every == 0:
            image = self.shown(frame.image)
            found = detect_upright(self.detector, image, frame.rotation)
            if self.both and image is not frame.image:
                # The stretch finds more faces in a dim or tinted photo but not the same ones: under
                # stage light (benchmarks/real.py --light stage) it lost a 104 px profile the
                # picture as it is shows. A photo is looked at once; it can afford both looks.
                plain = detect_upright(self.detector, frame.image, frame.rotation)
                found = unite([*found, *plain])
            frame.detections = tuple(found)
            frame.detected = True
        return frame


class DetectionsToRegions(Stage):
    """Cover exactly what was detected (still images, or video without tracking)."""

    def __call__(self, frame: Frame) -> Frame:
        frame.regions = tuple(Region(box=d.box, source="detection", score=d.score) for d in frame.detections)
        return frame
