"""Keep the native thread pools of numpy's OpenBLAS and of OpenCV single-threaded.

Both pools busy-wait (``sched_yield`` in a loop) for a while after every call that
woke them. streamguard already runs its own threads on every core (decoder, detector,
encoder), so on a 2-core machine the spinning workers took about a third of a core and
two million context switches per 10 s of 1080p for no gain (measured: CPU time -22%,
wall time -11% with both pools at one thread). streamguard's own matrices are tiny
(Kalman filters), and its image calls run on several of its own threads at once.
"""

from __future__ import annotations

import cv2
from threadpoolctl import threadpool_limits

__all__ = ["quiet_native_pools"]


def quiet_native_pools() -> None:
    """Run OpenCV and every loaded BLAS in the calling thread (applies process-wide)."""
    # Import the BLAS users first: threadpoolctl only limits libraries already loaded.
    import filterpy.kalman  # noqa: F401
    import numpy  # noqa: F401
    import scipy.optimize  # noqa: F401

    threadpool_limits(limits=1, user_api="blas")
    cv2.setNumThreads(1)
