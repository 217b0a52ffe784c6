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
from av.video.reformatter import Colorspace

from .types import Frame

__all__ = ["to_frame", "from_rgb", "from_frame", "pack", "unpack", "is_packed", "luma", "region_rgb",
           "put_region_rgb"]

# AVColorRange: 0 unspecified, 1 MPEG (limited, 16-235), 2 JPEG (full).
_LIMITED = (0, 1)


def _plain_420(fmt: str, width: int, height: int) -> bool:
    return fmt == "yuv420p" and width % 2 == 0 and height % 2 == 0


def to_frame(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The decoded ``frame`` as H x W x 3 uint8 RGB, and its 4:2:0 planes (I420 layout,
    ``H * 3 / 2`` x ``W``) when it is plain 8-bit limited-range 4:2:0, else None.

    RGB is always BT.601's, whatever matrix the video was made with: the encoder's way back
    (OpenCV's, or libswscale's default) is BT.601's too, so the values written mean what the
    input's meant under its own matrix, and the output carries the input's tags (``sinks``).
    The detector sees a BT.709 picture's colours a little off, which it does not mind."""
    if _plain_420(frame.format.name, frame.width, frame.height) and frame.color_range in _LIMITED:
        planes = frame.to_ndarray(format="yuv420p")
        return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420), planes
    return frame.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU601), None


def from_rgb(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A frame for an encoder that takes ``pix_fmt``, from H x W x 3 uint8 RGB ``image``."""
    h, w = image.shape[:2]
    if _plain_420(pix_fmt, w, h):
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def from_frame(frame: Frame, pix_fmt: str) -> av.VideoFrame:
    """A frame for an encoder that takes ``pix_fmt``: ``frame``'s planes as they are when it is
    packed and the encoder takes 4:2:0 (no conversion at all), else from its RGB picture."""
    if is_packed(frame) and _plain_420(pix_fmt, frame.width, frame.height):
        return av.VideoFrame.from_ndarray(frame.packed, format="yuv420p")
    return from_rgb(unpack(frame).image, pix_fmt)


def _placeholder(h: int, w: int) -> np.ndarray:
    return np.broadcast_to(np.zeros((1, 1, 1), np.uint8), (h, w, 3))


def is_packed(frame: Frame) -> bool:
    """Whether ``frame``'s picture is its 4:2:0 planes (``frame.packed``), its ``image`` a
    placeholder (see :func:`pack`)."""
    return frame.packed is not None and frame.image.strides == (0, 0, 0)


def pack(frame: Frame) -> None:
    """Keep ``frame``'s picture as 4:2:0 YUV until :func:`unpack`. Meanwhile ``frame.image`` is
    a read-only all-black placeholder of the same shape (size checks still work; a stage that
    tried to draw on it would fail loudly). A frame that still has its decoded planes (the
    source keeps them, ``frame.packed`` beside ``image``) just drops its RGB copy: no
    conversion. Frames of odd size stay as they are."""
    h, w = frame.image.shape[:2]
    if is_packed(frame) or h % 2 or w % 2:
        return
    if frame.packed is None:
        frame.packed = cv2.cvtColor(frame.image, cv2.COLOR_RGB2YUV_I420)
    frame.image = _placeholder(h, w)


def unpack(frame: Frame) -> Frame:
    """``frame`` with its RGB picture back (after :func:`pack`; otherwise as it is). The planes
    are dropped either way: ``image`` is the one picture from here on, free to draw on."""
    if is_packed(frame):
        frame.image = cv2.cvtColor(frame.packed, cv2.COLOR_YUV2RGB_I420)
    elif frame.packed is not None:
        frame.image.flags.writeable = True  # the source kept it read-only beside the planes
    frame.packed = None
    return frame


def luma(frame: Frame) -> np.ndarray:
    """The frame's grey picture: its Y plane when it keeps its planes (no conversion), else from RGB."""
    if frame.packed is not None:
        return _planes(frame.packed, frame.width, frame.height)[0]
    return cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)


def _planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = i420.reshape(-1)
    n, q = width * height, width * height // 4
    return (flat[:n].reshape(height, width), flat[n:n + q].reshape(height // 2, width // 2),
            flat[n + q:n + 2 * q].reshape(height // 2, width // 2))


def region_rgb(frame: Frame, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """RGB of the region ``x1..x2, y1..y2`` (even numbers) of a packed ``frame``'s planes."""
    y, u, v = _planes(frame.packed, frame.width, frame.height)
    h, w = y2 - y1, x2 - x1
    part = np.empty((h * 3 // 2, w), np.uint8)
    flat = part.reshape(-1)
    flat[:h * w] = y[y1:y2, x1:x2].reshape(-1)
    flat[h * w:h * w * 5 // 4] = u[y1 // 2:y2 // 2, x1 // 2:x2 // 2].reshape(-1)
    flat[h * w * 5 // 4:] = v[y1 // 2:y2 // 2, x1 // 2:x2 // 2].reshape(-1)
    return cv2.cvtColor(part, cv2.COLOR_YUV2RGB_I420)


def put_region_rgb(frame: Frame, x1: int, y1: int, rgb: np.ndarray) -> None:
    """Write ``rgb`` (even width and height) into a packed ``frame``'s planes at ``x1, y1`` (even)."""
    y, u, v = _planes(frame.packed, frame.width, frame.height)
    h, w = rgb.shape[:2]
    flat = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y[y1:y1 + h, x1:x1 + w] = flat[:h * w].reshape(h, w)
    u[y1 // 2:(y1 + h) // 2, x1 // 2:(x1 + w) // 2] = flat[h * w:h * w * 5 // 4].reshape(h // 2, w // 2)
    v[y1 // 2:(y1 + h) // 2, x1 // 2:(x1 + w) // 2] = flat[h * w * 5 // 4:].reshape(h // 2, w // 2)
