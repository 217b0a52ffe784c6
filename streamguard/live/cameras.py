"""Cameras for live mode: a real camera through OpenCV, or a video file standing in for one.

:func:`open_source` turns a ``--camera`` argument into one of them. Every source hands out
frames stamped with their capture time (``time.monotonic()``), one at a time, as
:class:`~streamguard.live.LiveSession` reads them.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..api import VIDEO_SUFFIXES
from ..errors import DeviceError, InputError
from ..sources import VideoFileSource
from ..types import Frame

__all__ = ["TIME_BASE", "LiveSource", "StandInCamera", "CameraSource", "open_source", "parse_size"]

log = logging.getLogger(__name__)

#: The time base of live frames' ``pts``: the session stamps each frame with its capture time
#: (since the session started), the recorder in :mod:`.sinks` writes it.
TIME_BASE = Fraction(1, 90_000)


class LiveSource(Protocol):
    """A camera: ``read`` blocks until the next frame is captured."""

    name: str
    width: int
    height: int
    fps: float
    #: Increments when the picture jumps (a looped file restarting): old detections no longer apply.
    segment: int

    def read(self, stop: threading.Event) -> Frame | None:
        """The next frame with ``captured_at`` set (``time.monotonic()``), or None at the end/on stop."""
        ...

    def close(self) -> None: ...


class StandInCamera:
    """A video file played at its native rate on the wall clock, as if it were a camera.

    For demos, tests and benchmarks. Frames are decoded ahead and handed out when their
    presentation time comes; with ``loop`` the file starts over at the end (a new
    :attr:`segment`). ``fps`` replaces the file's own timing with a fixed rate. A display
    rotation is applied, so frames come out upright like a camera's.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        loop: bool = False,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        self._src = VideoFileSource(self.path)  # InputError: missing, not media, no frames, ...
        info = self._src.info
        self._it = iter(self._src)
        try:
            # Decoded now: its display rotation tells which way up the camera "stands".
            self._pending: Frame | None = next(self._it)
        except BaseException:
            self._src.close()
            raise
        self._k = (self._pending.rotation // 90) % 4  # quarter turns to show the picture upright
        w, h = (info.height, info.width) if self._k % 2 else (info.width, info.height)
        self.name, self.width, self.height = str(self.path), w, h
        if size is not None and size != (w, h):
            self._src.close()
            raise DeviceError(
                f"{self.path}: does not support {size[0]}x{size[1]} (it delivers {w}x{h}); "
                f"use --size {w}x{h} or leave --size out"
            )
        self.fps = float(fps) if fps else float(info.fps)
        self._fixed_rate = fps is not None
        self.segment = 0
        #: Index in the file of the frame last returned by :meth:`read`.
        self.position = -1
        self._start: float | None = None
        self._offset = 0.0  # seconds of file time played in earlier loops
        self._first_time: float | None = None
        self._last_time = 0.0
        self._count = 0

    def _next_decoded(self) -> Frame | None:
        if self._pending is not None:
            f, self._pending = self._pending, None
            return f
        f = next(self._it, None)
        if f is not None or not self.loop or self.position < 0:
            return f
        # End of file: start over, one frame interval after the last frame.
        self._offset += self._last_time - (self._first_time or 0.0) + 1.0 / self.fps
        self._src.close()
        self._src = VideoFileSource(self.path)
        self._it = iter(self._src)
        self.segment += 1
        self.position = -1
        return next(self._it, None)

    def read(self, stop: threading.Event) -> Frame | None:
        f = self._next_decoded()
        if f is None:
            return None
        self.position += 1
        t = f.time if f.time is not None else self.position / self.fps
        if self._first_time is None:
            self._first_time = t
        self._last_time = t
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + (
            self._count / self.fps if self._fixed_rate else self._offset + t - self._first_time
        )
        wait = due - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return None
        self._count += 1
        image = f.image if not self._k else np.ascontiguousarray(np.rot90(f.image, self._k))
        return Frame(image=image, index=self._count - 1, captured_at=time.monotonic())

    def close(self) -> None:
        self._src.close()


def _camera_backends() -> list[int]:
    if sys.platform.startswith("linux"):
        return [cv2.CAP_V4L2]
    if sys.platform == "darwin":
        return [cv2.CAP_AVFOUNDATION]
    if sys.platform == "win32":
        # DirectShow opens in well under a second; Media Foundation can take several.
        return [cv2.CAP_DSHOW, cv2.CAP_MSMF]
    return [cv2.CAP_ANY]


def _camera_fix() -> str:
    if sys.platform.startswith("linux"):
        return "list cameras with 'v4l2-ctl --list-devices' (package v4l-utils)"
    if sys.platform == "darwin":
        return "allow camera access for this terminal in System Settings > Privacy & Security > Camera"
    return "check Settings > Privacy > Camera allows desktop apps"


class CameraSource:
    """A real camera through OpenCV (V4L2 on Linux, AVFoundation on macOS, DirectShow/MSMF on Windows).

    ``size`` given: the camera must deliver exactly that (else :class:`DeviceError`); None asks
    for 1280x720 and takes what the camera offers. ``api_preference`` overrides the backend.
    """

    DEFAULT_SIZE = (1280, 720)
    #: A camera that delivers nothing for this long is gone (unplugged, taken by another program).
    MAX_SILENCE = 3.0

    def __init__(
        self,
        device: int | str,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        api_preference: int | None = None,
    ) -> None:
        self.device = device
        self.name = f"camera {device}" if isinstance(device, int) else str(device)
        self.segment = 0
        node = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if api_preference is None and sys.platform.startswith("linux"):
            self._check_node(node)
            self.name = f"camera {device} ({node})" if isinstance(device, int) else node
        backends = [api_preference] if api_preference is not None else _camera_backends()
        want_w, want_h = size or self.DEFAULT_SIZE
        # OpenCV prints multi-line warnings for a missing/busy camera; we say it in one line.
        prev = cv2.setLogLevel(0)
        try:
            cap, first = self._open(backends, want_w, want_h, fps)
        finally:
            cv2.setLogLevel(prev)
        self._cap = cap
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        if size is not None and (self.width, self.height) != size:
            cap.release()
            raise DeviceError(
                f"{self.name}: does not support {size[0]}x{size[1]} (it delivers "
                f"{self.width}x{self.height}); use --size {self.width}x{self.height}"
            )
        got = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(got) if got and 1 <= got <= 240 else float(fps or 30.0)
        if fps and abs(self.fps - fps) > 1:
            log.warning("%s: asked for %g fps, the camera runs at %g fps", self.name, fps, self.fps)

    def _check_node(self, node: str) -> None:
        p = Path(node)
        if not p.exists():
            raise DeviceError(
                f"{self.name}: no such camera ({node} does not exist); {_camera_fix()}, "
                "or pass a video file to --camera to try streamguard without one"
            )
        try:
            is_char = stat.S_ISCHR(p.stat().st_mode)
        except OSError:
            is_char = False
        if not is_char:
            raise DeviceError(f"{node}: not a camera device")
        if not os.access(node, os.R_OK | os.W_OK):
            raise DeviceError(
                f"{node}: permission denied; add yourself to the 'video' group "
                "(sudo usermod -aG video $USER, then log in again)"
            )

    def _open(self, backends: Sequence[int], w: int, h: int, fps: float | None) -> tuple[Any, np.ndarray]:
        for backend in backends:
            cap = cv2.VideoCapture(self.device, backend)
            if not cap.isOpened():
                cap.release()
                continue
            if backend in (cv2.CAP_V4L2, cv2.CAP_DSHOW):
                # Most USB webcams give 720p30 only as MJPEG; raw YUYV tops out near 10 fps over USB 2.
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue is latency too
            deadline = time.monotonic() + 2.0  # some cameras need a moment for their first frame
            while time.monotonic() < deadline:
                ok, img = cap.read()
                if ok and img is not None and img.size:
                    return cap, img
                time.sleep(0.05)
            cap.release()
            raise DeviceError(
                f"{self.name}: opened but delivers no frames: it is probably in use by "
                "another program (close the meeting app or browser tab using it) or not a "
                "capture device"
            )
        raise DeviceError(
            f"{self.name}: cannot open (no such camera, or in use by another program); {_camera_fix()}"
        )

    @staticmethod
    def _rgb(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.shape[2] == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def read(self, stop: threading.Event) -> Frame | None:
        if self._first is not None:
            img, self._first = self._first, None
            return Frame(image=self._rgb(img), index=0, captured_at=time.monotonic())
        since = time.monotonic()
        while not stop.is_set():
            ok, img = self._cap.read()
            now = time.monotonic()
            if ok and img is not None and img.size:
                if img.shape[:2] != (self.height, self.width):
                    img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
                return Frame(image=self._rgb(img), index=0, captured_at=now)
            if now - since > self.MAX_SILENCE:
                raise DeviceError(
                    f"{self.name}: stopped delivering frames (unplugged, or taken by another program?)"
                )
            stop.wait(0.02)
        return None

    def close(self) -> None:
        self._cap.release()


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ValueError otherwise."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 16 or int(h) < 16:
        raise ValueError(f"size must be WIDTHxHEIGHT like 1280x720, got {text!r}")
    return int(w), int(h)


def open_source(
    spec: str, *, size: tuple[int, int] | None = None, fps: float | None = None, loop: bool = False
) -> LiveSource:
    """``--camera``: an index (``0``), a device (``/dev/video2``) or a video file (the stand-in camera)."""
    if spec.isdigit():
        return CameraSource(int(spec), size=size, fps=fps)
    p = Path(spec)
    if p.is_file():
        return StandInCamera(p, loop=loop, fps=fps, size=size)
    if spec.startswith("/dev/") or (p.exists() and not p.is_dir()):
        return CameraSource(spec, size=size, fps=fps)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a camera or a video file")
    if p.suffix.lower() in VIDEO_SUFFIXES:
        raise InputError(f"{p}: no such file")
    raise DeviceError(
        f"{spec}: no such camera or video file; pass a camera index (0, 1, ...), "
        "a device such as /dev/video0, or a video file"
    )
