"""The job manager: every job, the bounded workers that run them, and the clean-up of their files.

No HTTP here, so the rules can be tested and reused apart from the framework.
Every file a job has lives in ``<root>/<job id>/`` under the server's private working
folder (:mod:`streamguard.web.workdir`). A video runs through the same library call
the command line makes; videos wait in line for ``video_workers`` workers, photos
have a worker of their own.

A job's files are deleted when it fails or is cancelled, ``keep_downloaded``
seconds after its result was downloaded, when no page has asked about it for
``keep`` seconds (a closed tab: a running job is cancelled first) and when the
manager closes. Folders left by a server that could not clean up (SIGKILL, power
loss) are swept by the next one to start, once a day old.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..api import anonymize_image, anonymize_video
from ..config import Config
from ..errors import Cancelled, JobError, StreamguardError
from ..sources import probe_video
from .jobs import ACTIVE, Job, State, clean_name, kind_of, new_id, valid_id
from .limits import Limits, claim_size, format_size, has_room
from .workdir import make_workdir
from .zipstream import zip_stream

__all__ = ["JobManager"]

log = logging.getLogger(__name__)

#: How long a removed job is still answered for ("deleted after download") before it is forgotten.
_TOMBSTONE_SECONDS = 3600.0


class JobManager:
    """Holds every job, runs them on bounded worker threads and deletes their files on time."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        parent: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.root = make_workdir(parent)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._lanes: dict[str, deque[Job]] = {"video": deque(), "image": deque()}
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._closed = False

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (``video_workers`` for videos, one for photos) and the reaper."""
        lanes = ["video"] * self.limits.video_workers + ["image"]
        for n, lane in enumerate(lanes):
            t = threading.Thread(target=self._work, args=(lane,), name=f"sgweb-{lane}-{n}", daemon=True)
            self._threads.append(t)
        self._threads.append(threading.Thread(target=self._reap_loop, name="sgweb-reaper", daemon=True))
        for t in self._threads:
            t.start()
        log.info("working folder %s", self.root)

    def stop_all(self) -> None:
        """Refuse new uploads and cancel every job (shutdown has begun); files stay until :meth:`close`."""
        with self._lock:
            self._closing.set()
            for job in self._jobs.values():
                job.stop.set()
            self._wake.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Cancel everything, wait for the workers, delete every file. Idempotent."""
        self.stop_all()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("%s did not stop in time", t.name)
        shutil.rmtree(self.root, ignore_errors=True)
        log.info("deleted working folder %s", self.root)

    # -- uploads ------------------------------------------------------------------------------------
    def create(self, raw_name: str, config: Config, declared_size: int | None) -> Job:
        """A new job in the UPLOADING state with its private folder; checks name, type and limits."""
        name = clean_name(raw_name)
        kind, suffix = kind_of(name)
        if declared_size is not None and declared_size > self.limits.max_upload:
            raise JobError(413, self.too_large(name))
        now = self.clock()
        with self._lock:
            if self.closing:
                raise JobError(503, "the server is shutting down")
            live = sum(1 for j in self._jobs.values() if j.state is not State.REMOVED)
            if live >= self.limits.max_jobs:
                raise JobError(429, f"too many files at once ({live}); remove finished ones first")
            job_id = new_id()
            job = Job(
                id=job_id,
                name=name,
                kind=kind,
                suffix=suffix,
                dir=self.root / job_id,
                config=config,
                created=now,
                last_seen=now,
            )
            if declared_size:
                self._claim(job, declared_size)
            job.dir.mkdir(mode=0o700)
            self._jobs[job_id] = job
        return job

    def claim(self, job: Job, size: int) -> None:
        """Make sure there is room on disk for ``size`` bytes of upload and its result; 507 if not.

        Room is shared: what other uploads still have to write, and the results of queued
        and running jobs, is set aside first, so parallel and chunked uploads cannot
        together promise more than the disk has.
        """
        with self._lock:
            self._claim(job, size)

    def _claim(self, job: Job, size: int) -> None:
        # Called with the lock held (the check and the claim must be one step).
        want = claim_size(size, self.limits.max_upload)
        if want <= job.claimed:
            return
        others = sum(self._pending(j) for j in self._jobs.values() if j is not job)
        had, job.claimed = job.claimed, want
        if not has_room(self.root, others + self._pending(job)):
            job.claimed = had
            raise JobError(507, f"{job.name}: not enough free disk space on the server for this file")

    @staticmethod
    def _pending(job: Job) -> int:
        """Bytes the job may still write to disk: the rest of its upload, a result about as large."""
        if job.state is State.UPLOADING:
            return max(0, 2 * job.claimed - job.received)
        if job.state is State.QUEUED:
            return job.size
        if job.state is State.RUNNING and not job.removing:
            try:
                written = sum(e.stat().st_size for e in os.scandir(job.dir) if e.name != job.input.name)
            except OSError:
                written = 0
            return max(0, job.size - written)
        return 0

    def too_large(self, name: str) -> str:
        return f"{name}: file is larger than the {format_size(self.limits.max_upload)} limit"

    def open_upload(self, job: Job) -> int:
        """A new, exclusive file descriptor for the job's input (never follows a link)."""
        return os.open(job.input, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)

    def uploaded(self, job: Job, size: int) -> None:
        """The whole file is here: check it is a video the library can open, then queue it."""
        if job.kind == "video":
            try:
                # Cheap (headers only) and gives the library's own error now rather than after the queue.
                info = probe_video(job.input)
            except StreamguardError as e:
                message = self._public_message(job, e)
                self.discard(job)
                raise JobError(422, message) from e
            job.width, job.height, job.duration, job.frames_total = (
                info.width,
                info.height,
                info.duration,
                info.frames,
            )
        with self._lock:
            if job.stop.is_set():  # cancelled, removed or shutting down as the last bytes arrived
                self.discard(job)
                raise JobError(409, f"{job.name}: upload cancelled")
            job.size = size
            job.state = State.QUEUED
            job.last_seen = self.clock()
            job.bump()
            self._lanes[job.kind].append(job)
            self._wake.notify_all()
        log.info("job %s queued (%s, %d bytes)", job.id, job.kind, size)

    def discard(self, job: Job) -> None:
        """Forget a job whose upload did not complete."""
        with self._lock:
            if job.state is not State.REMOVED:  # else removed mid-upload: keep it answered, with why
                self._jobs.pop(job.id, None)
                job.state = State.REMOVED
        shutil.rmtree(job.dir, ignore_errors=True)

    # -- queries --------------------------------------------------------------------------------------
    def get(self, job_id: str, *, touch: bool = True) -> Job:
        with self._lock:
            job = self._jobs.get(job_id) if valid_id(job_id) else None
            if job is None:
                raise JobError(404, "unknown job (it may have been deleted long ago)")
            if touch:
                job.last_seen = self.clock()
            return job

    def snapshot(self, ids: Iterable[str], *, touch: bool = True) -> list[dict[str, Any]]:
        """Public state of the given jobs (``{"id", "state": "unknown"}`` for ids not held)."""
        now = self.clock()
        out = []
        with self._lock:
            for job_id in ids:
                job = self._jobs.get(job_id) if valid_id(job_id) else None
                if job is None:
                    out.append({"id": job_id, "state": "unknown"})
                    continue
                if touch:
                    job.last_seen = now
                out.append(job.public(self._position(job)))
        return out

    def versions(self, ids: Iterable[str]) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._jobs[i].version if i in self._jobs else 0 for i in ids)

    def _position(self, job: Job) -> int | None:
        if job.state is not State.QUEUED:
            return None
        try:
            return self._lanes[job.kind].index(job) + 1
        except ValueError:
            return None

    def result(self, job_id: str) -> Job:
        """A job whose result can be served; 409 while not done, 410 once deleted."""
        job = self.get(job_id)
        if job.state is State.REMOVED:
            raise JobError(410, f"{job.name}: {job.reason or 'deleted'}")
        if job.state is not State.DONE:
            raise JobError(409, f"{job.name}: no result ({job.state})")
        return job

    def original(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state is State.REMOVED or not job.input.exists():
            raise JobError(410, f"{job.name}: {job.reason or 'deleted'}")
        if job.state is State.UPLOADING:
            raise JobError(409, f"{job.name}: still uploading")
        return job

    # -- actions ----------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job; its files are deleted. Finished jobs are left as they are."""
        with self._lock:
            job = self.get(job_id)
            if job.state is State.QUEUED:
                self._lanes[job.kind].remove(job)
                job.state = State.CANCELLED
                job.finished = self.clock()
                self._delete_files(job, "cancelled", keep_state=True)
            elif job.state in (State.RUNNING, State.UPLOADING):
                # The pipeline polls this event; the worker (or the upload) records the outcome.
                job.stop.set()
            job.bump()
            return job

    def remove(self, job_id: str, reason: str = "removed") -> None:
        """Cancel if needed and delete the job's files now (or as soon as its worker lets go)."""
        with self._lock:
            self._remove(self.get(job_id), reason)

    def _remove(self, job: Job, reason: str) -> None:
        # Called with the lock held.
        if job.state is State.RUNNING:
            # The pipeline has files open and renames its result into place: it deletes them itself.
            job.stop.set()
            job.reason, job.removing = reason, True
        elif job.state is not State.REMOVED:
            if job.state is State.QUEUED:
                self._lanes[job.kind].remove(job)
            # An upload is stopped and its slot and partial file freed now, not when its client
            # sends more or goes away (a stalled one may do neither); writes to the open file after
            # this go to an unlinked file, released when the upload sees ``stop``.
            job.stop.set()
            self._delete_files(job, reason)

    def mark_downloaded(self, jobs: Iterable[Job]) -> None:
        now = self.clock()
        with self._lock:
            for job in jobs:
                if job.state is State.DONE and job.downloaded is None:
                    job.downloaded = now
                    job.bump()
        if self.limits.keep_downloaded == 0:
            self.reap()

    def zip_results(self, ids: Iterable[str]) -> tuple[list[Job], Iterator[bytes]]:
        """The finished jobs among ``ids`` and a generator of a zip of their results.

        Streamed as it is made (stored, not compressed: the media already is), so
        no second copy lands on disk. Names are made unique inside the zip.
        """
        jobs = []
        for job_id in ids:
            try:
                job = self.get(job_id)
            except JobError:
                continue
            if job.state is State.DONE and job.output.exists():
                jobs.append(job)
        if not jobs:
            raise JobError(409, "no finished results to download")
        return jobs, zip_stream(jobs, on_complete=lambda: self.mark_downloaded(jobs))

    # -- workers --------------------------------------------------------------------------------------
    def _work(self, lane: str) -> None:
        while True:
            with self._wake:
                while not self.closing and not self._lanes[lane]:
                    self._wake.wait()
                if self.closing:
                    return
                job = self._lanes[lane].popleft()
                job.state = State.RUNNING
                job.started = self.clock()
                job.bump()
            self._run(job)

    def _run(self, job: Job) -> None:
        log.info("job %s started", job.id)
        state, error = State.DONE, None
        try:
            if job.kind == "video":
                # The same library call the command line makes: no second pipeline.
                anonymize_video(
                    job.input,
                    job.output,
                    job.config,
                    progress=job.on_progress,
                    on_start=job.on_start,
                    stop=job.stop,
                )
            else:
                result = anonymize_image(job.input, job.output, job.config)
                job.faces, job.sure = result.faces, result.sure
                job.width, job.height = result.width, result.height
        except Cancelled:
            state = State.CANCELLED
        except StreamguardError as e:
            state, error = State.FAILED, self._public_message(job, e)
        except Exception as e:  # noqa: BLE001 - a bug: keep the worker alive, tell the page, log it all
            log.exception("job %s failed with an internal error", job.id)
            state, error = State.FAILED, f"internal error ({type(e).__name__}); see the server's log"
        with self._lock:
            if job.stop.is_set() and state is State.DONE:
                state = State.CANCELLED  # cancelled too late to interrupt (a photo): drop the result
            job.state, job.error = state, error
            job.finished = self.clock()
            job.eta = None
            job.bump()
            if job.removing:  # removal asked for while it ran
                self._delete_files(job, job.reason or "removed")
            elif state is not State.DONE:
                # Nothing left worth keeping; the state and message stay for the page.
                self._delete_files(job, str(state), keep_state=True)
        log.info("job %s %s in %.1f s", job.id, state, (job.finished or 0) - (job.started or 0))

    def _public_message(self, job: Job, e: StreamguardError) -> str:
        """The library's one-line message, with this server's paths replaced by the user's names."""
        text = str(e)
        text = text.replace(str(job.input), job.name).replace(str(job.output), job.result_name)
        return text.replace(str(job.dir) + os.sep, "").replace(str(self.root), "(server)")

    def _delete_files(self, job: Job, reason: str, *, keep_state: bool = False) -> None:
        # Called with the lock held.
        shutil.rmtree(job.dir, ignore_errors=True)
        job.reason = reason
        if not keep_state:
            job.state = State.REMOVED
        job.finished = job.finished or self.clock()
        job.bump()
        log.info("job %s: files deleted (%s)", job.id, reason)

    # -- clean-up by age ------------------------------------------------------------------------------
    def reap(self) -> None:
        """Apply the keep rules once (the reaper thread calls this; tests may too)."""
        now = self.clock()
        lim = self.limits
        with self._lock:
            for job in list(self._jobs.values()):
                idle = now - job.last_seen
                if job.state in ACTIVE and idle > lim.keep and not job.removing:
                    self._remove(job, f"stopped and deleted: no page followed it for {lim.keep:g} s")
                elif job.state in (State.DONE, State.FAILED, State.CANCELLED) and idle > lim.keep:
                    self._delete_files(job, f"deleted after {lim.keep:g} s with no page open")
                elif (
                    job.state is State.DONE
                    and job.downloaded is not None
                    and now - job.downloaded >= lim.keep_downloaded
                ):
                    self._delete_files(job, "deleted from the server after download")
                elif job.state is State.REMOVED and now - (job.finished or now) > _TOMBSTONE_SECONDS:
                    del self._jobs[job.id]

    def _reap_loop(self) -> None:
        period = min(10.0, max(0.1, min(self.limits.keep, self.limits.keep_downloaded or 1.0) / 4))
        while not self._closing.wait(period):
            try:
                # A sign of life, so another server starting never sweeps this folder as a leftover.
                os.utime(self.root)
                self.reap()
            except Exception:  # noqa: BLE001 - the reaper must outlive a surprise
                log.exception("clean-up failed")
