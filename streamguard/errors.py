"""Errors a user can act on. Each carries a one-line message that names the file.

::

    Exception
    ├── StreamguardError          one line, names the file
    │   ├── InputError            cannot open/decode, unsupported input        exit 3
    │   ├── OutputError           exists (no --overwrite), cannot write/encode exit 4
    │   ├── ModelError            detector model missing or broken             exit 5
    │   ├── DeviceError           camera or virtual camera unavailable         exit 6
    │   └── ClusterError          the Ray cluster cannot be reached or used    exit 7
    ├── UsageError                bad command-line options                      exit 2
    ├── Cancelled                 Ctrl-C, SIGTERM, a client gone               exit 130
    ├── JobError                  a web request that cannot be served (has an HTTP status)
    └── RuntimeError
        └── UnprotectedFrameError a frame reached a sink unanonymized: a bug, never written

Anything else raised inside streamguard is a bug: the CLI keeps its traceback
and exits 1.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "StreamguardError",
    "InputError",
    "OutputError",
    "ChunkError",
    "ModelError",
    "DeviceError",
    "ClusterError",
    "UsageError",
    "Cancelled",
    "JobError",
    "UnprotectedFrameError",
    "existing_file",
]


class StreamguardError(Exception):
    """Base of every error streamguard reports to a user as one line."""

    exit_code = 1

    def __str__(self) -> str:
        # One line, always: a multi-line libav message must not break the contract.
        return " ".join(super().__str__().split())


class InputError(StreamguardError):
    """The input cannot be opened, decoded or is not supported."""

    exit_code = 3


class OutputError(StreamguardError):
    """The output cannot be written (exists, unwritable folder, disk full, encoder failure)."""

    exit_code = 4


class ChunkError(OutputError):
    """A finished chunk of a cut video cannot be joined (made by another version, or damaged): the
    work folder's chunks are removed, and the next run makes them again."""


class ModelError(StreamguardError):
    """The face detector model is missing or broken."""

    exit_code = 5


class DeviceError(StreamguardError):
    """A camera or virtual camera is unavailable."""

    exit_code = 6


class ClusterError(StreamguardError):
    """The Ray cluster could not be reached or used."""

    exit_code = 7


class UsageError(Exception):
    """The command-line options are wrong (argparse's own errors exit 2 the same way)."""


class JobError(Exception):
    """A request about web jobs that cannot be served; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UnprotectedFrameError(RuntimeError):
    """A frame reached a sink without passing the anonymizer (a bug; never written)."""


class Cancelled(Exception):
    """The run was stopped (Ctrl-C, SIGTERM, a client that went away) before it finished."""


def existing_file(path: str | os.PathLike[str], what: str = "media file") -> Path:
    """``path`` as a Path if it names a non-empty file; else the one-line :class:`InputError` why not."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a {what}")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p
