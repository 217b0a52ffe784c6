"""The face detector interface, and one BlazeFace model behind it.

A detector is anything with ``detect(rgb) -> list[Detection]`` (boxes in pixels of
the image it was given) and ``close()``. The pipeline only sees that interface, so
a tiled detector or another model replaces :class:`BlazeFaceDetector` without
touching anything else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from ..errors import ModelError
from ..types import Detection, normal_roll
from .blazeface import BlazeFace

__all__ = ["FaceDetector", "BlazeFaceDetector", "detect_upright"]

log = logging.getLogger(__name__)


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an H x W x 3 uint8 RGB image, boxes in that image's pixels."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what LiteRT's C++ code prints to fd 2 while a model loads.

    It prints INFO/WARNING lines on start and first use that no setting turns
    off; a user should see our one-line messages, not theirs. Only used while a
    detector is built, before any progress output exists.
    """
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
    """BlazeFace on the whole image (letterboxed into the model's 192 or 128 px square).

    ``model="full"`` is the bundled full-range model (faces up to ~5 m away),
    ``"short"`` the short-range one (near faces, ~3x cheaper). Both ship inside
    the ``mediapipe==0.10.21`` wheel and run on LiteRT (see :mod:`.blazeface`);
    nothing is downloaded.
    """

    def __init__(self, threshold: float | None = None, model: str = "full") -> None:
        if model not in ("full", "short"):
            raise ValueError(f"model must be 'full' or 'short', got {model!r}")
        with _native_stderr_silenced():  # LiteRT prints a line about its CPU delegate
            self._impl: BlazeFace | None = BlazeFace(model, threshold)
            # The first call sets up the CPU delegate's kernels; do it now, not on a frame.
            self._impl.detect_rolled(np.zeros((64, 64, 3), np.uint8))
        # An interpreter takes one call at a time.
        self._lock = threading.Lock()
        self.model = model

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(d.box, d.score, roll) for d, roll in self.detect_rolled(image)]

    def detect_rolled(self, image: np.ndarray) -> list[tuple[Detection, float]]:
        """Faces with their roll in degrees: the eye line's angle (y down), from the keypoints."""
        return self.detect_peak(image)[0]

    def detect_peak(self, image: np.ndarray,
                    min_score: float | None = None) -> tuple[list[tuple[Detection, float]], float]:
        """:meth:`detect_rolled` and the best score of any anchor, found or not; ``min_score``
        replaces the threshold for this call."""
        if self._impl is None:
            raise ModelError("the face detector was closed")
        with self._lock:
            return self._impl.detect_peak(image, min_score)

    def close(self) -> None:
        impl, self._impl = getattr(self, "_impl", None), None
        if impl is not None:
            impl.close()

    def __enter__(self) -> BlazeFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    # The upright picture is the stored one turned counter-clockwise by 90k degrees, which took
    # 90k from every face's roll.
    return [
        Detection(box=d.box.rotated(360 - 90 * k, uw, uh), score=d.score, roll=normal_roll(d.roll + 90 * k))
        for d in detector.detect(upright)
    ]
