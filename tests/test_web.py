"""The web app over HTTP, on a real server (127.0.0.1, a free port), with real files and pixels."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from streamguard import Config, DetectConfig, synth
from streamguard.web.jobs import Job, clean_name
from streamguard.web.limits import Limits, claim_size, format_size, parse_size
from streamguard.web.server import Running, serve_in_background

from .pixels import assert_destroyed, audio_packets, decode_rgb
from .test_images import _photo

# The default detector preset is slow; these tests are about the web layer.
FAST = Config(detect=DetectConfig(preset="fast"))
MiB = 1024 * 1024

# Long enough to cancel while it runs, small enough to write quickly.
LONG_SCENE = synth.Scene(
    width=480,
    height=270,
    fps=30,
    duration=4.0,
    seed=5,
    faces=(synth.FaceTrack(0, 0.0, 4.0, ((0.0, 160, 130, 120), (4.0, 300, 140, 120))),),
)


class Client:
    """Just enough HTTP for the tests, on http.client (so raw bodies and odd headers are possible)."""

    def __init__(self, url: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80

    def conn(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        c = self.conn()
        try:
            c.request(method, path, body=body, headers={"X-Streamguard": "1", **(headers or {})})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request(method, path, **kw)
        return status, json.loads(body) if body else {}

    def upload(self, data: bytes | Path, name: str, **options: str) -> tuple[int, dict[str, Any]]:
        body = data.read_bytes() if isinstance(data, Path) else data
        query = urllib.parse.urlencode({"name": name, **options})
        return self.json("POST", f"/api/jobs?{query}", body=body)

    def status(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/api/jobs/{job_id}")[1]

    def wait(
        self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"timed out waiting; last state {job}"
            time.sleep(0.1)

    def events(self, ids: list[str], until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60):
        """Read the event stream until ``until(jobs)``; returns every event's job list."""
        c = self.conn(timeout=timeout)
        seen: list[list[dict[str, Any]]] = []
        try:
            c.request("GET", f"/api/events?ids={','.join(ids)}")
            r = c.getresponse()
            assert r.status == 200 and r.getheader("content-type", "").startswith("text/event-stream")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = r.fp.readline().decode()
                if line.startswith("data: "):
                    jobs = json.loads(line[6:])["jobs"]
                    seen.append(jobs)
                    if until(jobs):
                        return seen
            raise AssertionError(f"event stream timed out; last {seen[-1:]}")
        finally:
            c.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start servers (limits as keyword arguments); every one is stopped and checked clean at the end."""
    roots: list[Path] = []
    with contextlib.ExitStack() as stack:

        def start(*, host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = (), **limits: Any) -> Running:
            names = {"allowed_hosts": allowed_hosts} if allowed_hosts else {}
            running = stack.enter_context(
                serve_in_background(Limits(**limits), FAST, host=host, parent=tmp_path, **names)
            )
            roots.append(running.manager.root)
            return running

        yield start
    for root in roots:
        assert not root.exists(), "shutdown must delete every upload and result"


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Videos written at most 25 frames a second, as on a slower machine.

    Tests that watch a job while it runs (progress, rate, cancel, abandon) would otherwise
    race a quick machine: CI once finished the 45-frame clip between two polls of the page.
    """
    unpaced = Job.on_progress

    def on_progress(self: Job, done: int) -> None:
        time.sleep(0.04)
        unpaced(self, done)

    monkeypatch.setattr(Job, "on_progress", on_progress)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list]:
    image, boxes = _photo()
    path = tmp_path_factory.mktemp("web") / "photo.jpg"
    Image.fromarray(image).save(path, quality=95)
    return path, np.asarray(Image.open(path).convert("RGB")), boxes


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "long.mp4"
    synth.write_clip(path, LONG_SCENE)
    return path


def _done(job: dict[str, Any]) -> bool:
    return job["state"] not in ("uploading", "queued", "running")


def _job_dirs(running: Running) -> list[str]:
    return sorted(p.name for p in running.manager.root.iterdir())


