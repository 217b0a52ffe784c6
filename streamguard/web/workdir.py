"""The server's private working folder, and the sweep of folders a killed server left behind.

Every file the server holds lives under one folder it made (mode 0700) in the system's
temporary folder or ``--workdir``. A running server touches it every few seconds; one
killed without its clean-up (SIGKILL, power loss) leaves it behind, and the next server
to start in the same place deletes it once a day old.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["make_workdir", "sweep_leftovers"]

log = logging.getLogger(__name__)

_ROOT_PREFIX = "streamguard-web-"
#: A working folder untouched this long belongs to a server that is gone (a live one touches its own).
_LEFTOVER_AGE = 24 * 3600.0


def make_workdir(parent: str | os.PathLike[str] | None = None) -> Path:
    """A new private folder in ``parent`` (default: the system's), after sweeping old leftovers there."""
    sweep_leftovers(tempfile.gettempdir() if parent is None else parent)
    # mkdtemp makes the folder 0700; chmod again in case a umask or platform thinks otherwise.
    root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX, dir=parent))
    os.chmod(root, 0o700)
    return root


def sweep_leftovers(parent: str | os.PathLike[str], age: float = _LEFTOVER_AGE) -> int:
    """Delete this user's ``streamguard-web-*`` folders in ``parent`` untouched for ``age`` seconds.

    They are what servers killed without their clean-up (SIGKILL, power loss) left: a
    running server touches its folder every few seconds. Links and other users' folders
    are left alone. Returns how many were deleted.
    """
    if not hasattr(os, "geteuid"):
        return 0  # no owner to check against: leave everything
    now = time.time()
    swept = 0
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(_ROOT_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and now - st.st_mtime > age:
            shutil.rmtree(entry.path, ignore_errors=True)
            swept += 1
    if swept:
        log.warning("deleted %d working folder(s) left in %s by a server that did not stop", swept, parent)
    return swept
