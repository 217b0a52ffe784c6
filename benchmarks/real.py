"""Recall and over-cover on real public photos and videos, against eye-checked ground truth (issue 17).

    python benchmarks/real.py fetch                      # materialize the media (also done by run)
    python benchmarks/real.py [run] [--with-deface] [-v] [--only ID,ID] [--photos-only|--videos-only]
                              [--out DIR] [-- STREAMGUARD ARGS...]
    python benchmarks/real.py selfcheck                  # the evaluator on known cases
    python benchmarks/real.py --turn 180 --videos-only   # every input's pixels turned clockwise first

Media: ``benchmarks/real/media.json`` lists every file (repository, commit, path, licence,
sha256). They are read out of git snapshots brought by the search tool's ``fetch`` verb into
``/work/.mirror`` (``$STREAMGUARD_MIRROR``) and written to ``<out>/media`` (git-ignored); a
missing snapshot is reported in one line and its files skipped. Nothing fetched is committed.
Ground truth: ``benchmarks/real/truth/<id>.json`` (face boxes, brow to chin, ear to ear, as
face-detection datasets box them; how each file was annotated is recorded in it).

Each tool runs on each file through its command line (streamguard: ``python -m streamguard``
with cwd and PYTHONPATH at this checkout, so the checkout's own code is measured; deface 1.5
at its defaults in its own venv, outputs cached by the input's sha256).

Evaluator (pixel-based, the same for any tool), per ground-truth face and frame:
    grey patch around the face box, band-passed: ``g - GaussianBlur(g, sigma)`` with
    ``sigma = max(1, face height / 8)`` (the scale of eyes, nostrils, mouth corners, what
    identity lives in), then cut to the face box shrunk by 20 % a side (eyes, nose,
    mouth; the rim mixes in background, hair and ears). ``r`` = correlation of the
    original's and the output's band-pass, ``e`` = std(output band-pass) / std(original
    band-pass). A face is EXPOSED when ``r >= EXPOSED_R`` and ``e >= EXPOSED_E``: its detail
    survived and still lines up with the original. See ``selfcheck`` for the calibration
    (untouched, JPEG and x264 crf 20 re-encodes, light blurs, lower half covered read exposed;
    streamguard's blur, pixelation and solid fill over the whole box, and eyes-nose-mouth
    blurred with the rim left, read covered).
``--turn DEG`` (90, 180, 270) turns each input's pixels clockwise before any tool sees it (a
camera held sideways or mounted upside down, with no rotation tag to undo it), and the ground
truth with it; the turned copies are written to ``<out>/turned`` (photos as PNG, videos as
x264 crf 10 without audio) and are the inputs both tools and the evaluator read.
``--light night|stage`` relights each input the same way (see :data:`LIGHTS`): footage shot in
poor or coloured light, which the detector sees darker and off-colour.
Over-cover: pixels whose grey value moved by more than ``CHANGED_GREY`` after a Gaussian
    (sigma ``CHANGED_SIGMA``) of both pictures, outside every ground-truth head (each face box,
    ignored ones too, grown to ``HEAD_W`` x ``HEAD_H`` its size, centre raised by ``HEAD_UP``
    of its height), as a multiple of the faces' own box area and as a share of the picture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.speed import deface_version, run_deface  # noqa: E402
from streamguard.types import Box  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REAL = HERE / "real"
MEDIA_LIST = REAL / "media.json"
TRUTH = REAL / "truth"
DEFAULT_OUT = HERE / "out" / "real"
MIRROR = Path(os.environ.get("STREAMGUARD_MIRROR", "/work/.mirror"))

# Face height buckets, px (the table).
BUCKETS: tuple[tuple[float, float, str], ...] = (
    (0, 16, "<16"), (16, 24, "16-24"), (24, 32, "24-32"), (32, 48, "32-48"), (48, 96, "48-96"),
    (96, math.inf, ">=96"),
)
# Exposed when both hold; calibrated by `selfcheck` on two real faces at 12-200 px:
#   must read exposed: JPEG q75 / x264 crf 20 and 28 re-encodes r >= 0.88, e >= 0.82; lower
#   half blurred (eyes left) r 0.75-0.79, e 0.76-0.80; sigma 1-2 px blur on 100-200 px faces
#   r >= 0.87, e >= 0.67;
#   must read covered: streamguard's blur r <= 0.22, e <= 0.11; its pixelation r <= 0.38,
#   e <= 0.57; its solid fill e = 0; eyes, nose and mouth blurred, rim left r <= 0.38, e <= 0.30.
# Both thresholds sit in the middle of the gap.
EXPOSED_R = 0.5
EXPOSED_E = 0.35
# Over-cover: "changed" grey difference after a light blur. Codec noise stays well under it:
# after the blur a JPEG q75 or x264 crf 20 re-encode of these media moves no pixel by more
# than 2-7 grey levels (selfcheck prints the largest), so nothing reads changed.
CHANGED_SIGMA = 2.0
CHANGED_GREY = 8.0
# A face box grown to its head (hair, ears, chin, some neck): what an anonymizer may change.
HEAD_W, HEAD_H, HEAD_UP = 1.6, 1.8, 0.15
# The band-pass is compared on the face box shrunk by this share of its size on every side:
# the central 60 % holds eyes, nose and mouth (what recognition needs); the rim (hairline, jaw,
# ears, background) left sharp around a covered centre does not make a face recognisable.
INNER_MARGIN = 0.2
EXPOSED_CROP_MIN = 16  # px: crops of exposed faces at least this tall are written for a person to look at


# ------------------------------------------------------------------ media


@dataclass(frozen=True)
class Media:
    id: str
    repo: str
    commit: str
    path: str
    licence: str
    sha256: str
    kind: str  # "photo" | "video"
    description: str
    convert: str = ""  # "gif->mp4": a GIF preview, re-encoded losslessly enough to be the input

    @property
    def suffix(self) -> str:
        return ".mp4" if self.convert == "gif->mp4" else Path(self.path).suffix.lower()


def load_media(path: Path = MEDIA_LIST) -> list[Media]:
    """The media of a list (default: the benchmark's own, media.json)."""
    return [Media(**m) for m in json.loads(path.read_text())["media"]]


def git_dir(repo: str) -> Path | None:
    """The snapshot's git directory under the mirror, as ``fetch`` lays it out (bare or not)."""
    base = MIRROR / repo.replace("/", "+") / "repo"
    for d in (base / ".git", base):
        if (d / "objects").is_dir():
            return d
    return None


def _gif_to_mp4(src: Path, dst: Path) -> None:
    # x264 at crf 10 from the GIF's palette frames: the mp4 *is* the benchmark input (both tools
    # and the evaluator read it), so its own loss does not bias anything; it only has to look
    # like the GIF. Frame rate kept, one output frame per GIF frame.
    _rewrite_mp4(src, dst)


#: ``--light``: how each input is relit (RGB), as footage shot in that light looks.
#: night: a tenth of the light (in linear light), under sodium street lamps' amber;
#: stage: coloured stage light, magenta-blue, at half the light.
LIGHTS: dict[str, tuple[float, tuple[float, float, float]]] = {
    "night": (0.1, (1.0, 0.7, 0.3)),
    "stage": (0.5, (0.85, 0.2, 1.0)),
}


def relight(rgb: np.ndarray, light: str | None) -> np.ndarray:
    """``rgb`` as it would look in ``light`` (see :data:`LIGHTS`; None: as it is)."""
    if light is None:
        return rgb
    gain, tint = LIGHTS[light]
    linear = (rgb.astype(np.float32) / 255) ** 2.2 * gain * np.array(tint, np.float32)
    return np.clip(linear ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)


def _rewrite_mp4(src: Path, dst: Path, turn: int = 0, light: str | None = None) -> None:
    """``src``'s frames as displayed, turned ``turn`` degrees clockwise and relit (``light``),
    into an x264 crf 10 mp4 (no audio): a new benchmark input, read alike by both tools and the
    evaluator."""
    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        rate = s.average_rate or Fraction(12)
        frames = [relight(np.rot90(_upright(f, "rgb24"), -turn // 90), light) for f in inp.decode(s)]
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        # One encoder thread: with libx264's threads two conversions of the same GIF differed
        # (walking2, headturn), and walking2's over-cover read 11x on one and 25x on the other.
        vs.options = {"crf": "10", "preset": "medium", "threads": "1"}
        for i, rgb in enumerate(frames):
            # To 4:2:0 with OpenCV: handing the encoder RGB frames (PyAV converts them) gave
            # different pixels run to run on the turned 480x270 clip, up to 17 grey levels apart.
            yuv = cv2.cvtColor(np.ascontiguousarray(rgb[: vs.height, : vs.width]), cv2.COLOR_RGB2YUV_I420)
            vf = av.VideoFrame.from_ndarray(yuv, "yuv420p")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode())


_MISSING: set[str] = set()  # repositories already reported missing (one line each)


#: Bumped whenever ``_rewrite_mp4`` makes different pixels, so converted media cached by an older
#: version are made again (2: OpenCV's 4:2:0 conversion; the first handed PyAV RGB frames, whose
#: pixels differed from run to run, so a cached clip and a fresh one were not the same input;
#: 3: one x264 thread, for the same reason).
CONVERSION = 3


def materialize(m: Media, media_dir: Path) -> Path | None:
    """The media file under ``media_dir``, read from its snapshot on first use; None if absent."""
    dst = media_dir / f"{m.id}{m.suffix}"
    stamp = dst.with_name(dst.name + ".sha256")
    want = f"{m.sha256} conversion {CONVERSION}" if m.convert else m.sha256
    if dst.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return dst
    gd = git_dir(m.repo)
    if gd is None:
        if m.repo not in _MISSING:
            _MISSING.add(m.repo)
            print(f"  snapshot of {m.repo} missing: bring it with the search tool's fetch verb "
                  f"(github:{m.repo}); its files are skipped")
        return None
    r = subprocess.run(["git", "--git-dir", str(gd), "show", f"{m.commit}:{m.path}"], capture_output=True)
    if r.returncode != 0:
        why = r.stderr.decode().strip()
        print(f"  {m.id}: {m.repo}@{m.commit[:10]}:{m.path} not in the snapshot ({why}); skipped")
        return None
    digest = hashlib.sha256(r.stdout).hexdigest()
    if digest != m.sha256:
        print(f"  {m.id}: sha256 mismatch ({digest[:12]} != {m.sha256[:12]}); skipped")
        return None
    media_dir.mkdir(parents=True, exist_ok=True)
    if m.convert == "gif->mp4":
        with tempfile.TemporaryDirectory() as tmp:
            gif = Path(tmp) / "in.gif"
            gif.write_bytes(r.stdout)
            _gif_to_mp4(gif, dst)
    else:
        dst.write_bytes(r.stdout)
    stamp.write_text(want)
    return dst


def turned_copy(m: Media, src: Path, turn: int, folder: Path, light: str | None = None) -> Path:
    """``src`` with its pixels turned ``turn`` degrees clockwise (``--turn``) and relit
    (``--light``), made once."""
    tag = f"turn{turn}" + (f".{light}" if light else "")
    dst = folder / f"{m.id}.{m.sha256[:12]}.{tag}{'.png' if m.kind == 'photo' else '.mp4'}"
    if dst.exists():
        return dst
    folder.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name("partial-" + dst.name)
    if m.kind == "photo":
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)  # as displayed: EXIF orientation applied
        rgb = relight(np.rot90(img, -turn // 90)[..., ::-1], light)
        cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1]))
    else:
        _rewrite_mp4(src, tmp, turn, light)
    tmp.replace(dst)
    return dst


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ ground truth


@dataclass(frozen=True)
class Face:
    box: Box
    tags: tuple[str, ...] = ()
    ignore: bool = False  # too small to matter (< ~8 px) or unsure: neither counted nor over-cover
    track: int | None = None

    @property
    def height(self) -> float:
        """The face's own height: its box's width for a face lying on its side."""
        return self.box.width if "sideways" in self.tags else self.box.height


def _box(v: list[float]) -> Box:
    return Box(float(v[0]), float(v[1]), float(v[2]), float(v[3]))


def turned_face(f: Face, turn: int, w: int, h: int) -> Face:
    """``f`` in its picture turned ``turn`` degrees clockwise: a quarter turn lays an upright face
    on its side (its height is then its box's width) and stands a lying one up."""
    tags = f.tags
    if turn % 180:
        tags = tuple(t for t in tags if t != "sideways") if "sideways" in tags else (*tags, "sideways")
    # Clockwise by ``turn`` is counter-clockwise (Box.rotated's way) by 360 - turn.
    return replace(f, box=f.box.rotated(360 - turn, w, h), tags=tags)


def load_truth(mid: str) -> dict:
    return json.loads((TRUTH / f"{mid}.json").read_text())


def photo_faces(truth: dict) -> list[Face]:
    return [Face(_box(f["box"]), tuple(f.get("tags", ())), bool(f.get("ignore", False)))
            for f in truth["faces"]]


def video_faces(truth: dict, n_frames: int) -> list[list[Face]]:
    """Per frame, every track's box: linear between consecutive keyframes; a ``null`` key
    ends a track's presence until its next key (left the picture, hidden)."""
    frames: list[list[Face]] = [[] for _ in range(n_frames)]
    for t in truth["tracks"]:
        keys = sorted((int(k), v) for k, v in t["keys"].items())
        tags, ignore = tuple(t.get("tags", ())), bool(t.get("ignore", False))
        extra = {int(k): tuple(v) for k, v in t.get("frame_tags", {}).items()}
        for (k0, b0), (k1, b1) in zip(keys, keys[1:] + [(k, None) for k, _ in keys[-1:]], strict=True):
            if b0 is None:
                continue
            end = k1 if (b1 is not None and k1 > k0) else k0 + 1
            for i in range(k0, min(end, n_frames)):
                a = (i - k0) / (k1 - k0) if b1 is not None and k1 > k0 else 0.0
                v = [b0[j] + a * (b1[j] - b0[j]) for j in range(4)] if b1 is not None else b0
                frames[i].append(Face(_box(v), tags + extra.get(i, ()), ignore, t["id"]))
    return frames


# ------------------------------------------------------------------ pictures


def read_photo(path: Path) -> np.ndarray:
    """Grey picture as displayed (cv2 applies the EXIF orientation)."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise RuntimeError(f"cannot read {path}")
    return img


def _upright(frame: av.VideoFrame, fmt: str = "gray") -> np.ndarray:
    g = frame.to_ndarray(format=fmt)
    rot = int(getattr(frame, "rotation", 0) or 0) % 360
    # PyAV's rotation is counter-clockwise degrees to apply for display.
    return np.ascontiguousarray(np.rot90(g, rot // 90)) if rot else g


def video_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield _upright(f)


def count_frames(path: Path) -> int:
    return sum(1 for _ in video_frames(path))


# ------------------------------------------------------------------ evaluator


def band_pass(gray: np.ndarray, box: Box, size: float | None = None) -> np.ndarray | None:
    """The face's detail: grey minus its Gaussian (sigma = height / 8), inside the box shrunk
    by INNER_MARGIN a side. Filtered on a patch reaching 3 sigma beyond the box, so the cut edge
    of the patch does not leak into it. None when the box is (nearly) outside the picture."""
    h, w = gray.shape[:2]
    sigma = max(1.0, (size or box.height) / 8)
    pad = 3 * sigma
    outer = Box(box.x1 - pad, box.y1 - pad, box.x2 + pad, box.y2 + pad).clipped(w, h)
    ox1, oy1, ox2, oy2 = outer.as_int()
    dx, dy = INNER_MARGIN * box.width, INNER_MARGIN * box.height
    ix1, iy1, ix2, iy2 = Box(box.x1 + dx, box.y1 + dy, box.x2 - dx, box.y2 - dy).clipped(w, h).as_int()
    if ix2 - ix1 < 2 or iy2 - iy1 < 2:
        return None
    g = gray[oy1:oy2, ox1:ox2].astype(np.float32)
    bp = g - cv2.GaussianBlur(g, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return bp[iy1 - oy1:iy2 - oy1, ix1 - ox1:ix2 - ox1]


def face_scores(orig: np.ndarray, out: np.ndarray, box: Box,
                size: float | None = None) -> tuple[float, float]:
    """(r, e): correlation of the band-passes and their std ratio output/original; ``size``:
    the face's own height when it is not the box's (a face lying on its side)."""
    a, b = band_pass(orig, box, size), band_pass(out, box, size)
    if a is None or b is None:
        return 0.0, 0.0
    a, b = a - a.mean(), b - b.mean()
    sa, sb = float(a.std()), float(b.std())
    if sa < 1e-6:
        return 0.0, 0.0  # a flat patch has no detail to expose
    r = float((a * b).mean() / (sa * sb)) if sb > 1e-6 else 0.0
    return r, sb / sa


def is_exposed(r: float, e: float) -> bool:
    return r >= EXPOSED_R and e >= EXPOSED_E


def head_of(face: Box) -> Box:
    cx, cy = face.center
    return Box.from_center(cx, cy - HEAD_UP * face.height, HEAD_W * face.width, HEAD_H * face.height)


def over_cover(orig: np.ndarray, out: np.ndarray, faces: list[Face],
               regions: Sequence[Box] = ()) -> tuple[int, int, int]:
    """(changed pixels outside all heads and ``regions``, face-box pixels, picture pixels).

    ``regions``: parts of the picture whose faces were not all boxed (a crowd in the stands),
    where a change may be a face covered rightly."""
    h, w = orig.shape[:2]
    a = cv2.GaussianBlur(orig.astype(np.float32), (0, 0), CHANGED_SIGMA)
    b = cv2.GaussianBlur(out.astype(np.float32), (0, 0), CHANGED_SIGMA)
    changed = np.abs(a - b) > CHANGED_GREY
    heads = np.zeros((h, w), bool)
    boxes = np.zeros((h, w), bool)
    for r in regions:
        x1, y1, x2, y2 = r.clipped(w, h).as_int()
        heads[y1:y2, x1:x2] = True
    for f in faces:
        x1, y1, x2, y2 = head_of(f.box).clipped(w, h).as_int()
        heads[y1:y2, x1:x2] = True
        x1, y1, x2, y2 = f.box.clipped(w, h).as_int()
        boxes[y1:y2, x1:x2] = True
    return int((changed & ~heads).sum()), int(boxes.sum()), h * w


@dataclass
class FaceResult:
    media: str
    frame: int
    index: int
    face: Face
    r: float
    e: float

    @property
    def exposed(self) -> bool:
        return is_exposed(self.r, self.e)


@dataclass
class FileResult:
    media: Media
    tool: str
    faces: list[FaceResult] = field(default_factory=list)
    changed_outside: int = 0
    face_area: int = 0
    picture_area: int = 0
    seconds: float = 0.0
    note: str = ""


def _fit(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # deface rounds video sizes up to a multiple of 16: scale back to compare pixel by pixel.
    if out.shape[:2] == shape[:2]:
        return out
    return cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def evaluate(m: Media, src: Path, out: Path, tool: str, turn: int = 0) -> FileResult:
    """``tool``'s output ``out`` of ``src`` against the ground truth; ``src`` turned ``turn``
    degrees clockwise from the listed media (see :func:`turned_copy`) turns the truth with it."""
    res = FileResult(m, tool)
    truth = load_truth(m.id)
    if m.kind == "photo":
        pairs: Iterator[tuple[np.ndarray, np.ndarray | None]] = iter([(read_photo(src), read_photo(out))])
        per_frame = [photo_faces(truth)]
    else:
        n = count_frames(src)
        per_frame = video_faces(truth, n)

        def gen() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
            outs = video_frames(out)
            for a in video_frames(src):
                yield a, next(outs, None)

        pairs = gen()
    regions = [_box(r) for r in truth.get("ignore_regions", [])]
    if turn:
        th, tw = (read_photo(src) if m.kind == "photo" else next(video_frames(src))).shape[:2]
        w, h = (th, tw) if turn % 180 else (tw, th)
        per_frame = [[turned_face(f, turn, w, h) for f in faces] for faces in per_frame]
        regions = [r.rotated(360 - turn, w, h) for r in regions]
    missing = 0
    for i, ((a, b), faces) in enumerate(zip(pairs, per_frame, strict=False)):
        if b is None:
            missing += 1  # a dropped frame exposes everything in it
            b = a
        b = _fit(b, a.shape)
        for j, f in enumerate(faces):
            if not f.ignore:
                r, e = face_scores(a, b, f.box, f.height)
                res.faces.append(FaceResult(m.id, i, j, f, r, e))
        c, fa, pa = over_cover(a, b, faces, regions)
        res.changed_outside += c
        res.face_area += fa
        res.picture_area += pa
    if missing:
        res.note = f"{missing} output frames missing"
    return res


# ------------------------------------------------------------------ tools


def run_streamguard(src: Path, dst: Path, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "streamguard", str(src), "-o", str(dst), "-q", "--overwrite", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0 or not dst.exists():
        raise RuntimeError(f"streamguard failed on {src.name} ({r.returncode}): {r.stderr[-1500:]}")
    return time.perf_counter() - t0


def run_deface_cached(src: Path, cache: Path) -> tuple[Path, float]:
    """deface at its defaults (``--keep-audio`` for videos, as speed.py runs it), keyed by the
    input's sha256: inputs do not change between runs, deface does not either."""
    cache.mkdir(parents=True, exist_ok=True)
    dst = cache / f"{file_sha256(src)[:16]}{src.suffix}"
    timing = dst.with_name(dst.name + ".seconds")
    if dst.exists() and timing.exists():
        return dst, float(timing.read_text())
    _, m = run_deface(src, dst, None)
    timing.write_text(f"{m.wall:.3f}")
    return dst, m.wall


# ------------------------------------------------------------------ report


def _bucket(h: float) -> str:
    return next(name for lo, hi, name in BUCKETS if lo <= h < hi)


def _tally(results: list[FileResult], kind: str | None) -> dict[str, list[int]]:
    t = {name: [0, 0] for *_, name in BUCKETS}
    t["all"] = [0, 0]
    for fr in results:
        if kind and fr.media.kind != kind:
            continue
        for f in fr.faces:
            for key in (_bucket(f.face.height), "all"):
                t[key][0] += f.exposed
                t[key][1] += 1
    return t


def _cover(results: list[FileResult], kind: str | None) -> tuple[float, float]:
    rs = [r for r in results if not kind or r.media.kind == kind]
    c, fa, pa = (sum(getattr(r, k) for r in rs) for k in ("changed_outside", "face_area", "picture_area"))
    return (c / fa if fa else 0.0), (100.0 * c / pa if pa else 0.0)


def report(by_tool: dict[str, list[FileResult]], out: Path, verbose: bool, header: str) -> str:
    tools = list(by_tool)
    lines = [header, ""]
    for kind, title in (("photo", "photos"), ("video", "videos (face-frames)"), (None, "all")):
        tallies = {t: _tally(by_tool[t], kind) for t in tools}
        if not any(v["all"][1] for v in tallies.values()):
            continue
        lines += [f"### exposed faces, {title}", "",
                  "| face height | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
        for key in [name for *_, name in BUCKETS] + ["all"]:
            cells = []
            for t in tools:
                x, n = tallies[t][key]
                cells.append(f"{x}/{n} ({100.0 * x / n:.1f} %)" if n else "-")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
    # By kind, for the detector work: which situations leak (faces of 16 px and more, where
    # size alone is no excuse; "plain" = no tag).
    tags = sorted({t for r in by_tool.values() for fr in r for f in fr.faces for t in f.face.tags}
                  | {"plain"})
    lines += ["### exposed faces >= 16 px by kind (photos and video face-frames)", "",
              "| kind | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for tag in tags:
        cells = []
        for t in tools:
            fs = [f for fr in by_tool[t] for f in fr.faces if f.face.height >= EXPOSED_CROP_MIN
                  and (tag in f.face.tags or (tag == "plain" and not f.face.tags))]
            x = sum(f.exposed for f in fs)
            cells.append(f"{x}/{len(fs)}" if fs else "-")
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += ["### over-cover (changed outside every ground-truth head)", "",
              "| | " + " | ".join(f"{t} x face area | {t} % picture" for t in tools) + " |",
              "|---|" + "---|---|" * len(tools)]
    for kind, title in (("photo", "photos"), ("video", "videos"), (None, "all")):
        cells = []
        for t in tools:
            x, p = _cover(by_tool[t], kind)
            cells += [f"{x:.2f}", f"{p:.2f}"]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "### seconds", "", "| | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for kind in ("photo", "video"):
        cells = [f"{sum(r.seconds for r in by_tool[t] if r.media.kind == kind):.1f}" for t in tools]
        lines.append(f"| {kind}s | " + " | ".join(cells) + " |")
    if verbose:
        lines += ["", "### per file", "",
                  "| file | faces | "
                  + " | ".join(f"{t} exposed | {t} >=32 | {t} cover x | {t} s" for t in tools) + " |",
                  "|---|---|" + "---|---|---|---|" * len(tools)]
        for i, fr0 in enumerate(by_tool[tools[0]]):
            cells = []
            for t in tools:
                fr = by_tool[t][i]
                big = sum(f.exposed for f in fr.faces if f.face.height >= 32)
                cover = fr.changed_outside / fr.face_area if fr.face_area else 0.0
                n = sum(f.exposed for f in fr.faces)
                cells += [str(n), str(big), f"{cover:.2f}", f"{fr.seconds:.1f}"]
            note = f" ({fr0.note})" if fr0.note else ""
            lines.append(f"| {fr0.media.id}{note} | {len(fr0.faces)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    data = {t: {"photo": _tally(r, "photo"), "video": _tally(r, "video"), "all": _tally(r, None),
                "over_cover": {k or "all": _cover(r, k) for k in ("photo", "video", None)},
                "files": [{"id": fr.media.id, "seconds": fr.seconds, "note": fr.note,
                           "changed_outside": fr.changed_outside, "face_area": fr.face_area,
                           "exposed": [{"frame": f.frame, "index": f.index, "box": list(f.face.box.as_int()),
                                        "tags": list(f.face.tags), "r": round(f.r, 3), "e": round(f.e, 3)}
                                       for f in fr.faces if f.exposed]} for fr in r]}
            for t, r in by_tool.items()}
    (out / "report.json").write_text(json.dumps(data, indent=1))
    return text


def write_exposed_crops(fr: FileResult, src: Path, dst: Path, folder: Path) -> None:
    """Original | output side by side, upscaled to 192 px tall, for every exposed face >= 16 px."""
    todo = [f for f in fr.faces if f.exposed and f.face.height >= EXPOSED_CROP_MIN]
    if not todo:
        return
    folder.mkdir(parents=True, exist_ok=True)
    frames = {f.frame for f in todo}
    if fr.media.kind == "photo":
        pics = {0: (cv2.imread(str(src)), cv2.imread(str(dst)))}
    else:
        pics = {}
        with av.open(str(src)) as a, av.open(str(dst)) as b:
            for i, (fa, fb) in enumerate(zip(a.decode(video=0), b.decode(video=0), strict=False)):
                if i in frames:
                    pics[i] = (fa.to_ndarray(format="bgr24"), fb.to_ndarray(format="bgr24"))
    for f in todo:
        if f.frame not in pics:
            continue
        a, b = pics[f.frame]
        b = _fit(b, a.shape)
        h, w = a.shape[:2]
        x1, y1, x2, y2 = head_of(f.face.box).clipped(w, h).as_int()
        s = 192 / max(1, y2 - y1)
        ca = cv2.resize(a[y1:y2, x1:x2], None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
        cb = cv2.resize(b[y1:y2, x1:x2], None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
        tags = "-".join(f.face.tags) or "plain"
        name = (f"{fr.media.id}_f{f.frame:04d}_{f.index:03d}_{int(f.face.height)}px_{tags}"
                f"_r{f.r:.2f}_e{f.e:.2f}.png")
        cv2.imwrite(str(folder / name), np.hstack([ca, np.full((ca.shape[0], 4, 3), 255, np.uint8), cb]))


# ------------------------------------------------------------------ commands


def select(media: list[Media], a: argparse.Namespace) -> list[Media]:
    only = set(a.only.split(",")) if a.only else None
    out = [m for m in media if (only is None or m.id in only)
           and not (a.photos_only and m.kind != "photo") and not (a.videos_only and m.kind != "video")]
    if only and (unknown := only - {m.id for m in media}):
        sys.exit(f"unknown media: {', '.join(sorted(unknown))}")
    return out


#: Where the media are read out of their snapshots, whatever ``--out`` says: one copy for every
#: run on a machine. A GIF's conversion can still differ between processes (2026-12-07: walking2's
#: mp4 came out five ways in ten runs with their own ``--out``, and its over-cover read 34-54x on
#: the same code, while streamguard's own output for one input was the same byte for byte every
#: time; the cause was not found), so runs to be compared must read the same converted input.
MEDIA = DEFAULT_OUT / "media"


def cmd_fetch(a: argparse.Namespace) -> list[tuple[Media, Path]]:
    got = []
    for m in select(load_media(), a):
        p = materialize(m, MEDIA)
        if p is not None:
            got.append((m, p))
    print(f"{len(got)} media files in {MEDIA}")
    return got


def cmd_run(a: argparse.Namespace) -> None:
    files = [(m, p) for m, p in cmd_fetch(a) if (TRUTH / f"{m.id}.json").exists()]
    tools = ["streamguard"] + (["deface"] if a.with_deface else [])
    by_tool: dict[str, list[FileResult]] = {t: [] for t in tools}
    shutil.rmtree(a.out / "exposed", ignore_errors=True)
    for m, src in files:
        if a.turn or a.light:
            src = turned_copy(m, src, a.turn, a.out / "turned", a.light)
        for t in tools:
            if t == "streamguard":
                dst = a.out / "streamguard" / f"{m.id}{src.suffix}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                secs = run_streamguard(src, dst, a.streamguard_args)
            else:
                dst, secs = run_deface_cached(src, a.out / "deface-cache")
            fr = evaluate(m, src, dst, t, a.turn)
            fr.seconds = secs
            by_tool[t].append(fr)
            write_exposed_crops(fr, src, dst, a.out / "exposed" / t)
            x = sum(f.exposed for f in fr.faces)
            print(f"  {m.id:12s} {t:11s} exposed {x:4d}/{len(fr.faces):<5d} {secs:6.1f} s {fr.note}",
                  flush=True)
    sg = " ".join(a.streamguard_args) or "(defaults)"
    header = (f"## real-footage benchmark: {sum(1 for m, _ in files if m.kind == 'photo')} photos, "
              f"{sum(1 for m, _ in files if m.kind == 'video')} videos"
              + (f", pixels turned {a.turn} degrees clockwise" if a.turn else "") + "\n\n"
              f"streamguard {sg} at {_git_head()}"
              + (f"; deface {deface_version()} defaults" if a.with_deface else "")
              + f"\n\nexposed: band-pass r >= {EXPOSED_R} and e >= {EXPOSED_E}; over-cover: grey change > "
              f"{CHANGED_GREY} after sigma {CHANGED_SIGMA} outside heads {HEAD_W}x{HEAD_H} (up {HEAD_UP})")
    print()
    print(report(by_tool, a.out, a.verbose, header))
    print(f"written: {a.out / 'report.md'}, {a.out / 'report.json'}, "
          f"crops of exposed faces in {a.out / 'exposed'}")


def _git_head() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                       capture_output=True, text=True)
    return r.stdout.strip()[:72] or "?"


# ------------------------------------------------------------------ selfcheck


def _x264_roundtrip(rgb: np.ndarray, crf: int) -> np.ndarray:
    """The picture after an x264 encode at ``crf`` (veryfast, as streamguard writes), 3 frames."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "c.mp4"
        h, w = rgb.shape[:2]
        with av.open(str(p), "w") as out:
            vs = out.add_stream("libx264", rate=25)
            vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            vs.options = {"crf": str(crf), "preset": "veryfast"}
            for i in range(3):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: vs.height, : vs.width]), "rgb24")
                vf.pts = i
                out.mux(vs.encode(vf))
            out.mux(vs.encode())
        with av.open(str(p)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    o = rgb.copy()
    o[: frames[1].shape[0], : frames[1].shape[1]] = frames[1]  # a P-frame, as most of a video is
    return o


def _jpeg(rgb: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def cmd_selfcheck(a: argparse.Namespace) -> None:
    """The evaluator on real faces (matplotlib's grace_hopper, skimage's astronaut) scaled to
    several heights, for cases with a known answer; exits 1 if any reads wrong."""
    from streamguard import synth
    from streamguard.anonymize import cover_faces
    from streamguard.config import AnonymizeConfig

    def blur_part(img: np.ndarray, box: Box, sigma: float) -> np.ndarray:
        o = img.copy()
        x1, y1, x2, y2 = box.as_int()
        o[y1:y2, x1:x2] = cv2.GaussianBlur(o[y1:y2, x1:x2], (0, 0), sigma)
        return o

    def covered(img: np.ndarray, box: Box, mode: str) -> np.ndarray:
        o = img.copy()
        cover_faces(o, [box], AnonymizeConfig(mode=mode))  # type: ignore[arg-type]
        return o

    def lower_half(img: np.ndarray, box: Box) -> np.ndarray:
        # Mouth and chin blurred hard (streamguard's blur over a box on the lower half only), eyes left.
        o = img.copy()
        half = Box(box.x1, box.center[1], box.x2, box.y2 + 0.1 * box.height)
        x1, y1, x2, y2 = half.as_int()
        o[y1:y2, x1:x2] = cv2.GaussianBlur(o[y1:y2, x1:x2], (0, 0), max(2.0, box.height / 6))
        return o

    def features(img: np.ndarray, box: Box) -> np.ndarray:
        # Eyes, nose and mouth (the central 70 % of the box) blurred hard, rim left sharp.
        o = img.copy()
        x1, y1, x2, y2 = Box.from_center(*box.center, 0.7 * box.width, 0.7 * box.height).as_int()
        o[y1:y2, x1:x2] = cv2.GaussianBlur(o[y1:y2, x1:x2], (0, 0), max(2.0, box.height / 6))
        return o

    cases: list[tuple[str, bool, object, tuple[float, ...]]] = [
        ("untouched", True, lambda i, b: i.copy(), ()),
        ("jpeg q75", True, lambda i, b: _jpeg(i, 75), ()),
        ("x264 crf 20", True, lambda i, b: _x264_roundtrip(i, 20), ()),
        ("x264 crf 28", True, lambda i, b: _x264_roundtrip(i, 28), ()),
        ("lower half blurred", True, lower_half, (24, 48, 100, 200)),
        ("features blurred", False, features, (24, 48, 100, 200)),
        ("blur sigma 1 px", True, lambda i, b: blur_part(i, b.grown(0.3), 1.0), (100, 200)),
        ("blur sigma 2 px", True, lambda i, b: blur_part(i, b.grown(0.3), 2.0), (100, 200)),
        ("streamguard blur", False, lambda i, b: covered(i, b, "blur"), ()),
        ("streamguard pixelate", False, lambda i, b: covered(i, b, "pixelate"), ()),
        ("streamguard solid", False, lambda i, b: covered(i, b, "solid"), ()),
        ("blur sigma h/5", False, lambda i, b: blur_part(i, b.grown(0.3), b.height / 5), ()),
    ]
    heights = (12, 16, 24, 48, 100, 200)
    sprites = synth.load_faces()
    wrong = 0
    print(f"exposed = r >= {EXPOSED_R} and e >= {EXPOSED_E}; cells: r/e per face height (px), "
          f"{', '.join(s.name for s in sprites)}")
    print(f"{'case':22s} {'want':8s} " + " ".join(f"{h:>15d}" for h in heights))
    for name, want, fn, only in cases:
        row = []
        for h in heights:
            if only and h not in only:
                row.append(f"{'':>15s}")
                continue
            cell = []
            for s in sprites:
                k = h / s.face.height
                interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
                img = cv2.resize(s.rgb, None, fx=k, fy=k, interpolation=interp)
                box = Box(s.face.x1 * k, s.face.y1 * k, s.face.x2 * k, s.face.y2 * k)
                out = fn(img, box)  # type: ignore[operator]
                g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                r, e = face_scores(g, cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), box)
                ok = is_exposed(r, e) == want
                wrong += not ok
                cell.append(f"{r:.2f}/{e:.2f}{'' if ok else '!'}")
            row.append(f"{' '.join(cell):>15s}")
        print(f"{name:22s} {'exposed' if want else 'covered':8s} " + " ".join(row))
    # Over-cover's change threshold against codec noise: real photos and clips re-encoded.
    print("\nover-cover of a plain re-encode (changed % of picture, should be ~0):")
    for m, src in cmd_fetch(a):
        if m.kind == "photo":
            g = read_photo(src)
            rgb = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
            outs = {"jpeg q75": cv2.cvtColor(_jpeg(rgb, 75), cv2.COLOR_RGB2GRAY)}
            pairs = {k: [(g, v)] for k, v in outs.items()}
        else:
            with av.open(str(src)) as c:
                frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][:10]
            def grey(rgb: np.ndarray) -> np.ndarray:
                return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

            pairs = {"x264 crf 20": [(grey(f), grey(_x264_roundtrip(f, 20))) for f in frames]}
        for k, ps in pairs.items():
            c = sum(over_cover(x, y, [])[0] for x, y in ps)
            n = sum(x.size for x, _ in ps)
            top = max(float(np.abs(cv2.GaussianBlur(x.astype(np.float32), (0, 0), CHANGED_SIGMA)
                                   - cv2.GaussianBlur(y.astype(np.float32), (0, 0), CHANGED_SIGMA)).max())
                      for x, y in ps)
            print(f"  {m.id:12s} {k:12s} {100.0 * c / n:.3f} % changed, largest difference {top:.1f}")
    # What over-cover a perfect detector would leave: streamguard's default cover (its head
    # ellipse and feather) put on exactly the ground-truth faces of each photo.
    print("\nover-cover of streamguard's default cover on exactly the ground-truth faces (x face area):")
    for m, src in cmd_fetch(a):
        if m.kind != "photo" or not (TRUTH / f"{m.id}.json").exists():
            continue
        truth = load_truth(m.id)
        faces = photo_faces(truth)
        rgb = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
        out = rgb.copy()
        cover_faces(out, [f.box for f in faces], AnonymizeConfig())
        c, fa, _ = over_cover(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(out, cv2.COLOR_RGB2GRAY),
                              faces, [_box(r) for r in truth.get("ignore_regions", [])])
        print(f"  {m.id:12s} {c / fa:.2f}")
    print("\nall cases read as expected" if not wrong else f"\n{wrong} cases read wrong (marked !)")
    sys.exit(1 if wrong else 0)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\nMedia:")[0],
                                epilog="Arguments after -- go to streamguard (e.g. -- --detection fast).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "fetch", "selfcheck"])
    p.add_argument("--only", help="comma-separated media ids")
    p.add_argument("--photos-only", action="store_true")
    p.add_argument("--videos-only", action="store_true")
    p.add_argument("--with-deface", action="store_true", help="also run deface (defaults) in its own venv")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("-v", "--verbose", action="store_true", help="per-file rows")
    p.add_argument("--turn", type=int, choices=(0, 90, 180, 270), default=0,
                   help="turn every input's pixels this many degrees clockwise first (no rotation tag)")
    p.add_argument("--light", choices=sorted(LIGHTS),
                   help="relight every input first: dim amber night light or coloured stage light")
    a = p.parse_args(argv)
    a.streamguard_args = passthrough
    {"run": cmd_run, "fetch": cmd_fetch, "selfcheck": cmd_selfcheck}[a.command](a)


if __name__ == "__main__":
    main()