def test_image_and_video_end_to_end(serve, paced, photo, face_clip, tmp_path):
    srv = serve(keep_downloaded=2.0)
    c = Client(srv.url)
    root = srv.manager.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700, "the working folder must be private"

    # Photo: upload, wait, download, faces destroyed on the pixels.
    path, original, boxes = photo
    status, img = c.upload(path, "Family photo.jpg", mode="blur", strength="1.2", detection="fast")
    assert status == 201, img
    assert img["kind"] == "image" and img["name"] == "Family photo.jpg"
    assert stat.S_IMODE((root / img["id"] / "input.jpg").stat().st_mode) == 0o600
    img = c.wait(img["id"], _done)
    assert img["state"] == "done" and img["faces"] >= img["sure"] >= 2, img
    # The page's preview (inline) is not a download: nothing is deleted for it.
    status, headers, photo_bytes = c.request("GET", f"/api/jobs/{img['id']}/result")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert headers["content-disposition"].startswith("inline")
    body = photo_bytes
    out = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert out.shape == original.shape
    for box in boxes:
        assert_destroyed(original, out, box, "in the photo downloaded from the web app")

    # Video: upload, follow the event stream to the end, download, faces destroyed, audio kept.
    src, gt = face_clip
    status, vid = c.upload(src, "clip.mp4", detection="fast", mode="solid")
    assert status == 201, vid
    assert (vid["width"], vid["height"]) == (640, 360)
    seen = c.events([vid["id"]], lambda jobs: _done(jobs[0]))
    final = seen[-1][0]
    assert final["state"] == "done", final
    assert final["options"] == {"mode": "solid", "strength": 1.0, "detection": "fast", "boxes": False}
    running = [jobs[0] for jobs in seen if jobs[0]["state"] == "running"]
    assert any(j["fps"] and j["eta"] is not None and 0 < j["progress"] < 1 for j in running), running
    progress = [j["frames_done"] for j in running]
    assert progress == sorted(progress), "progress never goes back"
    assert final["frames_done"] == len(gt.frames)

    # Download all: a zip of both results, named for the user.
    status, headers, body = c.request("GET", f"/api/zip?ids={img['id']},{vid['id']}")
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["Family photo.anonymized.jpg", "clip.anonymized.mp4"]
        assert z.read("Family photo.anonymized.jpg") == photo_bytes
        zipped_video = z.read("clip.anonymized.mp4")

    # One file: an attachment with the user's name, the same bytes.
    status, headers, body = c.request("GET", f"/api/jobs/{vid['id']}/result?download=1")
    assert status == 200 and headers["content-type"] == "video/mp4"
    assert headers["content-disposition"] == 'attachment; filename="clip.anonymized.mp4"'
    assert body == zipped_video
    # The "before" view serves the upload unchanged; video seeking needs byte ranges.
    status, headers, head = c.request("GET", f"/api/jobs/{vid['id']}/input", headers={"Range": "bytes=0-99"})
    assert status == 206 and head == src.read_bytes()[:100]

    result = tmp_path / "result.mp4"
    result.write_bytes(body)
    frames_in, frames_out = decode_rgb(src), decode_rgb(result)
    assert len(frames_out) == len(frames_in)
    for i in (0, len(gt.frames) // 2, len(gt.frames) - 1):
        for box in gt.frames[i].boxes:
            assert_destroyed(frames_in[i], frames_out[i], box, f"frame {i} of the video from the web app")
    assert audio_packets(result) == audio_packets(src), "audio must survive packet for packet"

    # Downloaded, so both are deleted after keep_downloaded; the page is told why.
    for job_id in (img["id"], vid["id"]):
        job = c.wait(job_id, lambda j: j["state"] == "removed", timeout=10)
        assert "after download" in job["reason"]
        assert not (root / job_id).exists()
        status, body = c.json("GET", f"/api/jobs/{job_id}/result")
        assert status == 410 and "after download" in body["error"]
    assert _job_dirs(srv) == []


def test_too_large_unsupported_and_bad_content_refused(serve, tmp_path):
    srv = serve(max_upload=1 * MiB)
    c = Client(srv.url)

    # Declared too large: refused before a byte of the body is read.
    conn = c.conn()
    conn.putrequest("POST", "/api/jobs?name=big.mp4")
    conn.putheader("X-Streamguard", "1")
    conn.putheader("Content-Length", str(2 * MiB))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read()) == {
        "error": "big.mp4: file is larger than the 1 MiB limit"
    }
    conn.close()

    # Not declared (chunked): refused once the limit is passed, and the partial file is gone.
    def chunks() -> Iterator[bytes]:
        for _ in range(6):
            yield b"\0" * (256 * 1024)

    status, body = c.json("POST", "/api/jobs?name=big.mov", body=chunks())
    assert status == 413 and "1 MiB limit" in body["error"]

    status, body = c.upload(b"hello", "notes.txt")
    assert status == 415 and "not a supported file type" in body["error"] and ".mp4" not in body["error"]
    assert "mp4" in body["error"] and "jpg" in body["error"]

    status, body = c.upload(b"", "empty.mp4")
    assert status == 422 and "empty" in body["error"]

    # A video that is not one: the library's own message, with the user's name, no server path.
    # (Fixed bytes: random ones are now and then probed as some audio format, "no video stream".)
    status, body = c.upload(random.Random(0).randbytes(4096), "holiday.mp4")
    assert status == 422 and body["error"].startswith("holiday.mp4: cannot open as media"), body
    assert str(srv.manager.root) not in body["error"]

    # A photo that is not one: accepted by suffix, then failed by the library (InputError), shown.
    status, job = c.upload(b"definitely not a jpeg" * 50, "me.jpg")
    assert status == 201
    job = c.wait(job["id"], _done)
    assert job["state"] == "failed" and job["error"].startswith("me.jpg:"), job
    assert str(srv.manager.root) not in job["error"]

    # Bad options.
    for query in ("mode=evil", "strength=nan", "strength=0", "detection=psychic", "boxes=maybe"):
        status, body = c.json("POST", f"/api/jobs?name=a.jpg&{query}", body=b"x")
        assert status == 400 and body["error"].startswith("bad option"), (query, body)
    assert _job_dirs(srv) == [], "refused and failed uploads leave no files"


