"""Jobs: uploaded files waiting, running or done, the workers that run them, and their clean-up.

No HTTP here, so the rules can be tested and reused apart from the framework.
Every file a job has lives in ``<root>/<job id>/`` (``input<suffix>``,
``result<suffix>``), under a private folder this module made (mode 0700). Job
ids are random tokens made here; a client's file name is kept for display and
``Content-Disposition`` only and never reaches the file system.

A job's files are deleted when it fails or is cancelled, ``keep_downloaded``
seconds after its result was downloaded, when no page has asked about it for
``keep`` seconds (a closed tab: a running job is cancelled first) and when the
manager closes. Folders left by a server that could not clean up (SIGKILL, power
loss) are swept by the next one to start, once a day old (:func:`sweep_leftovers`).
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import unicodedata
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import IMAGE_SUFFIXES, VIDEO_SUFFIXES, anonymize_image, anonymize_video
from ..config import Config
from ..errors import Cancelled, JobError, StreamguardError
from ..sources import VideoInfo, probe_video

__all__ = [
    "Limits",
    "Job",
    "JobError",
    "JobManager",
    "State",
    "clean_name",
    "kind_of",
    "parse_size",
    "sweep_leftovers",
]

log = logging.getLogger(__name__)

GIB = 1024**3
#: Free disk space left over after an upload and its result, so the machine stays usable.
_DISK_RESERVE = 256 * 1024**2
#: Uploads claim disk space in steps of this size (a chunked one as it grows), so a claim is rare.
_CLAIM_STEP = 1024**2
#: How long a removed job is still answered for ("deleted after download") before it is forgotten.
_TOMBSTONE_SECONDS = 3600.0
_ID_CHARS = frozenset("0123456789abcdef")
_ROOT_PREFIX = "streamguard-web-"
#: A working folder untouched this long belongs to a server that is gone (a live one touches its own).
_LEFTOVER_AGE = 24 * 3600.0


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


def valid_id(job_id: str) -> bool:
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
        return self.dir / f"result{self.suffix}"

    @property
    def result_name(self) -> str:
        stem = self.name[: -len(self.suffix)] if self.name.lower().endswith(self.suffix) else self.name
        return f"{stem}.anonymized{self.suffix}"

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
        sweep_leftovers(tempfile.gettempdir() if parent is None else parent)
        # mkdtemp makes the folder 0700; chmod again in case a umask or platform thinks otherwise.
        self.root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX, dir=parent))
        os.chmod(self.root, 0o700)
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
            job_id = secrets.token_hex(16)
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
        want = min(self.limits.max_upload, -(-size // _CLAIM_STEP) * _CLAIM_STEP)
        if want <= job.claimed:
            return
        others = sum(self._pending(j) for j in self._jobs.values() if j is not job)
        had, job.claimed = job.claimed, want
        if shutil.disk_usage(self.root).free - others - self._pending(job) < _DISK_RESERVE:
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
        return jobs, _zip_stream(jobs, on_complete=lambda: self.mark_downloaded(jobs))

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
                job.faces, job.width, job.height = result.faces, result.width, result.height
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


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


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


def _zip_stream(jobs: list[Job], on_complete: Callable[[], Any], chunk: int = 1024 * 1024) -> Iterator[bytes]:
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
