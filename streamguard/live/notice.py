"""The privacy curtain of live mode: the whole picture hidden, with a notice saying why."""

from __future__ import annotations

import cv2
import numpy as np

from ..anonymize import curtain
from ..types import Box, Frame, Region

__all__ = ["draw_notice", "hide"]


def draw_notice(image: np.ndarray, text: str) -> None:
    """``text`` on a dark band along the bottom of ``image`` (RGB, in place), where captions go:
    it stays readable in a meeting and keeps the middle of the hidden picture plain."""
    h, w = image.shape[:2]
    scale = max(0.4, w / 1400)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    if tw > 0.94 * w:  # long reasons: shrink to fit rather than run off the picture
        scale *= 0.94 * w / tw
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = th // 2 + 2
    top = max(0, h - th - base - 2 * pad)
    image[top:] //= 4
    cv2.putText(image, text, ((w - tw) // 2, h - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)


def hide(frame: Frame, reason: str) -> None:
    """Curtain the whole of ``frame`` with "Picture hidden: ``reason``" and mark it protected."""
    curtain(frame.image)
    draw_notice(frame.image, f"Picture hidden: {reason}")
    frame.regions = (Region(Box(0, 0, frame.width, frame.height), "curtain"),)
    frame.notes.append(reason)
    frame.protected = True
