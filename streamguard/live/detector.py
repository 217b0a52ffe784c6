"""The detector of live mode: which preset, at which CPU priority, and the stage that runs it.

A live look runs the same detect stage as a file's frame (:mod:`streamguard.detect`), chosen
as :func:`streamguard.api.build_stages` chooses it, with live timing: a tiled detector runs its
whole sweep on every look (there is no look-ahead to cover a face found late), minus the tiles
where nothing moved, plus one crop per known face.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from ..config import DetectConfig
from ..detect import DetectStage, FaceDetector, SweepDetectStage, TiledDetector, create_detector
from ..types import Stage

__all__ = ["LIVE_DETECT", "LIVE_RESCAN", "DETECT_NICE", "lower_priority", "create_live_detector",
           "detect_stage"]

log = logging.getLogger(__name__)

#: Detector settings for live use. The tiled "fast" preset still finds faces down to 32 px at
#: up to 1080p (BlazeFace on the whole frame finds nothing under ~1/10 of the frame height) and is
#: the only preset that keeps up: on the 2-core development machine (shared, so on the slow side)
#: it took 55-95 ms per 640x480 frame and 140-210 ms per 1280x720 frame (alone; 2-3 times that
#: in the session), within ``MAX_DETECT_AGE``; "balanced" took 2-3 times that again, which would
#: keep the curtain down much of the time.
LIVE_DETECT = DetectConfig(preset="fast")
#: Seconds after which a tile where nothing moved is looked at again (see :mod:`streamguard.detect.sweep`).
LIVE_RESCAN = 0.5
#: CPU priority (Linux nice increment) of the detector's threads. On a busy CPU the capture and
#: output threads, a few ms per frame, go first, so a slow detector costs detection rate (and, past
#: ``max_detect_age``, curtained frames), not output frame rate or latency. Not more (5 leaves the
#: detector a third of a normal thread's share), since a meeting app competes for the CPU too and a
#: starved detector means a curtained picture.
DETECT_NICE = 5


def lower_priority() -> None:
    """Lower this thread's CPU priority by :data:`DETECT_NICE` (Linux: threads have their own nice
    value, and threads they start inherit it; elsewhere it would apply to the whole process)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + DETECT_NICE))
    except OSError as e:  # e.g. a sandbox that forbids it: run at normal priority
        log.debug("cannot lower the detector's priority: %s", e)


def create_live_detector(config: DetectConfig = LIVE_DETECT) -> FaceDetector:
    """``create_detector(config)``, built on a lower-priority thread, so whatever native threads
    loading the models starts inherit that priority (the calls themselves run on the detect
    loop's threads, which lower their own)."""
    box: dict[str, Any] = {}

    def build() -> None:
        lower_priority()
        try:
            box["detector"] = create_detector(config)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=build, name="streamguard-live-load", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["detector"]


def detect_stage(detector: FaceDetector, fps: float, levels: bool = True) -> Stage:
    """The stage a look runs: it sets ``detections`` on every frame it is given (the session
    picks which frames: the newest, every ``detect_every``-th at most). ``levels``: see
    :attr:`~streamguard.config.DetectConfig.levels`."""
    if isinstance(detector, TiledDetector):
        return SweepDetectStage(detector, fps=fps or 30.0, period=0.0, rescan=LIVE_RESCAN, levels=levels)
    return DetectStage(detector, levels=levels)
