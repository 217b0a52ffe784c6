"""``streamguard serve``: the local web page, on FastAPI and uvicorn.

Routes (JSON errors are ``{"error": "one line"}``)::

    GET    /                          the page (static/index.html); /static/* its assets
    GET    /api/config                limits, accepted types, default options
    GET    /api/health                "ok" (for container health checks)
    POST   /api/jobs?name=&mode=&strength=&detection=&boxes=
                                      body: the file's bytes, streamed to disk -> 201 job
    GET    /api/jobs/{id}             the job's state, progress, fps, ETA
    GET    /api/events?ids=a,b        server-sent events: the jobs' state on every change
    POST   /api/jobs/{id}/cancel      stop a queued or running job
    DELETE /api/jobs/{id}             cancel if needed and delete its files now
    GET    /api/jobs/{id}/input       the upload, for the "before" view
    GET    /api/jobs/{id}/result[?download=1]
                                      the result, inline or as an attachment
    GET    /api/zip?ids=a,b           every finished result among ids, as one zip

Requests that change something need the header ``X-Streamguard: 1``: a browser
will not send it cross-site without asking first (a CORS preflight this server
never grants), so another web site cannot upload to or cancel on this one.
Whatever the address listened on, only requests whose ``Host`` is a loopback
name or address, the address served on, or a name given with ``--allowed-host``
are answered: a DNS-rebinding page is same-origin for the browser, so the
header alone would not keep it out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..api import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..config import MODES, PRESETS, Config
from .jobs import Job, JobError, JobManager, Limits, format_size, parse_size

__all__ = ["main", "build_parser", "create_app", "serve_in_background", "Running", "STATIC_DIR"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2

#: Upload bytes gathered before one disk write (off the event loop): few thread hops, little memory.
_WRITE_BLOCK = 1024 * 1024
#: Seconds between checks for changes in an event stream, and between keep-alive comments.
_EVENT_TICK = 0.25
_KEEPALIVE = 15.0
_MAX_IDS = 200

_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}

# Everything the page uses comes from this server: no CDN, works offline.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def check_assets() -> None:
    """Fail loudly if the page's files were not installed with the package."""
    missing = [n for n in ("index.html", "app.js", "app.css") if not (STATIC_DIR / n).is_file()]
    if missing:
        raise RuntimeError(f"web page files missing from {STATIC_DIR}: {', '.join(missing)}")


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _host_name(text: str) -> str:
    """A host name or address as compared: no port or brackets, lower case, no final dot."""
    return _host_of(text.strip()).strip("[]").rstrip(".").lower()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    return getattr(ip, "ipv4_mapped", None) or ip


