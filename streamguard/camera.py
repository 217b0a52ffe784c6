"""How the camera moved between two frames: the picture's pan, tilt, roll and zoom as a whole.

A handheld camera that swings moves every face in the picture with it, faster than the faces
walk. A tracker that only knows each face's own motion then guesses an unseen face's place from
its last steps, while the camera has turned the other way: on a handheld street clip a face that
the detector lost behind face paint was covered where it had been, a face-width beside where it
was. :class:`CameraMotion` estimates the frame-to-frame motion of the background (corners
followed by pyramidal Lucas-Kanade optical flow on a small grey copy, a similarity transform
fitted with RANSAC, so that people walking across are outvoted), and the tracker moves its
faces' guesses with it (:meth:`~streamguard.track.Tracker.update`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .colour import luma
from .types import Box, Frame

__all__ = ["CameraMotion", "apply", "compose", "identity", "invert", "scale_of", "warp_box"]

#: Width of the grey copy the motion is measured on: 3.5-4 ms a 720p or 1080p frame on a slow
#: 2-core machine, and half a pixel there is 2-3 px of such a frame, well under a face's size.
_WIDTH = 320
_CORNERS = 200
#: A fit needs this many corners that agree (inliers) and this share of those followed: a
#: frame filled by one person walking past, or a white wall, gives no trustworthy motion.
_MIN_INLIERS = 20
_MIN_SHARE = 0.4
#: RANSAC's reprojection error, in pixels of the grey copy.
_RANSAC_PX = 1.0
#: Motions this close to no motion (px of the copy) are taken as none: a still camera's noise.
_STILL = 0.15


def identity() -> np.ndarray:
    """The 3x3 matrix of no motion."""
    return np.eye(3)


def compose(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The motion ``before`` followed by ``after`` (3x3 matrices)."""
    return after @ before


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse motion."""
    return np.linalg.inv(m)


def apply(m: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Where the point ``(x, y)`` goes."""
    return (float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2]))


def scale_of(m: np.ndarray) -> float:
    """The zoom factor of a similarity transform."""
    return float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))


def warp_box(m: np.ndarray, box: Box) -> Box:
    """``box`` carried by the motion ``m``: its centre moved, its size zoomed."""
    cx, cy = apply(m, *box.center)
    s = scale_of(m)
    return Box.from_center(cx, cy, box.width * s, box.height * s)


class CameraMotion:
    """Frame-to-frame motion of the picture as a whole.

    Call it on each frame in order; it returns the 3x3 similarity transform from the previous
    frame's pixels to this one's, or None when it cannot tell (the first frame, after
    :meth:`reset`, a frame with too little texture or too much moving in it).
    """

    def __init__(self, width: int = _WIDTH) -> None:
        self.width = width
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a scene cut: no motion between two shots)."""
        self._prev = None

    def __call__(self, frame: Frame) -> np.ndarray | None:
        grey = luma(frame)
        # Every step-th pixel first, down to about twice the width: an area average of a 1080p
        # frame straight to 320 px costs 2-4 ms, this 0.5 ms, and corners are found as well.
        step = max(1, grey.shape[1] // (2 * self.width))
        grey = grey[::step, ::step]
        h, w = grey.shape
        k = min(1.0, self.width / w)
        small = cv2.resize(grey, (max(8, round(w * k)), max(8, round(h * k))), interpolation=cv2.INTER_AREA)
        k /= step
        prev, self._prev = self._prev, small
        if prev is None or prev.shape != small.shape:
            return None
        m = self._estimate(prev, small)
        if m is None:
            return None
        # From the small copy's pixels to the frame's: the same rotation and zoom, the shift 1/k.
        m[:2, 2] /= k
        return m

    @staticmethod
    def _estimate(prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
        pts = cv2.goodFeaturesToTrack(prev, maxCorners=_CORNERS, qualityLevel=0.01, minDistance=7,
                                      blockSize=7)
        if pts is None or len(pts) < _MIN_INLIERS:
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=2)
        ok = status.reshape(-1) == 1
        if ok.sum() < _MIN_INLIERS:
            return None
        a, b = pts.reshape(-1, 2)[ok], nxt.reshape(-1, 2)[ok]
        fit, inliers = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX)
        if fit is None or inliers is None:
            return None
        n = int(inliers.sum())
        if n < _MIN_INLIERS or n < _MIN_SHARE * len(a):
            return None
        m = np.vstack([fit, [0.0, 0.0, 1.0]])
        # A still camera: its noise would only jitter the tracks.
        h, w = cur.shape
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64)
        if np.abs((corners @ m.T)[:, :2] - corners[:, :2]).max() < _STILL:
            return identity()
        return m
