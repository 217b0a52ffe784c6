"""Several jobs' results as one zip, streamed as it is made.

Stored, not compressed (the media already is), and never written to disk: the zip's
bytes are handed out as each block of a result is added.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from .jobs import Job

__all__ = ["zip_stream"]


class _ZipOut:
    """A write-only, unseekable file for :mod:`zipfile` that hands out what was written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, b: bytes) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_stream(jobs: list[Job], on_complete: Callable[[], Any], chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """The zip of the jobs' results, block by block; ``on_complete`` runs once all of it was taken.

    Names are made unique inside the zip.
    """
    out = _ZipOut()
    used: set[str] = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:  # type: ignore[arg-type]
        for job in jobs:
            arcname = _unique(job.result_name, used)
            info = zipfile.ZipInfo(arcname, date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_STORED
            # Known size up front, so zipfile picks zip64 for big results on an unseekable stream.
            info.file_size = job.output.stat().st_size
            with open(job.output, "rb") as src, zf.open(info, "w") as dst:
                while block := src.read(chunk):
                    dst.write(block)
                    yield out.take()
    yield out.take()
    on_complete()


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
    used.add(candidate.lower())
    return candidate