@pytest.mark.parametrize(
    "name",
    ["../../x", "../../x.jpg", "/etc/passwd.jpg", "C:\\Windows\\x.png", "a\x00.jpg", "..", "", "x.jpg\n.mp4"],
)
def test_hostile_file_names_refused(serve, tmp_path, name):
    srv = serve()
    c = Client(srv.url)
    before = sorted(p for p in tmp_path.rglob("*"))
    status, body = c.json(
        "POST", "/api/jobs?" + urllib.parse.urlencode({"name": name}), body=b"\xff\xd8 not much"
    )
    assert status in (400, 415), body
    assert body["error"]
    assert sorted(p for p in tmp_path.rglob("*")) == before, "nothing may be written for a refused name"
    assert not Path("/etc/passwd.jpg").exists() and not (tmp_path.parent / "x").exists()


def test_names_are_only_displayed():
    assert clean_name("  Été 2024 (1).JPG ") == "Été 2024 (1).JPG"
    # A right-to-left override could make "exe.jpg" look like "gpj.exe": dropped.
    assert clean_name("photo\u202egpj.mp4") == "photogpj.mp4"
    assert parse_size("2G") == 2 * 1024**3 and parse_size("500M") == 500 * MiB and parse_size("1024") == 1024


def test_every_accepted_file_is_served_with_its_type_and_an_mpg_comes_back_as_mkv(tmp_path):
    from streamguard.api import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from streamguard.web.app import _MEDIA_TYPES
    from streamguard.web.jobs import kind_of

    # A result download looks its type up by suffix: one missing (.gif was) is a server error.
    assert set(VIDEO_SUFFIXES | IMAGE_SUFFIXES) <= set(_MEDIA_TYPES)
    kind, suffix = kind_of("Holiday 1998.MPG")
    job = Job(id="x", name="Holiday 1998.MPG", kind=kind, suffix=suffix, dir=tmp_path, config=FAST,
              created=0.0, last_seen=0.0)
    assert kind == "video" and job.output.name == "result.mkv"
    assert job.result_name == "Holiday 1998.anonymized.mkv"
    assert kind_of("dashcam.TS") == ("video", ".ts")


def test_sizes_read_back_and_claims_round_up_to_a_step():
    assert format_size(parse_size("2G")) == "2 GiB" and format_size(1536) == "1.5 KiB"
    assert format_size(10) == "10 bytes"
    # Room is claimed a MiB at a time, never more than the upload limit allows.
    assert claim_size(1, 8 * MiB) == MiB and claim_size(MiB + 1, 8 * MiB) == 2 * MiB
    assert claim_size(100 * MiB, 8 * MiB) == 8 * MiB


