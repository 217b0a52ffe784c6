"""The web app: FastAPI routes over a :class:`~streamguard.web.manager.JobManager`.

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

Every request passes :class:`~streamguard.web.guard.Guard` first: Host names, the
``X-Streamguard: 1`` header on requests that change something, security headers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

from .. import __version__
from ..api import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..config import MODES, PRESETS, Config
from ..errors import JobError
from .events import EventStreams
from .guard import Guard
from .limits import format_size
from .manager import JobManager
from .uploads import content_length, job_config, receive_upload

__all__ = ["STATIC_DIR", "check_assets", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Job ids taken from one query string.
_MAX_IDS = 200

_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".mts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".ts": "video/mp2t",
    ".3gp": "video/3gpp",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".flv": "video/x-flv",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
}


def check_assets() -> None:
    """Fail loudly if the page's files were not installed with the package."""
    missing = [n for n in ("index.html", "app.js", "app.css") if not (STATIC_DIR / n).is_file()]
    if missing:
        raise RuntimeError(f"web page files missing from {STATIC_DIR}: {', '.join(missing)}")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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
        job = manager.create(q.get("name", ""), config, content_length(request))
        try:
            size = await receive_upload(request, manager, job)
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
            media_type=_MEDIA_TYPES[job.output.suffix],
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

    streams = EventStreams(manager)

    @app.get("/api/events")
    async def events(ids: str = "") -> StreamingResponse:
        return streams.respond(_ids(ids))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return Guard(app, allowed_hosts=allowed_hosts)


def _ids(text: str) -> list[str]:
    ids = [i for i in text.split(",") if i][:_MAX_IDS]
    if not ids:
        raise JobError(400, "no job ids given")
    return list(dict.fromkeys(ids))


def _ascii(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
