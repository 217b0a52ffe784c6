"""Keep the native thread pools of numpy's OpenBLAS and of OpenCV single-threaded while streamguard runs.

Both pools busy-wait (``sched_yield`` in a loop) for a while after every call that
woke them. streamguard already runs its own threads on every core (decoder, detector,
encoder), so on a 2-core machine the spinning workers took about a third of a core and
two million context switches per 10 s of 1080p for no gain (measured: CPU time -22%,
wall time -11% with both pools at one thread). streamguard's own matrices are tiny
(Kalman filters), and its image calls run on several of its own threads at once.

The limits are process-wide, so they are taken only while streamguard works (a pipeline, a
photo, a live session) and given back after the last such run ends: importing streamguard
changes nothing in the host program.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cv2

__all__ = ["quiet_native_pools"]

_lock = threading.Lock()
_users = 0
_saved: tuple[int, Any] | None = None  # OpenCV's thread count, threadpoolctl's limiter


@contextmanager
def quiet_native_pools() -> Iterator[None]:
    """OpenCV and every loaded BLAS run in the calling thread inside this block (process-wide;
    nested and concurrent blocks share one limit, lifted when the last ends)."""
    global _users, _saved
    with _lock:
        if _users == 0:
            # threadpoolctl only limits libraries already loaded. numpy's OpenBLAS is the one
            # streamguard calls (filterpy's matrices are numpy's); scipy's own OpenBLAS, which
            # filterpy's import brings, is never called on its paths, so its pool never wakes.
            # Importing filterpy here made every photo wait ~0.7 s for a tracker it never uses.
            import numpy  # noqa: F401
            from threadpoolctl import threadpool_limits

            _saved = (cv2.getNumThreads(), threadpool_limits(limits=1, user_api="blas"))
            cv2.setNumThreads(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                threads, limiter = _saved
                cv2.setNumThreads(threads)
                limiter.restore_original_limits()
                _saved = None
