"""The audit sidecar (``--report PATH.json``): what was covered in every frame, and why.

::

    {"version": 1, "input": "in.mp4",
     "frames": [{"index": 0, "time": 0.0,
                 "regions": [{"box": [x1, y1, x2, y2], "track_id": 3, "source": "detection",
                              "score": 0.91}]}, ...],
     "summary": {"detection": 812, "prediction": 40, "backfill": 12, "motion": 0, "curtain": 0,
                 "gap": 3}}

Frames are streamed to a hidden temporary file beside the report as they arrive, so memory
stays constant however long the video; the report appears under its name only when the run
succeeded (``os.replace``), and a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import weakref
from pathlib import Path
from typing import IO, get_args

from .errors import OutputError
from .types import Frame, RegionSource

__all__ = ["ReportWriter", "REPORT_VERSION"]

log = logging.getLogger(__name__)

REPORT_VERSION = 1


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ReportWriter:
    """Writes the report JSON for frames given in order to :meth:`add`; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str], input_path: str | None = None) -> None:
        self.path = Path(path)
        self.input_path = input_path
        folder = self.path.parent
        # Fail before hours of work, not at the end: the folder must exist and be writable.
        if not folder.is_dir():
            raise OutputError(f"{self.path}: report folder does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{self.path}: report folder is not writable")
        self.counts: dict[str, int] = {s: 0 for s in get_args(RegionSource)}
        self.frames = 0
        self._file: IO[str] | None = None
        self._tmp: str | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._result: Path | None = None

    def _open(self) -> IO[str]:
        if self._file is None:
            try:
                fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                                 dir=self.path.parent)
            except OSError as e:
                raise OutputError(f"{self.path}: cannot write report: {e.strerror}") from e
            # A writer dropped without close() must not leave its temporary file behind.
            self._finalizer = weakref.finalize(self, _remove, self._tmp)
            self._file = os.fdopen(fd, "w", encoding="utf-8")
            head = json.dumps({"version": REPORT_VERSION, "input": self.input_path})
            self._file.write(head[:-1] + ', "frames": [\n')
        return self._file

    def add(self, frame: Frame) -> None:
        """Record ``frame`` (after anonymization): its index, time and covered regions."""
        if self._closed:
            raise ValueError(f"{self.path}: report is already closed")
        regions = []
        for r in frame.regions:
            self.counts[r.source] = self.counts.get(r.source, 0) + 1
            regions.append({"box": [round(v, 2) for v in (r.box.x1, r.box.y1, r.box.x2, r.box.y2)],
                            "track_id": r.track_id, "source": r.source, "score": round(float(r.score), 4)})
        entry: dict[str, object] = {"index": frame.index,
                                    "time": None if frame.time is None else round(frame.time, 6),
                                    "regions": regions}
        if frame.damaged:
            entry["damaged"] = True  # covered whole: its content could not be trusted
        f = self._open()
        try:
            f.write(("" if self.frames == 0 else ",\n") + json.dumps(entry, separators=(",", ":")))
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write report: {e.strerror}") from e
        self.frames += 1

    def close(self, success: bool) -> Path | None:
        """Finish: on success move the report into place and return its path; otherwise
        delete the partial file and return None. Calling it again does nothing."""
        if self._closed:
            return self._result
        self._closed = True
        if not success:
            self._discard()
            return None
        try:
            f = self._open()
            f.write("\n], " + json.dumps({"summary": self.counts})[1:] + "\n")
            f.flush()
            os.fsync(f.fileno())  # the rename must not publish an empty file after a crash
            f.close()
            assert self._tmp is not None
            os.replace(self._tmp, self.path)
        except OSError as e:
            self._discard()
            raise OutputError(f"{self.path}: cannot write report: {e.strerror}") from e
        if self._finalizer is not None:
            self._finalizer.detach()
        self._tmp = None
        self._result = self.path
        log.info("wrote report %s (%d frames)", self.path, self.frames)
        return self.path

    def _discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._finalizer is not None:
            self._finalizer()  # removes the temporary file, once
        self._tmp = None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._closed:
            self.close(success=exc_type is None)
