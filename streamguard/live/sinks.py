"""Live outputs: a recording, a virtual camera and a preview window.

Each takes the frames :class:`~streamguard.live.LiveSession` marked protected (``write``
refuses any other) and is closed by its owner, not by the session.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..anonymize import draw_outline
from ..config import EncodeConfig
from ..errors import DeviceError
from ..sinks import VideoFileSink, require_protected
from ..sources import VideoInfo
from ..types import Frame
from .cameras import TIME_BASE
from .notice import draw_notice

__all__ = ["RECORD_PRESET", "RecordSink", "VirtualCamSink", "PreviewWindow"]

#: x264 preset of live recordings: a third of "veryfast"'s CPU per frame, left to the detector,
#: for files about three times larger.
RECORD_PRESET = "superfast"


_END = object()


class RecordSink:
    """Records protected live frames to a video file, encoding on its own thread.

    Uses :class:`~streamguard.sinks.VideoFileSink` (temporary name, renamed by ``close``), with
    each frame's capture time as its timestamp. When the encoder falls behind, frames are
    dropped from the recording (counted in :attr:`dropped`) rather than delaying the live picture.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: float,
        encode: EncodeConfig | None = None,
        *,
        overwrite: bool = False,
        queue_size: int = 15,
    ) -> None:
        info = VideoInfo(
            path=Path(path),
            width=width,
            height=height,
            fps=Fraction(fps).limit_denominator(1001),
            time_base=TIME_BASE,
            frames=None,
            duration=None,
            codec="rawvideo",
            audio_streams=0,
        )
        # Nothing to copy metadata from: a camera has no container.
        encode = replace(encode or EncodeConfig(preset=RECORD_PRESET), keep_metadata=False)
        self._sink = VideoFileSink(path, info, encode, overwrite=overwrite, copy_audio=False)
        self.path = self._sink.path
        self.dropped = 0
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._last_pts: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="streamguard-live-record", daemon=True)
        self._thread.start()

    @property
    def frames(self) -> int:
        return self._sink.frames

    def write(self, frame: Frame) -> None:
        require_protected(frame)
        if self._error is not None:
            raise self._error
        try:
            self._q.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            frame = self._q.get()
            if frame is _END:
                return
            if self._error is not None:
                continue
            # Two frames read in the same tick must still get increasing timestamps.
            if self._last_pts is not None and frame.pts is not None and frame.pts <= self._last_pts:
                frame.pts = self._last_pts + 1
            self._last_pts = frame.pts
            try:
                self._sink.write(frame)
            except BaseException as e:  # noqa: BLE001 - raised in the writer's thread on next write/close
                self._error = e

    def close(self, success: bool = True) -> Path | None:
        """Finish and move the file into place (``success``), or remove it. Idempotent."""
        if not self._closed:
            self._closed = True
            self._q.put(_END)
            self._thread.join()
        if self._error is not None:
            self._sink.close(success=False)
            raise self._error
        return self._sink.close(success=success)


def _virtual_cam_fix() -> str:
    if sys.platform.startswith("linux"):
        return (
            "load the v4l2loopback module: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
            "(package v4l2loopback-dkms)"
        )
    return "install OBS Studio 28 or newer and start its Virtual Camera once"


class VirtualCamSink:
    """Protected frames to a virtual camera that meeting apps can pick (via ``pyvirtualcam``)."""

    def __init__(self, width: int, height: int, fps: float, device: str | None = None) -> None:
        try:
            import pyvirtualcam
        except ImportError as e:
            raise DeviceError(
                "virtual camera: pyvirtualcam is not installed; install it with "
                f"pip install 'streamguard[live]', then {_virtual_cam_fix()}"
            ) from e
        try:
            self._cam = pyvirtualcam.Camera(
                width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device, print_fps=False
            )
        except Exception as e:  # RuntimeError for every missing/broken backend
            why = str(e).split(". ")[0].replace("'v4l2loopback' backend: ", "")
            raise DeviceError(f"virtual camera: {why}; {_virtual_cam_fix()}") from e
        self.device = str(self._cam.device)
        self.width, self.height = width, height

    def write(self, frame: Frame) -> None:
        require_protected(frame)
        self._cam.send(np.ascontiguousarray(frame.image))

    def close(self, success: bool = True) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is None:
            return
        try:
            # A virtual camera may keep showing the last frame after we stop: make it say so.
            last = np.zeros((self.height, self.width, 3), np.uint8)
            draw_notice(last, "streamguard stopped")
            cam.send(last)
        finally:
            cam.close()


class PreviewWindow:
    """An OpenCV window showing the protected picture with fps, latency and face count.

    ``q``/Esc or closing the window set ``stop``; ``b`` toggles the covered regions' outlines.
    Call :meth:`write` from the main thread (macOS draws windows there only).
    """

    QUIT_KEYS = (ord("q"), ord("Q"), 27)
    OUTLINE_KEYS = (ord("b"), ord("B"))

    def __init__(
        self,
        stop: threading.Event,
        title: str = "streamguard live",
        *,
        margin: float = 0.5,
        outlines: bool = False,
    ) -> None:
        self.stop = stop
        self.title = title
        self.margin = margin
        self.outlines = outlines
        self.quit_reason: str | None = None
        self._opened = False
        self._shown: deque[float] = deque(maxlen=31)

    @staticmethod
    def check_display() -> None:
        """Raise :class:`DeviceError` where no window can open (Qt would abort the process)."""
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise DeviceError(
                "--preview: no display (DISPLAY is not set); run it in a desktop session, "
                "or use --virtual-cam / --record"
            )

    def _hud(self, image: np.ndarray, frame: Frame) -> None:
        now = time.monotonic()
        self._shown.append(now)
        span = self._shown[-1] - self._shown[0]
        fps = (len(self._shown) - 1) / span if span > 0 else 0.0
        latency = (now - frame.captured_at) * 1000 if frame.captured_at is not None else 0.0
        faces = sum(1 for r in frame.regions if r.is_face)
        lines = [f"{fps:4.1f} fps  {latency:3.0f} ms  {faces} face(s)"]
        lines.append(f"HIDDEN: {frame.notes[-1]}" if frame.notes else "faces covered")
        scale = max(0.4, image.shape[1] / 1600)
        y = 0
        for i, text in enumerate(lines):
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y += th + base + 6
            image[y - th - base - 6 : y, 0 : tw + 12] //= 3
            colour = (255, 90, 90) if i == 1 and frame.notes else (255, 255, 255)
            cv2.putText(
                image, text, (6, y - base - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA
            )

    def write(self, frame: Frame) -> None:
        require_protected(frame)
        if self.quit_reason is not None:
            return  # never reopen a window the user closed
        image = frame.image.copy()  # outlines and the HUD are for the preview only
        if self.outlines:
            for r in frame.regions:
                if r.source != "curtain":  # moving areas too: the user sees why they are blurred
                    draw_outline(image, r, self.margin)
        self._hud(image, frame)
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            self._opened = True
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.handle_key(cv2.waitKey(1))
        if self.quit_reason is None and self._closed():
            self.quit("window closed")

    def handle_key(self, key: int) -> None:
        if key < 0:
            return
        key &= 0xFF
        if key in self.QUIT_KEYS:
            self.quit("key pressed")
        elif key in self.OUTLINE_KEYS:
            self.outlines = not self.outlines

    def _closed(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True  # the window no longer exists

    def quit(self, reason: str) -> None:
        self.quit_reason = reason
        self.stop.set()

    def close(self, success: bool = True) -> None:
        if self._opened:
            self._opened = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the GUI loop actually take it down
            except cv2.error:
                pass