class _Guard:
    """Pure ASGI middleware (no body buffering): host check, CSRF header, security headers.

    The Host check applies whatever the address listened on: a DNS-rebinding page
    (its own name, resolved to this server) is same-origin for the browser, so it
    could send the CSRF header too. Answered are loopback names and addresses, the
    address a request came in on (rebinding needs a name, never an address) and
    the names in ``allowed_hosts``.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(_host_name(h) for h in allowed_hosts)

    def host_allowed(self, scope: Scope, name: str) -> bool:
        if not name:
            return False
        if name in self.allowed or _is_loopback_host(name):
            return True
        server = scope.get("server")
        ip = _address(name)
        return ip is not None and server is not None and ip == _address(str(server[0]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        name = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if not self.host_allowed(scope, name):
            why = f"this server does not answer to the name {name!r} (see streamguard serve --allowed-host)"
            await _reject(send, 421, why)
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and headers.get(b"x-streamguard") != b"1":
            await _reject(send, 403, "missing header X-Streamguard: 1 (cross-site requests are refused)")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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


def _content_length(request: Request) -> int | None:
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
        with anyio.move_on_after(min(_EVENT_TICK, timeout)):
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


async def _receive_upload(request: Request, manager: JobManager, job: Job) -> int:
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


def create_app(
    manager: JobManager, defaults: Config | None = None, *, allowed_hosts: Collection[str] = ()
) -> ASGIApp:
    """The web app over ``manager``; ``defaults`` are the options the page starts with.

    ``allowed_hosts``: names answered besides loopback ones and the address a request came in on.
    """
    defaults = defaults or Config()
    check_assets()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Uvicorn has let every connection finish (or timed them out): delete everything.
        await anyio.to_thread.run_sync(manager.close)

    app = FastAPI(title="streamguard", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(JobError)
    async def _job_error(_request: Request, e: JobError) -> JSONResponse:
        return _error(e.status, e.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"cache-control": "no-cache"}
        )

    @app.get("/api/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        a = defaults.anonymize
        return {
            "version": __version__,
            "max_upload": manager.limits.max_upload,
            "max_upload_text": format_size(manager.limits.max_upload),
            "video_suffixes": sorted(VIDEO_SUFFIXES),
            "image_suffixes": sorted(IMAGE_SUFFIXES),
            "modes": list(MODES),
            "presets": list(PRESETS),
            "defaults": {
                "mode": a.mode,
                "strength": a.strength,
                "detection": defaults.detect.preset,
                "boxes": a.boxes,
            },
            "keep_downloaded": manager.limits.keep_downloaded,
            "keep": manager.limits.keep,
        }

    @app.post("/api/jobs", status_code=201)
    async def upload(request: Request) -> JSONResponse:
        q = request.query_params
        config = job_config(defaults, q)
        job = manager.create(q.get("name", ""), config, _content_length(request))
        try:
            size = await _receive_upload(request, manager, job)
        except ClientDisconnect:
            log.info("job %s: upload abandoned by the client", job.id)
            manager.discard(job)
            return _error(400, "upload interrupted")
        except JobError as e:
            manager.discard(job)
            # The rest of the body will not be read: close the connection rather than wait for it.
            return _error(e.status, e.message, headers={"connection": "close"})
        except BaseException:
            manager.discard(job)
            raise
        if size == 0:
            manager.discard(job)
            raise JobError(422, f"{job.name}: file is empty")
        await anyio.to_thread.run_sync(manager.uploaded, job, size)
        return JSONResponse(manager.snapshot([job.id])[0], status_code=201)

    @app.get("/api/jobs/{job_id}")
    async def status(job_id: str) -> dict[str, Any]:
        return manager.snapshot([manager.get(job_id).id])[0]

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str) -> dict[str, Any]:
        job = manager.cancel(job_id)
        return manager.snapshot([job.id])[0]

    @app.delete("/api/jobs/{job_id}", status_code=204)
    async def remove(job_id: str) -> Response:
        manager.remove(job_id)
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/input")
    async def original(job_id: str) -> FileResponse:
        job = manager.original(job_id)
        return FileResponse(
            job.input,
            media_type=_MEDIA_TYPES[job.suffix],
            filename=job.name,
            content_disposition_type="inline",
        )

    @app.get("/api/jobs/{job_id}/result")
    async def result(job_id: str, download: bool = False) -> FileResponse:
        job = manager.result(job_id)
        # Runs once the whole file was sent: a download the client broke off does not count.
        done = BackgroundTask(manager.mark_downloaded, [job]) if download else None
        return FileResponse(
            job.output,
            media_type=_MEDIA_TYPES[job.suffix],
            filename=job.result_name,
            content_disposition_type="attachment" if download else "inline",
            background=done,
        )

    @app.get("/api/zip")
    async def zip_all(ids: str = "") -> StreamingResponse:
        jobs, stream = manager.zip_results(_ids(ids))
        name = "streamguard-result.zip" if len(jobs) > 1 else f"{jobs[0].result_name}.zip"
        return StreamingResponse(
            stream,
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{_ascii(name)}"'},
        )

    streams = 0  # open event streams; only the event loop's thread counts them

    def stream_closed() -> None:
        nonlocal streams
        streams -= 1

    @app.get("/api/events")
    async def events(ids: str = "") -> StreamingResponse:
        nonlocal streams
        job_ids = _ids(ids)
        # Each stream is a coroutine polling the jobs: bounded, so clients cannot pile them up.
        if streams >= manager.limits.max_streams:
            raise JobError(429, f"too many open event streams ({streams}); close other pages of this server")
        streams += 1

        async def stream() -> AsyncIterator[str]:
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

        return _CountedStream(
            stream(), stream_closed, media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return _Guard(app, allowed_hosts=allowed_hosts)


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


def _ids(text: str) -> list[str]:
    ids = [i for i in text.split(",") if i][:_MAX_IDS]
    if not ids:
        raise JobError(400, "no job ids given")
    return list(dict.fromkeys(ids))


def _ascii(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)


# -- running the server ------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """Uvicorn, telling the job manager to stop as soon as shutdown begins.

    Without that, open event streams would hold the graceful shutdown for its
    whole timeout. Signals are handled here without uvicorn's re-raise after
    shutdown, so ``main`` returns normally and its clean-up runs.
    """

    def __init__(self, config: uvicorn.Config, manager: JobManager) -> None:
        super().__init__(config)
        self.manager = manager

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.manager.stop_all()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; an OSError names what went wrong."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _url(host: str, port: int) -> str:
    if _is_wildcard(host):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


@dataclass
class Running:
    """A server running on a background thread (for tests and embedding)."""

    url: str
    manager: JobManager
    server: _Server
    thread: threading.Thread


def _make_server(
    sock: socket.socket,
    manager: JobManager,
    defaults: Config | None,
    *,
    host: str,
    allowed_hosts: Collection[str],
    log_level: str,
) -> _Server:
    # The name listened on is one a browser may use too (a wildcard address is not).
    names = [*allowed_hosts, *([] if _is_wildcard(host) else [host])]
    app = create_app(manager, defaults, allowed_hosts=names)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        # File names travel in query strings: keep them out of logs.
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
        server_header=False,
    )
    return _Server(config, manager)


@contextlib.contextmanager
def serve_in_background(
    limits: Limits | None = None,
    defaults: Config | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    parent: str | os.PathLike[str] | None = None,
    allowed_hosts: Collection[str] = (),
) -> Iterator[Running]:
    """Run the app on a free port in a thread; stops it and deletes its files on exit."""
    sock = _bind(host, port)
    manager = JobManager(limits, parent=parent)
    manager.start()
    server = _make_server(
        sock, manager, defaults, host=host, allowed_hosts=allowed_hosts, log_level="warning"
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sgweb-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the web server did not start")
            threading.Event().wait(0.01)
        yield Running(_url(host, sock.getsockname()[1]), manager, server, thread)
    finally:
        server.handle_exit(signal.SIGTERM, None)
        thread.join(timeout=15)
        manager.close()
        sock.close()


# -- command line ------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    v = float(text)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return v


def _positive_seconds(text: str) -> float:
    v = _seconds(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return v


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _allowed_host(text: str) -> str:
    name = _host_name(text)
    if not name or any(c in name for c in "/\\*@ \t"):
        raise argparse.ArgumentTypeError(f"must be a host name or address (like photos.lan), got {text!r}")
    return name


def _count(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from ..cli import add_anonymize_options

    p = argparse.ArgumentParser(
        prog="streamguard serve",
        description="A local web page to anonymize photos and videos: drop files, watch progress, "
        "compare before and after, download. Nothing leaves this machine. The anonymization and "
        "tracking options below apply to every file; the page starts from them and can change "
        "mode, strength, detection and outlines per file.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--allowed-host",
        type=_allowed_host,
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable); loopback names, the address "
        "served on and --host are always answered, any other name is refused (DNS rebinding)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    s = p.add_argument_group("limits and clean-up")
    s.add_argument(
        "--max-upload",
        type=_size,
        default=2 * 1024**3,
        metavar="SIZE",
        help="largest file accepted (default 2G)",
    )
    s.add_argument(
        "--jobs",
        type=_count,
        default=1,
        metavar="N",
        help="videos processed at once (default 1; others wait in line)",
    )
    s.add_argument(
        "--max-files", type=_count, default=100, metavar="N", help="files held at once (default 100)"
    )
    s.add_argument(
        "--read-timeout",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="end an upload, deleting what it sent, when no byte of it arrived for this long (default 60)",
    )
    s.add_argument(
        "--max-streams",
        type=_count,
        default=32,
        metavar="N",
        help="progress streams (one per open page) served at once (default 32)",
    )
    s.add_argument(
        "--keep",
        type=_positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="delete a file's upload and result (cancelling it if running) when no page has asked "
        "about it for this long (default 600)",
    )
    s.add_argument(
        "--keep-downloaded",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="delete a result this long after it was downloaded (default 60)",
    )
    s.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where to make the private temporary folder (default: the system's, $TMPDIR)",
    )
    # The page's starting options (it can change mode, strength, detection and outlines per file).
    add_anonymize_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--version", action="version", version=f"streamguard {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``streamguard serve [--host H] [--port P] [--open] ...``; returns the exit code."""
    from ..cli import UsageError, config_from_args

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING, format="streamguard: %(message)s"
    )
    try:
        defaults = config_from_args(args)
        limits = Limits(
            max_upload=args.max_upload,
            keep=args.keep,
            keep_downloaded=args.keep_downloaded,
            video_workers=args.jobs,
            max_jobs=args.max_files,
            read_timeout=args.read_timeout,
            max_streams=args.max_streams,
        )
    except (UsageError, ValueError) as e:
        parser.error(str(e))
    if args.workdir is not None and not args.workdir.is_dir():
        parser.error(f"--workdir {args.workdir}: no such folder")
    try:
        check_assets()
    except RuntimeError as e:
        print(f"streamguard: error: {e} (reinstall streamguard)", file=sys.stderr)
        return EXIT_BUG
    try:
        sock = _bind(args.host, args.port)
    except OSError as e:
        why = e.strerror or str(e)
        print(f"streamguard: error: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return EXIT_USAGE
    loopback = _is_loopback_host(args.host)
    manager = JobManager(limits, parent=args.workdir)
    try:
        server = _make_server(
            sock,
            manager,
            defaults,
            host=args.host,
            allowed_hosts=args.allowed_host,
            log_level="error" if args.quiet else "warning",
        )
        url = _url(args.host, sock.getsockname()[1])
        print(f"streamguard: serving on {url} (Ctrl-C to stop)", flush=True)
        if not loopback:
            log.warning(
                "listening on %s: anyone who can reach this port can use it (there is no login); "
                "names answered besides localhost and this machine's address: %s",
                args.host,
                ", ".join(args.allowed_host) or "none (add with --allowed-host)",
            )
        manager.start()
        if args.open:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()
        server.run(sockets=[sock])
    finally:
        manager.close()
        sock.close()
    return EXIT_OK
