"""Uploads: the page's options for a file, and its bytes streamed to disk as they arrive.

The body is never held in memory nor read without a deadline: it is written in blocks
off the event loop, claims disk room as it grows when its size was not declared, and
ends early (its partial file deleted by the caller) when the job is stopped, the
server shuts down, the size limit is passed or the client stops sending.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from ..config import Config
from ..errors import JobError
from .jobs import Job
from .manager import JobManager

__all__ = ["content_length", "job_config", "receive_upload"]

#: Upload bytes gathered before one disk write (off the event loop): few thread hops, little memory.
_WRITE_BLOCK = 1024 * 1024
#: Seconds between looks at a quiet upload: has its job been stopped, has it stalled?
_TICK = 0.25


def _flag(text: str | None, default: bool) -> bool:
    if text is None or text == "":
        return default
    if text.lower() in ("1", "true", "on", "yes"):
        return True
    if text.lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"boxes must be 0 or 1, got {text!r}")


def job_config(defaults: Config, query: Any) -> Config:
    """The server's defaults with the page's four options (mode, strength, detection, boxes) applied."""
    try:
        strength = float(query.get("strength") or defaults.anonymize.strength)
        if not math.isfinite(strength) or not 0.1 <= strength <= 10:
            raise ValueError(f"strength must be between 0.1 and 10, got {query.get('strength')}")
        return replace(
            defaults,
            detect=replace(defaults.detect, preset=query.get("detection") or defaults.detect.preset),
            anonymize=replace(
                defaults.anonymize,
                mode=query.get("mode") or defaults.anonymize.mode,
                strength=strength,
                boxes=_flag(query.get("boxes"), defaults.anonymize.boxes),
            ),
        )
    except ValueError as e:
        raise JobError(400, f"bad option: {e}") from None


def content_length(request: Request) -> int | None:
    """The declared body size; None for a chunked upload; 400 if the header is not a number."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None  # chunked: the limit is enforced while reading
    if not raw.isdigit():
        raise JobError(400, "bad Content-Length")
    return int(raw)


async def _body(receive: Receive, manager: JobManager, job: Job) -> AsyncIterator[bytes]:
    """The request body as it arrives, ended early when the job is stopped or the client stalls.

    Read from ASGI ``receive`` in short waits rather than ``Request.stream()``: uvicorn has no
    body read timeout, and a client that sends nothing more must not hold the job (its slot and
    partial file) until it disconnects. A cancelled wait loses nothing: uvicorn keeps the bytes.
    """
    timeout = manager.limits.read_timeout
    last = time.monotonic()
    while True:
        message: Message | None = None
        with anyio.move_on_after(min(_TICK, timeout)):
            message = await receive()
        if job.stop.is_set() or manager.closing:
            raise JobError(409, f"{job.name}: upload cancelled")
        if message is None:
            if time.monotonic() - last >= timeout:
                raise JobError(408, f"{job.name}: upload stalled: no data for {timeout:g} s")
            continue
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if chunk := message.get("body", b""):
            last = time.monotonic()
            job.last_seen = manager.clock()
            yield chunk
        if not message.get("more_body", False):
            return


async def receive_upload(request: Request, manager: JobManager, job: Job) -> int:
    """Stream the request body into the job's input file; returns its size."""
    limit = manager.limits.max_upload
    size = 0
    buf = bytearray()
    fd = manager.open_upload(job)
    try:
        with open(fd, "wb") as fh:
            async for chunk in _body(request.receive, manager, job):
                size += len(chunk)
                if size > limit:
                    raise JobError(413, manager.too_large(job.name))
                if size > job.claimed:  # chunked (no Content-Length): claim room as it grows
                    manager.claim(job, size)
                buf += chunk
                if len(buf) >= _WRITE_BLOCK:
                    await anyio.to_thread.run_sync(fh.write, buf)
                    job.received += len(buf)
                    buf = bytearray()  # a new buffer: the old one was handed to another thread
            if buf:
                await anyio.to_thread.run_sync(fh.write, buf)
                job.received += len(buf)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise JobError(507, f"{job.name}: the server's disk is full") from None
        raise
    return size
