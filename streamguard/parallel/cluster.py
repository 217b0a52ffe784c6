"""Tasks as Ray tasks, on a Ray instance started here or on a cluster (``--ray [ADDRESS]``).

Ray re-runs a task whose worker or node died, up to ``max_retries`` times. Paths go to the
workers as they are: on several machines, inputs and outputs must be in a folder every node
sees under the same path (a shared file system). Ray itself is imported only when a
:class:`RayPool` is made (``pip install 'streamguard[ray]'``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from typing import Any

from ..config import Config
from ..errors import ClusterError
from .executors import TaskProgress
from .tasks import Task, TaskOutcome, WorkerOptions, run_task

__all__ = ["RayPool"]


class _RayChannel:
    """Progress from a Ray task to the driver's progress actor: frame counts fire and forget, a
    task's start waited for."""

    #: Seconds a task waits for the actor to take its start.
    START_TIMEOUT = 30.0

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def put(self, item: tuple[str, int, bool]) -> None:
        ref = self.actor.put.remote(item)
        if item[2]:
            # A fire-and-forget call is sent in the background: from a worker killed soon after
            # it started (under load, before the call went out) it was lost, and the task's retry
            # then counted as its first attempt ("0 retried").
            import ray

            ray.get(ref, timeout=self.START_TIMEOUT)


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, on a cluster address nothing answers at (Ray itself retries
    its connection for minutes). ``auto`` and a local instance need no check."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(e.strerror or str(e)) from e


class RayPool:
    """Ray tasks on a cluster (``address``) or on a Ray instance started here (``address=None``).

    Each task asks Ray for ``cpus_per_task`` CPUs and runs its codecs and detector on that many
    threads. Ray re-runs a task whose worker or node died, up to ``max_retries`` times.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        jobs: int | None = None,
        cpus_per_task: int = 1,
        max_retries: int = 2,
        options: WorkerOptions | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise ClusterError("--ray needs Ray: pip install 'streamguard[ray]'") from e
        self._ray = ray
        self.options = options or WorkerOptions(threads=cpus_per_task)
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            }
            if address is None and jobs:
                kwargs["num_cpus"] = jobs * cpus_per_task
            # Ray's core installs its own SIGTERM/SIGINT handlers (abort); the caller's (the CLI's
            # clean stop) come back once it is up.
            saved = (
                {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread()
                else {}
            )
            try:
                _check_reachable(address)
                ray.init(address=address, **kwargs)
            except Exception as e:  # ConnectionError, ValueError, RuntimeError: all one line for the user
                raise ClusterError(
                    f"cannot start or reach Ray at {address or 'a new local instance'}: {e}"
                ) from e
            finally:
                for sig, handler in saved.items():
                    if handler is not None:
                        signal.signal(sig, handler)
            self._started = True
        cpus = ray.cluster_resources().get("CPU", 1.0)
        self.slots = max(1, int(cpus // cpus_per_task))
        if jobs:
            self.slots = min(self.slots, jobs)
        self._remote = ray.remote(run_task).options(
            num_cpus=cpus_per_task, max_retries=max_retries, retry_exceptions=False
        )
        self._actor = ray.remote(num_cpus=0)(TaskProgress).remote()
        self._channel = _RayChannel(self._actor)
        self._running: dict[Any, Task] = {}

    def submit(self, task: Task, config: Config) -> None:
        ref = self._remote.remote(task, config, self.options, self._channel)
        self._running[ref] = task

    def poll(self, timeout: float) -> list[TaskOutcome]:
        ray = self._ray
        if not self._running:
            time.sleep(min(timeout, 0.05))
            return []
        refs = list(self._running)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        outcomes = []
        for ref in ready:
            task = self._running.pop(ref)
            try:
                outcomes.append(ray.get(ref))
            except ray.exceptions.TaskCancelledError:
                outcomes.append(TaskOutcome(task.key, "cancelled", message="interrupted"))
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                outcomes.append(
                    TaskOutcome(
                        task.key, "failed", exit_code=1, message=f"{task.input}: internal error: {cause!r}"
                    )
                )
            except ray.exceptions.RayError as e:
                # The worker or its node died more often than retries allow.
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                outcomes.append(
                    TaskOutcome(
                        task.key, "failed", exit_code=1, message=f"{task.input}: Ray task lost: {first}"
                    )
                )
        return outcomes

    def progress(self) -> dict[str, tuple[int, int]]:
        try:
            return dict(self._ray.get(self._actor.snapshot.remote(), timeout=5))
        except Exception:  # a slow or lost actor only delays the progress display
            return {}

    def cancel(self) -> None:
        for ref in list(self._running):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref)

    def close(self) -> None:
        if self._running:
            with contextlib.suppress(Exception):
                self._ray.wait(list(self._running), num_returns=len(self._running), timeout=15)
        self._running.clear()
        if self._started:
            self._ray.shutdown()