def test_serve_reads_the_anonymize_options_as_the_files_command_does():
    from streamguard.cli import build_parser as files_parser
    from streamguard.options import config_from_args
    from streamguard.web.server import build_parser as serve_parser

    opts = ["--mode", "pixelate", "--strength", "2", "--detection", "fast", "--boxes", "--hold", "1"]
    files = config_from_args(files_parser().parse_args(["in.mp4", *opts]))
    served = config_from_args(serve_parser().parse_args(opts))
    assert (served.anonymize, served.detect, served.track) == (files.anonymize, files.detect, files.track)
    assert served.anonymize.mode == "pixelate" and served.detect.preset == "fast"


def test_unknown_ids_bad_hosts_and_cross_site_requests(serve):
    srv = serve()
    c = Client(srv.url)
    unknown = "0123456789abcdef0123456789abcdef"
    for method, path in [
        ("GET", f"/api/jobs/{unknown}"),
        ("GET", f"/api/jobs/{unknown}/result"),
        ("GET", f"/api/jobs/{unknown}/input"),
        ("POST", f"/api/jobs/{unknown}/cancel"),
        ("DELETE", f"/api/jobs/{unknown}"),
        ("GET", "/api/jobs/..%2F..%2Fetc%2Fpasswd/result"),
        ("GET", "/api/jobs/not-an-id"),
    ]:
        status, body = c.json(method, path)
        assert status == 404 and "error" in body, (method, path, body)
    status, body = c.json("GET", f"/api/zip?ids={unknown}")
    assert status == 409
    # Events for unknown ids say so instead of hanging.
    seen = c.events([unknown], lambda jobs: True, timeout=5)
    assert seen[0] == [{"id": unknown, "state": "unknown"}]
    # Another web site cannot post here: a browser would need a CORS preflight to add the header.
    status, _, body = c.request("POST", "/api/jobs?name=a.jpg", body=b"x", headers={"X-Streamguard": ""})
    assert status == 403
    # DNS rebinding: a page on another host name that resolves to 127.0.0.1 is not answered.
    status, _, body = c.request("GET", "/api/config", headers={"Host": "evil.example:8765"})
    assert status == 421
    status, headers, body = c.request("GET", "/")
    assert status == 200 and b"streamguard" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for asset in ("app.js", "app.css", "favicon.svg"):
        assert c.request("GET", f"/static/{asset}")[0] == 200
    assert c.request("GET", "/static/../server.py")[0] == 404


def test_host_is_checked_on_every_address(serve):
    """DNS rebinding: a page on another name resolving to this server is not answered, on 0.0.0.0 too."""
    # Bound to every interface, as the Docker image runs; the test connects over loopback only.
    srv = serve(host="0.0.0.0", max_jobs=3)
    c = Client(srv.url)
    evil = {"Host": f"evil.example:{c.port}"}
    for _ in range(3):
        status, _, body = c.request("POST", "/api/jobs?name=x.png", body=b"x" * 100, headers=evil)
        assert status == 421, body
    assert _job_dirs(srv) == [], "a refused host must not get a slot or a file"
    status, job = c.upload(b"not really a png" * 10, "mine.png")
    assert status == 201, job
    for method, path in [
        ("GET", "/"),
        ("GET", "/api/config"),
        ("GET", f"/api/jobs/{job['id']}"),
        ("GET", f"/api/jobs/{job['id']}/input"),
        ("GET", f"/api/jobs/{job['id']}/result"),
        ("GET", f"/api/events?ids={job['id']}"),
        ("POST", f"/api/jobs/{job['id']}/cancel"),
        ("DELETE", f"/api/jobs/{job['id']}"),
    ]:
        status, _, body = c.request(method, path, headers=evil)
        assert status == 421 and b"evil.example" in body, (method, path, status, body)
    assert c.status(job["id"])["state"] != "unknown", "the refused DELETE must not have deleted the job"
    for name in ("localhost", "LocalHost.", "127.0.0.1", "[::1]", "127.0.0.2"):
        assert c.request("GET", "/api/config", headers={"Host": f"{name}:{c.port}"})[0] == 200, name
    assert c.request("GET", "/api/config", headers={"Host": ""})[0] == 421

    # Names the server was told to answer to (--allowed-host), exactly: not their sub-domains.
    srv = serve(host="0.0.0.0", allowed_hosts=("Photos.example",))
    c = Client(srv.url)
    for name, expected in [
        ("photos.example", 200),
        ("PHOTOS.EXAMPLE.", 200),
        ("evil.photos.example", 421),
        ("photos.example.evil", 421),
        ("localhost", 200),
    ]:
        assert c.request("GET", "/api/config", headers={"Host": f"{name}:{c.port}"})[0] == expected, name


