"""Live mode: a camera (or a video file standing in for one) anonymized in real time.

:mod:`.session` runs it (:class:`LiveSession`): its threads hand frames and looks to each other
through :mod:`.handoff`, a look runs the detect stage of :mod:`.detector`, :mod:`.cover` holds the
two ways of covering a frame (at once, or once looked at), and :mod:`.notice` the curtain.
:mod:`.cameras` are its sources, :mod:`.sinks` its outputs (preview window, virtual camera,
recording), :mod:`.stats` its account, and :mod:`.cli` the ``streamguard live`` command (not
imported here: it pulls in the file front end's options).
"""

from .cameras import TIME_BASE, CameraSource, LiveSource, StandInCamera, open_source, parse_size
from .detector import LIVE_DETECT, create_live_detector
from .notice import draw_notice
from .session import MAX_DETECT_AGE, LiveSession, live_config
from .sinks import RECORD_PRESET, PreviewWindow, RecordSink, VirtualCamSink
from .stats import FrameInfo, LiveStats

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
