"""Jobs: an uploaded file waiting, running or done, what a page may know about it, and its name.

No HTTP here, so the rules can be tested and reused apart from the framework.
Job ids are random tokens made by :class:`~streamguard.web.manager.JobManager`; a
client's file name is checked here (:func:`clean_name`, :func:`kind_of`), kept for
display and ``Content-Disposition`` only and never reaches the file system: a job's
files are ``input<suffix>`` and ``result<suffix>`` in its own folder.
"""

from __future__ import annotations

import enum
import itertools
import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import IMAGE_SUFFIXES, VIDEO_SUFFIXES, output_suffix
from ..config import Config
from ..errors import JobError
from ..sources import VideoInfo

__all__ = ["ACTIVE", "Job", "State", "clean_name", "kind_of", "new_id", "valid_id"]

_ID_CHARS = frozenset("0123456789abcdef")


class State(enum.StrEnum):
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Files deleted; the job is still answered for a while so a page can say why.
    REMOVED = "removed"


ACTIVE = frozenset({State.UPLOADING, State.QUEUED, State.RUNNING})


def clean_name(raw: str) -> str:
    """A client's file name, checked for display: a plain name, no folders, no control characters.

    Names that try to be paths are refused rather than trimmed: a browser never
    sends one, so such a request is not from this app's page.
    """
    name = unicodedata.normalize("NFC", raw or "").strip()
    if not name:
        raise JobError(400, "the file has no name")
    if len(name) > 255:
        raise JobError(400, "file name is longer than 255 characters")
    if "/" in name or "\\" in name or any(unicodedata.category(c) == "Cc" for c in name):
        raise JobError(400, "invalid file name: folders and control characters are not allowed")
    # Format characters (right-to-left override, zero-width) can disguise a name on screen.
    name = "".join(c for c in name if unicodedata.category(c) != "Cf").strip()
    if name in ("", ".", ".."):
        raise JobError(400, "invalid file name")
    return name


def kind_of(name: str) -> tuple[str, str]:
    """("video" | "image", lower-case suffix) of a display name; 415 for anything else."""
    suffix = Path(name).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video", suffix
    if suffix in IMAGE_SUFFIXES:
        return "image", suffix
    raise JobError(
        415,
        f"{name}: not a supported file type; use a video ({_list(VIDEO_SUFFIXES)}) "
        f"or a photo ({_list(IMAGE_SUFFIXES)})",
    )


def _list(suffixes: Iterable[str]) -> str:
    return " ".join(sorted(s.lstrip(".") for s in suffixes))


def new_id() -> str:
    """A fresh job id: 32 random hex digits, so ids cannot be guessed from one another."""
    return secrets.token_hex(16)


def valid_id(job_id: str) -> bool:
    """Whether ``job_id`` has the shape :func:`new_id` gives (checked before any look-up)."""
    return len(job_id) == 32 and set(job_id) <= _ID_CHARS


_versions = itertools.count(1)


@dataclass(eq=False)
class Job:
    id: str
    name: str
    kind: str
    suffix: str
    dir: Path
    config: Config
    created: float
    last_seen: float
    state: State = State.UPLOADING
    error: str | None = None
    #: Why the files are gone (REMOVED, CANCELLED, FAILED).
    reason: str | None = None
    #: Removal was asked while a worker or an upload held the job: delete when it lets go.
    removing: bool = False
    size: int = 0
    #: Upload bytes this job has room on disk for (with as much again for its result), and written so far.
    claimed: int = 0
    received: int = 0
    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None
    eta: float | None = None
    faces: int | None = None
    #: Of ``faces``, the sure ones (``ImageResult.sure``).
    sure: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    started: float | None = None
    finished: float | None = None
    downloaded: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    version: int = field(default_factory=lambda: next(_versions))
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    @property
    def input(self) -> Path:
        return self.dir / f"input{self.suffix}"

    @property
    def output(self) -> Path:
        return self.dir / f"result{output_suffix(self.suffix)}"

    @property
    def result_name(self) -> str:
        stem = self.name[: -len(self.suffix)] if self.name.lower().endswith(self.suffix) else self.name
        return f"{stem}.anonymized{self.output.suffix}"

    def bump(self) -> None:
        self.version = next(_versions)

    # -- called by the library from its threads -------------------------------------------------
    def on_start(self, info: VideoInfo) -> None:
        self.frames_total = info.frames
        self.width, self.height, self.duration = info.width, info.height, info.duration
        self.bump()

    def on_progress(self, done: int) -> None:
        # Called once per frame by the writer thread: keep it cheap, refresh the rates 4 times a second.
        self.frames_done = done
        now = time.monotonic()
        if not self._samples:
            # Rates count from the first frame out: model loading and the look-ahead are not throughput.
            self._samples.append((now, done))
            return
        if now - self._samples[-1][0] < 0.25:
            return
        self._samples.append((now, done))
        # fps over the last ~4 s: steady enough to read, quick to follow a change of pace.
        while len(self._samples) > 2 and now - self._samples[0][0] > 4.0:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        if now > t0 and done > n0:
            self.fps = (done - n0) / (now - t0)
            if self.frames_total:
                self.eta = max(0.0, (self.frames_total - done) / self.fps)
        self.bump()

    def public(self, queue_position: int | None = None) -> dict[str, Any]:
        """What a page may know about this job (no server paths)."""
        total = self.frames_total
        if total is not None and self.frames_done > total:
            total = self.frames_done  # the container's frame count is an estimate
        progress = None
        if self.state is State.DONE:
            progress = 1.0
        elif total:
            progress = min(1.0, self.frames_done / total)
        a = self.config.anonymize
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "state": str(self.state),
            "error": self.error,
            "reason": self.reason if self.state is State.REMOVED else None,
            "size": self.size,
            "result_name": self.result_name,
            "frames_done": self.frames_done,
            "frames_total": total,
            "progress": progress,
            "fps": round(self.fps, 2) if self.fps else None,
            "eta": round(self.eta, 1) if self.eta is not None and self.state is State.RUNNING else None,
            "queue_position": queue_position,
            "faces": self.faces,
            "sure": self.sure,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "seconds": round(self.finished - self.started, 2) if self.finished and self.started else None,
            "downloaded": self.downloaded is not None,
            "options": {
                "mode": a.mode,
                "strength": a.strength,
                "detection": self.config.detect.preset,
                "boxes": a.boxes,
            },
        }
