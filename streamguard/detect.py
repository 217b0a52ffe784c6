"""Face detectors and the pipeline stage that runs them.

A detector is anything with ``detect(rgb) -> list[Detection]`` (boxes in pixels of
the image it was given) and ``close()``. The pipeline only sees that interface, so
a tiled detector or another model replaces :class:`BlazeFaceDetector` without
touching anything else.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from .config import DetectConfig
from .errors import ModelError
from .types import Box, Detection, Frame, Region, Stage

__all__ = ["FaceDetector", "BlazeFaceDetector", "DetectStage", "DetectionsToRegions", "create_detector"]

log = logging.getLogger(__name__)


def _import_face_detection() -> Any:
    """MediaPipe's face detection solution, without the matplotlib it does not need.

    ``mediapipe.python.solutions`` imports all its solutions, and with them drawing_utils,
    which imports matplotlib.pyplot at the top for one plotting helper we never call: 28 MB
    of resident memory (measured, of a 600 MB budget at 1080p). Unless matplotlib is loaded
    already, a placeholder stands in for it during the import and is removed after, so code
    that imports matplotlib later gets the real one.
    """
    if "matplotlib" in sys.modules:
        from mediapipe.python.solutions import face_detection

        return face_detection
    mpl, plt = types.ModuleType("matplotlib"), types.ModuleType("matplotlib.pyplot")
    mpl.pyplot = plt  # type: ignore[attr-defined]
    sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = mpl, plt
    try:
        from mediapipe.python.solutions import face_detection
    finally:
        for name, stub in (("matplotlib", mpl), ("matplotlib.pyplot", plt)):
            if sys.modules.get(name) is stub:
                del sys.modules[name]
    return face_detection


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an H x W x 3 uint8 RGB image, boxes in that image's pixels."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what MediaPipe/TFLite's C++ code prints to fd 2 while a graph starts.

    They print INFO/WARNING lines on start and first use that no setting turns
    off; a user should see our one-line messages, not theirs. Only used while a
    detector is built, before any progress output exists.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("STREAMGUARD_NATIVE_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. embedded): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on the whole image (the model sees a 192x192 copy).

    ``model="full"`` is the bundled full-range model (faces up to ~5 m away),
    ``"short"`` the short-range one (near faces, ~3x cheaper). Both ship inside
    the ``mediapipe==0.10.21`` wheel; nothing is downloaded.
    """

    def __init__(self, threshold: float = 0.3, model: str = "full") -> None:
        if model not in ("full", "short"):
            raise ValueError(f"model must be 'full' or 'short', got {model!r}")
        with _native_stderr_silenced():
            try:
                face_detection = _import_face_detection()
            except Exception as e:  # ImportError, or a broken native library
                raise ModelError(f"mediapipe face detection is unavailable: {e}") from e
            try:
                self._impl = face_detection.FaceDetection(
                    model_selection=1 if model == "full" else 0, min_detection_confidence=threshold
                )
                # The first call builds the TFLite interpreter (and prints); do it now.
                self._impl.process(np.zeros((64, 64, 3), np.uint8))
            except Exception as e:
                raise ModelError(f"cannot load the BlazeFace {model}-range model: {e}") from e
        # A MediaPipe graph takes one frame at a time.
        self._lock = threading.Lock()
        self.model = model

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [d for d, _ in self.detect_rolled(image)]

    def detect_rolled(self, image: np.ndarray) -> list[tuple[Detection, float]]:
        """Faces with their roll in degrees: the eye line's angle (y down), from the keypoints."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)
        with self._lock:
            result = self._impl.process(image)
        found = []
        for d in result.detections or ():
            rb = d.location_data.relative_bounding_box
            box = Box.from_xywh(rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h)
            if box.is_empty():
                continue
            kp = d.location_data.relative_keypoints
            roll = 0.0
            if len(kp) > 1:  # keypoint 0 is the right eye (image left), 1 the left eye
                roll = math.degrees(math.atan2((kp[1].y - kp[0].y) * h, (kp[1].x - kp[0].x) * w))
            found.append((Detection(box=box, score=float(d.score[0]) if d.score else 0.0), roll))
        return found

    def close(self) -> None:
        impl, self._impl = getattr(self, "_impl", None), None
        if impl is not None:
            impl.close()

    def __enter__(self) -> BlazeFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_detector(config: DetectConfig) -> FaceDetector:
    """The detector the options ask for: multi-scale tiled BlazeFace for the config's preset."""
    from .tiling import TiledDetector  # tiling imports this module

    return TiledDetector(config.preset, min_face=config.min_face, threshold=config.threshold)


def detect_upright(detector: FaceDetector, image: np.ndarray, rotation: int) -> list[Detection]:
    """Detect on the picture as it is displayed, boxes mapped back to stored pixels.

    A phone clip stored sideways shows faces lying on their side to a detector
    trained on upright faces; turn it first.
    """
    k = (rotation // 90) % 4
    if k == 0:
        return detector.detect(image)
    upright = np.ascontiguousarray(np.rot90(image, k))
    uh, uw = upright.shape[:2]
    return [
        Detection(box=d.box.rotated(360 - 90 * k, uw, uh), score=d.score) for d in detector.detect(upright)
    ]


class DetectStage(Stage):
    """Runs the detector on every ``every``-th frame and stores what it found."""

    def __init__(self, detector: FaceDetector, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector = detector
        self.every = every

    def __call__(self, frame: Frame) -> Frame:
        if frame.index % self.every == 0:
            frame.detections = tuple(detect_upright(self.detector, frame.image, frame.rotation))
            frame.detected = True
        return frame


class DetectionsToRegions(Stage):
    """Cover exactly what was detected (still images, or video without tracking)."""

    def __call__(self, frame: Frame) -> Frame:
        frame.regions = tuple(Region(box=d.box, source="detection", score=d.score) for d in frame.detections)
        return frame
