"""Live mode: a camera (or a video file standing in for one) anonymized in real time.

:mod:`.session` runs it (:class:`LiveSession`), :mod:`.cameras` are its sources, :mod:`.sinks`
its outputs (preview window, virtual camera, recording) and :mod:`.cli` the ``streamguard live``
command (not imported here: it pulls in the file front end's options).
"""

from .cameras import CameraSource, LiveSource, StandInCamera, open_source, parse_size
from .session import (
    LIVE_DETECT,
    MAX_DETECT_AGE,
    TIME_BASE,
    FrameInfo,
    LiveSession,
    LiveStats,
    create_live_detector,
    draw_notice,
    live_config,
)
from .sinks import RECORD_PRESET, PreviewWindow, RecordSink, VirtualCamSink

__all__ = [
    "LIVE_DETECT",
    "MAX_DETECT_AGE",
    "TIME_BASE",
    "FrameInfo",
    "LiveSession",
    "LiveStats",
    "live_config",
    "create_live_detector",
    "draw_notice",
    "LiveSource",
    "StandInCamera",
    "CameraSource",
    "open_source",
    "parse_size",
    "RECORD_PRESET",
    "RecordSink",
    "VirtualCamSink",
    "PreviewWindow",
]