def test_cancel_running_and_queued_jobs(serve, paced, long_clip, face_clip):
    srv = serve()
    c = Client(srv.url)
    status, first = c.upload(long_clip, "long.mp4")
    assert status == 201
    status, second = c.upload(face_clip[0], "short.mp4")
    assert status == 201
    # One video at a time: the second waits in line.
    c.wait(first["id"], lambda j: j["state"] == "running" and j["frames_done"] > 0)
    queued = c.status(second["id"])
    assert queued["state"] == "queued" and queued["queue_position"] == 1

    status, job = c.json("POST", f"/api/jobs/{second['id']}/cancel")
    assert status == 200 and job["state"] == "cancelled"
    assert not (srv.manager.root / second["id"]).exists()

    t0 = time.monotonic()
    status, _ = c.json("POST", f"/api/jobs/{first['id']}/cancel")
    assert status == 200
    job = c.wait(first["id"], _done, timeout=10)
    assert job["state"] == "cancelled", job
    assert time.monotonic() - t0 < 5, "cancel must stop a running job promptly"
    assert job["frames_done"] < job["frames_total"]
    assert not (srv.manager.root / first["id"]).exists(), "a cancelled job leaves no files"
    status, body = c.json("GET", f"/api/jobs/{first['id']}/result")
    assert status == 409
    assert _job_dirs(srv) == []


def test_abandoned_jobs_are_stopped_and_deleted(serve, paced, long_clip, photo):
    # keep=1: a job no page asks about for a second is cancelled and its files deleted.
    srv = serve(keep=1.0)
    c = Client(srv.url)
    status, video = c.upload(long_clip, "long.mp4")
    status, image = c.upload(photo[0], "photo.jpg")
    root = srv.manager.root
    assert (root / video["id"]).exists() and (root / image["id"]).exists()
    # Nobody polls now (as if the tab was closed); look only at the disk.
    deadline = time.monotonic() + 15
    while (root / video["id"]).exists() or (root / image["id"]).exists():
        assert time.monotonic() < deadline, "abandoned jobs were not cleaned up"
        time.sleep(0.1)
    manager = srv.manager
    v = manager.snapshot([video["id"]], touch=False)[0]
    i = manager.snapshot([image["id"]], touch=False)[0]
    assert v["state"] == "removed" and "no page followed it" in v["reason"], v
    assert i["state"] == "removed" and "no page" in i["reason"], i
    assert v["frames_done"] < (v["frames_total"] or 10**9), "the video must have been stopped, not finished"


def test_delete_removes_files_now(serve, photo):
    srv = serve()
    c = Client(srv.url)
    _, job = c.upload(photo[0], "photo.jpg")
    c.wait(job["id"], _done)
    assert c.request("DELETE", f"/api/jobs/{job['id']}")[0] == 204
    assert not (srv.manager.root / job["id"]).exists()
    assert c.status(job["id"])["state"] == "removed"


