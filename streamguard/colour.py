"""RGB to and from the decoder's and encoder's 4:2:0 YUV, the fast way.

Frames that wait (the tracker's look-ahead window) are kept in 4:2:0 too: half the memory
of RGB (at 1080p 3.1 instead of 6.2 MB a frame, 16 frames in the window), and the encoder
takes 4:2:0 anyway, so the pixels come back as they were (chroma that was 4:2:0 to begin
with survives the round trip; 0.07% of values moved, by rounding at the RGB limits).

Nearly every video is 8-bit 4:2:0 (``yuv420p``). OpenCV converts it to RGB and back in a
fraction of the time libswscale takes through PyAV (1080p, one core: to RGB 3.2 against
5.3 ms, from RGB 1.8 against 8.3 ms), with the same BT.601 limited-range arithmetic, so
pixels no face covers come back to the planes they were decoded from (mean error under
half a level, against about one level going through libswscale both ways). Every other
format (full-range "JPEG" YUV, 4:2:2, 10-bit, odd sizes) goes through libswscale as before.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from .types import Frame

__all__ = ["to_rgb", "from_rgb", "pack", "unpack"]

# AVColorRange: 0 unspecified, 1 MPEG (limited, 16-235), 2 JPEG (full).
_LIMITED = (0, 1)


def _plain_420(fmt: str, width: int, height: int) -> bool:
    return fmt == "yuv420p" and width % 2 == 0 and height % 2 == 0


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The decoded ``frame`` as H x W x 3 uint8 RGB."""
    if _plain_420(frame.format.name, frame.width, frame.height) and frame.color_range in _LIMITED:
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def from_rgb(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A frame for an encoder that takes ``pix_fmt``, from H x W x 3 uint8 RGB ``image``."""
    h, w = image.shape[:2]
    if _plain_420(pix_fmt, w, h):
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def pack(frame: Frame) -> None:
    """Keep ``frame``'s picture as 4:2:0 YUV until :func:`unpack`. Meanwhile ``frame.image`` is
    a read-only all-black placeholder of the same shape (size checks still work; a stage that
    tried to draw on it would fail loudly). Frames of odd size stay as they are."""
    h, w = frame.image.shape[:2]
    if frame.packed is not None or h % 2 or w % 2:
        return
    frame.packed = cv2.cvtColor(frame.image, cv2.COLOR_RGB2YUV_I420)
    frame.image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, w, 3))


def unpack(frame: Frame) -> Frame:
    """``frame`` with its RGB picture back (after :func:`pack`; otherwise as it is)."""
    if frame.packed is not None:
        frame.image = cv2.cvtColor(frame.packed, cv2.COLOR_YUV2RGB_I420)
        frame.packed = None
    return frame
