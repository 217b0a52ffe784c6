"""``streamguard serve``: the local web page, on FastAPI and uvicorn.

The command line (:func:`main`) checks its options, binds the port, and runs the app of
:mod:`streamguard.web.app` under uvicorn until Ctrl-C or SIGTERM, then deletes every
file it held. :func:`serve_in_background` runs the same server on a thread (tests,
embedding).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from .. import __version__
from ..config import Config
from ..errors import UsageError
from ..options import add_anonymize_options, at_least_one, config_from_args, positive_seconds, seconds
from .app import check_assets, create_app
from .guard import host_name, is_loopback_host
from .limits import Limits, parse_size
from .manager import JobManager

__all__ = ["main", "build_parser", "serve_in_background", "Running"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2


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


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _allowed_host(text: str) -> str:
    name = host_name(text)
    if not name or any(c in name for c in "/\\*@ \t"):
        raise argparse.ArgumentTypeError(f"must be a host name or address (like photos.lan), got {text!r}")
    return name


def build_parser() -> argparse.ArgumentParser:
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
        type=at_least_one,
        default=1,
        metavar="N",
        help="videos processed at once (default 1; others wait in line)",
    )
    s.add_argument(
        "--max-files", type=at_least_one, default=100, metavar="N", help="files held at once (default 100)"
    )
    s.add_argument(
        "--read-timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="end an upload, deleting what it sent, when no byte of it arrived for this long (default 60)",
    )
    s.add_argument(
        "--max-streams",
        type=at_least_one,
        default=32,
        metavar="N",
        help="progress streams (one per open page) served at once (default 32)",
    )
    s.add_argument(
        "--keep",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="delete a file's upload and result (cancelling it if running) when no page has asked "
        "about it for this long (default 600)",
    )
    s.add_argument(
        "--keep-downloaded",
        type=seconds,
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
    loopback = is_loopback_host(args.host)
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