def _stalled_upload(c: Client, name: str, size: int = 500 * 1024) -> socket.socket:
    """A raw client that sends the headers and 10 bytes of a ``size`` byte body, then waits."""
    sock = socket.create_connection((c.host, c.port), timeout=15)
    head = (
        f"POST /api/jobs?name={name} HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nX-Streamguard: 1\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"0123456789")
    return sock


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def _uploading(srv: Running) -> str:
    """The id of the one upload in progress, once its partial file is on disk."""
    root = srv.manager.root
    inputs = _wait_for(lambda: list(root.glob("*/input.*")), 10, "the upload")
    assert len(inputs) == 1
    return inputs[0].parent.name


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_stalled_upload_times_out_and_frees_its_slot(serve, photo):
    srv = serve(max_jobs=1, read_timeout=1.0)
    c = Client(srv.url)
    # Slow is not stalled: a byte every 0.4 s goes on past the 1 s timeout.
    conn = c.conn()
    conn.putrequest("POST", "/api/jobs?name=slow.jpg")
    conn.putheader("X-Streamguard", "1")
    conn.putheader("Content-Length", "6")
    conn.endheaders()
    for b in b"slow!!":
        time.sleep(0.4)
        conn.send(bytes([b]))
    r = conn.getresponse()
    slow = json.loads(r.read())
    conn.close()
    assert r.status == 201, slow
    assert c.request("DELETE", f"/api/jobs/{slow['id']}")[0] == 204
    _wait_for(lambda: not _job_dirs(srv), 10, "the slow upload's job to be deleted")

    sock = _stalled_upload(c, "stalled.mp4")
    try:
        job_id = _uploading(srv)
        assert c.status(job_id)["state"] == "uploading"
        t0 = time.monotonic()
        response = _read_response(sock)
        waited = time.monotonic() - t0
    finally:
        sock.close()
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert b"stalled.mp4: upload stalled: no data for 1 s" in response
    assert 0.5 < waited < 5, waited
    assert not (srv.manager.root / job_id).exists(), "the partial file must be deleted"
    status, job = c.upload(photo[0], "photo.jpg")
    assert status == 201, job


def test_delete_and_reaper_free_a_stalled_upload_at_once(serve, photo):
    srv = serve(max_jobs=1)
    c = Client(srv.url)
    sock = _stalled_upload(c, "stalled.mp4")
    try:
        job_id = _uploading(srv)
        assert c.request("DELETE", f"/api/jobs/{job_id}")[0] == 204
        # At once: no waiting for the client to send more or go away.
        assert not (srv.manager.root / job_id).exists(), "DELETE must delete the partial file now"
        assert c.status(job_id)["state"] == "removed"
        status, job = c.upload(photo[0], "photo.jpg")
        assert status == 201, job
        # The stalled client is told and its connection closed.
        assert _read_response(sock).startswith(b"HTTP/1.1 409 ")
    finally:
        sock.close()

    # Nobody asks about it for --keep seconds: the reaper frees it the same way.
    srv = serve(max_jobs=1, keep=1.0)
    c = Client(srv.url)
    sock = _stalled_upload(c, "stalled.mp4")
    try:
        job_id = _uploading(srv)
        _wait_for(lambda: not (srv.manager.root / job_id).exists(), 10, "the reaper to delete the upload")
        assert srv.manager.snapshot([job_id], touch=False)[0]["state"] == "removed"
        status, job = c.upload(photo[0], "photo.jpg")
        assert status == 201, job
    finally:
        sock.close()


def test_free_space_is_shared_by_parallel_and_chunked_uploads(serve, tmp_path, monkeypatch):
    import shutil

    from streamguard.web import limits as jobs

    # A small disk: the server's reserve and 5 MiB, less what the working folder holds.
    capacity = jobs._DISK_RESERVE + 5 * MiB
    real = shutil.disk_usage

    def small_disk(path: Any) -> Any:
        if not Path(path).is_relative_to(tmp_path):
            return real(path)
        used = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
        return real(path)._replace(total=capacity, used=used, free=capacity - used)

    monkeypatch.setattr(jobs.shutil, "disk_usage", small_disk)
    srv = serve(max_upload=8 * MiB)
    c = Client(srv.url)
    # 2 MiB on its way (and its result to come) take 4 of the 5 MiB, though only 10 bytes arrived yet.
    first = _stalled_upload(c, "first.mp4", size=2 * MiB)
    try:
        _uploading(srv)
        status, body = c.upload(b"\xff" * MiB, "second.jpg")
        assert status == 507 and "not enough free disk space" in body["error"], body

        def chunks() -> Iterator[bytes]:
            for _ in range(3):
                yield b"\xff" * (200 * 1024)

        status, body = c.json("POST", "/api/jobs?name=third.jpg", body=chunks())
        assert status == 507 and "not enough free disk space" in body["error"], body
        assert len(_job_dirs(srv)) == 1, "refused uploads leave no files"
    finally:
        first.close()
    # The stalled upload gone, its room is free again.
    _wait_for(lambda: not _job_dirs(srv), 10, "the abandoned upload to be deleted")
    status, body = c.upload(b"\xff" * MiB, "second.jpg")
    assert status == 201, body


def test_open_event_streams_are_bounded(serve):
    srv = serve(max_streams=2)
    c = Client(srv.url)
    unknown = "0123456789abcdef0123456789abcdef"
    opened = []
    try:
        for _ in range(2):
            conn = c.conn(timeout=10)
            conn.request("GET", f"/api/events?ids={unknown}")
            r = conn.getresponse()
            assert r.status == 200
            assert r.readline().startswith(b"retry:")
            opened.append(conn)
        status, body = _events_status(c, unknown)
        assert status == 429 and b"event streams" in body, body
        # A closed stream frees its place.
        opened.pop().close()
        _wait_for(lambda: _events_status(c, unknown)[0] == 200, 10, "a place for a new event stream")
    finally:
        for conn in opened:
            conn.close()


def _events_status(c: Client, job_id: str) -> tuple[int, bytes]:
    """The status of a new event stream, and the body of a refusal (a stream is not read)."""
    conn = c.conn(timeout=10)
    try:
        conn.request("GET", f"/api/events?ids={job_id}")
        r = conn.getresponse()
        return r.status, b"" if r.status == 200 else r.read()
    finally:
        conn.close()


def _serve_process(*args: str) -> tuple[subprocess.Popen, str]:
    """``streamguard serve --port 0 ARGS`` as a user starts it, and the URL it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "streamguard", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("streamguard: serving on http://127.0.0.1:"):
        proc.kill()
        proc.wait(timeout=20)
        raise AssertionError(line + proc.stderr.read())
    return proc, line.split()[3]


def test_serve_command_prints_url_and_cleans_up_on_sigterm(tmp_path, photo):
    """``streamguard serve`` as a user runs it: URL printed, answers, SIGTERM deletes everything."""
    proc, url = _serve_process("--workdir", str(tmp_path), "--detection", "fast",
                               "--allowed-host", "photos.example")
    try:
        c = Client(url)
        status, config = c.json("GET", "/api/config")
        assert status == 200 and config["defaults"]["detection"] == "fast"
        assert config["max_upload"] == 2 * 1024**3
        for name, expected in [("photos.example", 200), ("evil.example", 421)]:
            assert c.request("GET", "/api/health", headers={"Host": name})[0] == expected, name
        status, job = c.upload(photo[0], "photo.jpg")
        assert status == 201
        assert c.wait(job["id"], _done)["state"] == "done"
        assert len(list(tmp_path.iterdir())) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, proc.stderr.read()
    assert list(tmp_path.iterdir()) == [], "the working folder must be deleted on shutdown"


def test_bad_allowed_host_is_a_usage_error(capsys):
    from streamguard.web.server import main

    for bad in ("", "evil/x", "*.example"):
        with pytest.raises(SystemExit) as e:
            main(["--allowed-host", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--allowed-host" in err and "Traceback" not in err


def test_folders_left_by_a_killed_server_are_swept_at_start(serve, tmp_path, photo):
    proc, url = _serve_process("--workdir", str(tmp_path))
    try:
        status, job = Client(url).upload(photo[0], "photo.jpg")
        assert status == 201, job
    finally:
        proc.kill()  # SIGKILL: no clean-up of its own
        proc.wait(timeout=20)
        proc.stdout.close()
        proc.stderr.close()
    [killed] = tmp_path.iterdir()
    assert killed.name.startswith("streamguard-web-") and any(killed.rglob("input.jpg"))

    day_ago = time.time() - 25 * 3600
    recent = tmp_path / "streamguard-web-recent"  # perhaps another server's, running
    recent.mkdir()
    unrelated = tmp_path / "not-streamguard"
    unrelated.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("not ours to delete")
    link = tmp_path / "streamguard-web-link"
    link.symlink_to(target)
    others = [unrelated, target, link]
    if os.geteuid() == 0:  # only root can make a folder of another user's
        foreign = tmp_path / "streamguard-web-foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        others.append(foreign)
    for p in [killed, *others]:
        os.utime(p, (day_ago, day_ago), follow_symlinks=False)

    serve()
    assert not killed.exists(), "a day-old working folder of this user's must be swept at start"
    assert recent.exists() and all(p.exists() for p in others)
    assert (target / "keep.txt").read_text() == "not ours to delete"


def test_port_in_use_is_a_clean_error(serve):
    srv = serve()
    port = urllib.parse.urlsplit(srv.url).port
    proc = subprocess.run(
        [sys.executable, "-m", "streamguard", "serve", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"streamguard: error: cannot listen on 127.0.0.1:{port}:"), (
        proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1
