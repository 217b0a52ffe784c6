"""Server-sent events: each open page follows its jobs' state on one stream, at most ``max_streams`` at once.

A stream sends the jobs' public state whenever one of them changes, and a comment
every few seconds otherwise so proxies keep it open. Following a job this way keeps
it alive, like any question about it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import JobError
from .manager import JobManager

__all__ = ["EventStreams"]

#: Seconds between checks for changes in an event stream, and between keep-alive comments.
_EVENT_TICK = 0.25
_KEEPALIVE = 15.0


class EventStreams:
    """The event streams of one app, counted so that clients cannot pile them up.

    Each stream is a coroutine polling the jobs. Only the event loop's thread opens and
    closes them, so the count needs no lock.
    """

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.open = 0

    def respond(self, job_ids: list[str]) -> StreamingResponse:
        """A response streaming the state of ``job_ids``; 429 when too many streams are open."""
        if self.open >= self.manager.limits.max_streams:
            raise JobError(
                429, f"too many open event streams ({self.open}); close other pages of this server"
            )
        self.open += 1
        return _CountedStream(
            self._events(job_ids),
            self._closed,
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    def _closed(self) -> None:
        self.open -= 1

    async def _events(self, job_ids: list[str]) -> AsyncIterator[str]:
        manager = self.manager
        # Reconnect after 2 s if the connection drops (EventSource does it on its own).
        yield "retry: 2000\n\n"
        last: tuple[int, ...] | None = None
        quiet = 0.0
        while not manager.closing:
            versions = manager.versions(job_ids)
            # A snapshot also marks the jobs as followed, so an open page keeps them alive.
            jobs = manager.snapshot(job_ids)
            if versions != last:
                last, quiet = versions, 0.0
                yield f"data: {json.dumps({'jobs': jobs})}\n\n"
            elif quiet >= _KEEPALIVE:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(_EVENT_TICK)
            quiet += _EVENT_TICK


class _CountedStream(StreamingResponse):
    """A streaming response that calls ``on_close`` once it ends, however it ends (a client gone too)."""

    def __init__(self, content: AsyncIterable[str], on_close: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
