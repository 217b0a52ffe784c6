"""What the web server accepts and holds: :class:`Limits`, byte sizes as people write them, disk room.

Free disk space is claimed before an upload's bytes arrive, not found missing half-way:
:func:`claim_size` rounds a claim up to a step, so one is rare, and :func:`has_room` keeps a
reserve free after everything already promised, so the machine stays usable.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

__all__ = ["GIB", "Limits", "claim_size", "format_size", "has_room", "parse_size"]

GIB = 1024**3
#: Free disk space left over after an upload and its result, so the machine stays usable.
_DISK_RESERVE = 256 * 1024**2
#: Uploads claim disk space in steps of this size (a chunked one as it grows), so a claim is rare.
_CLAIM_STEP = 1024**2


@dataclass(frozen=True, slots=True)
class Limits:
    #: Largest accepted upload, in bytes.
    max_upload: int = 2 * GIB
    #: Seconds a job's files are kept while no page asks about it; a running job is cancelled then.
    keep: float = 600.0
    #: Seconds a result stays after it was downloaded (so the page's preview and "download all" still work).
    keep_downloaded: float = 60.0
    #: Videos processed at once; the others wait in line. Photos have a lane of their own.
    video_workers: int = 1
    #: Jobs (any state but removed) held at once.
    max_jobs: int = 100
    #: Seconds an upload may go without receiving a byte before it is ended and its file deleted.
    read_timeout: float = 60.0
    #: Event streams (one per open page) served at once.
    max_streams: int = 32

    def __post_init__(self) -> None:
        if self.max_upload < 1:
            raise ValueError(f"max_upload must be at least 1 byte, got {self.max_upload}")
        if self.keep <= 0 or self.keep_downloaded < 0 or self.read_timeout <= 0:
            raise ValueError("keep and read_timeout must be > 0 and keep_downloaded >= 0 seconds")
        if self.video_workers < 1 or self.max_jobs < 1 or self.max_streams < 1:
            raise ValueError("video_workers, max_jobs and max_streams must be at least 1")


def parse_size(text: str) -> int:
    """``"2G"``, ``"500M"``, ``"64k"``, ``"1048576"`` -> bytes (binary units)."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise ValueError(f"not a size: {text!r} (examples: 2G, 500M, 1048576)") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"size must be > 0, got {text!r}")
    return int(value * units[unit])


def format_size(n: int) -> str:
    """``2147483648`` -> ``"2 GiB"``; ``1536`` -> ``"1.5 KiB"``."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def claim_size(size: int, max_upload: int) -> int:
    """Room to claim for an upload of ``size`` bytes so far: whole steps, at most ``max_upload``."""
    return min(max_upload, -(-size // _CLAIM_STEP) * _CLAIM_STEP)


def has_room(folder: str | os.PathLike[str], promised: int) -> bool:
    """Whether ``folder``'s disk keeps its reserve free once ``promised`` more bytes are written."""
    return shutil.disk_usage(folder).free - promised >= _DISK_RESERVE
