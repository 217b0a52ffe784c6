"""Labelled test media built from public-domain real faces shipped in pip packages.

Faces are cut from matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut()``
(both public domain), pasted onto a deterministic cluttered background at known boxes,
and written as still frames or as clips with audio. Tests, benchmarks and
``sample_media/generate.py`` use this to get media whose face boxes are known exactly.

A *face box* here means what MediaPipe BlazeFace returns: forehead to chin, roughly
cheek to cheek. Boxes are in pixels, ``x2``/``y2`` exclusive, in stored orientation.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamguard.types import Box

__all__ = [
    "FaceSprite", "FaceTrack", "GTFrame", "GroundTruth", "Scene",
    "background", "load_faces", "paste_face", "render", "soft_part_scene", "write_clip", "write_still",
]

# Face boxes (x, y, w, h) in the full-resolution source photos, measured once with
# mediapipe 0.10.21 ``solutions.face_detection.FaceDetection(model_selection=1)`` (its
# full-range graph, which keeps its own 0.6 cut-off whatever ``min_detection_confidence``
# says): relative_bounding_box times image width/height.
GRACE_HOPPER_FACE = (165.854, 128.387, 200.405, 200.371)  # 512x600 photo, score 0.87
ASTRONAUT_FACE = (173.659, 67.776, 103.929, 103.926)  # 512x512 photo, score 0.91

AUDIO_RATE = 48_000
# Irregular frame durations for ``vfr=True``, in quarter-frame ticks (mean: one frame).
_VFR_TICKS = (4, 2, 6, 4, 3, 8, 5, 4, 1, 3)
_MUX_OPTIONS = {".mp4": {"movflags": "+faststart"}, ".mov": {"movflags": "+faststart"}, ".mkv": {}}


@dataclass(frozen=True, slots=True, eq=False)
class FaceSprite:
    """A head with some context: ``rgb`` (H x W x 3 uint8), feathered elliptical ``alpha``
    (H x W float32 in 0..1) and the ground-truth ``face`` box in crop coordinates."""

    name: str
    rgb: np.ndarray
    alpha: np.ndarray
    face: Box


def _cut_sprite(name: str, photo: np.ndarray, face_xywh: tuple[float, float, float, float]) -> FaceSprite:
    fx, fy, fw, fh = face_xywh
    cx, cy = fx + fw / 2, fy + fh / 2
    h, w = photo.shape[:2]
    # More room above the face than below so hair and hats come along.
    x1, x2 = max(0, math.floor(cx - fw)), min(w, math.ceil(cx + fw))
    y1, y2 = max(0, math.floor(cy - 1.15 * fh)), min(h, math.ceil(cy + 0.95 * fh))
    rgb = np.ascontiguousarray(photo[y1:y2, x1:x2, :3])
    ch, cw = rgb.shape[:2]
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    r = np.hypot((xx + 0.5 - cw / 2) / (cw / 2), (yy + 0.5 - ch / 2) / (ch / 2))
    # Opaque inside r=0.7, smoothstep to 0 at the crop edge so pasting leaves no seams.
    t = np.clip((r - 0.7) / 0.3, 0.0, 1.0)
    alpha = (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)
    rgb.setflags(write=False)
    alpha.setflags(write=False)
    return FaceSprite(name, rgb, alpha, Box.from_xywh(fx - x1, fy - y1, fw, fh))


@functools.lru_cache(maxsize=1)
def _faces() -> tuple[FaceSprite, ...]:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        sprites = [_cut_sprite("grace_hopper", np.asarray(im.convert("RGB")), GRACE_HOPPER_FACE)]
    try:
        import skimage.data
    except ImportError:  # scikit-image is optional: one face is still enough for most tests
        return tuple(sprites)
    sprites.append(_cut_sprite("astronaut", skimage.data.astronaut(), ASTRONAUT_FACE))
    return tuple(sprites)


def load_faces() -> list[FaceSprite]:
    """The available face sprites: grace_hopper, then astronaut if scikit-image is installed."""
    return list(_faces())


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Build the picture at quarter resolution and upscale: fast at 4K, and looks like a soft backdrop.
    sw, sh = max(16, -(-width // 4)), max(16, -(-height // 4))
    blobs = rng.uniform(30, 220, (4, 6, 3)).astype(np.float32)
    blobs = 0.4 * blobs.mean(axis=2, keepdims=True) + 0.6 * blobs  # muted, like real rooms
    img = cv2.resize(blobs, (sw, sh), interpolation=cv2.INTER_CUBIC)
    tex = rng.normal(0, 20, (max(2, sh // 8), max(2, sw // 8))).astype(np.float32)
    img += cv2.resize(tex, (sw, sh), interpolation=cv2.INTER_CUBIC)[..., None]
    tint = rng.uniform(-1, 1, 3).astype(np.float32)
    img += np.linspace(-30, 30, sw, dtype=np.float32)[None, :, None] * tint
    # Blur hides the blocky look of the upscaled texture.
    img = np.clip(cv2.GaussianBlur(img, (0, 0), 1.5), 0, 255).astype(np.uint8)
    unit = max(1, sw // 160)
    for _ in range(int(rng.integers(20, 32))):
        kind = int(rng.integers(0, 5))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p1 = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        p2 = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        thick = -1 if rng.random() < 0.5 else int(rng.integers(1, 4)) * unit
        if kind == 0:
            cv2.rectangle(img, p1, p2, colour, thick)
        elif kind == 1:
            cv2.circle(img, p1, int(rng.integers(2, max(3, sh // 6))), colour, thick)
        elif kind == 2:
            cv2.line(img, p1, p2, colour, int(rng.integers(1, 4)) * unit, cv2.LINE_AA)
        elif kind == 3:
            pts = rng.integers(0, [sw, sh], (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.polylines(img, [pts], True, colour, unit, cv2.LINE_AA)
        else:
            word = "".join(chr(c) for c in rng.integers(65, 91, int(rng.integers(3, 8))))
            cv2.putText(img, word, p1, cv2.FONT_HERSHEY_SIMPLEX, 0.3 * unit, colour, unit, cv2.LINE_AA)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    # Fine grain from a tiled patch: per-pixel noise for a whole 4K frame would cost ~0.3 s.
    tile = rng.integers(-6, 7, (128, 128, 3)).astype(np.int16)
    grain = np.tile(tile, (-(-height // 128), -(-width // 128), 1))[:height, :width]
    out = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def background(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic textured, cluttered RGB background (H x W x 3 uint8, a fresh copy)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"background size must be positive, got {width}x{height}")
    return _background(width, height, seed).copy()


def soft_part_scene(width: int, height: int, size: int, sigma: float, light: float,
                    seed: int) -> tuple[np.ndarray, Box]:
    """A sharp scene with a sharp subject (a face a third of the picture's height) and, behind it,
    a face of ``size`` px out of focus (the picture round it blurred by a Gaussian of ``sigma``
    px) and darkened to ``light`` of its brightness: a stage's or a room's back, where the held-out
    real footage left a dark 55 px face exposed. Returns the picture and that face's box."""
    sprites = load_faces()
    image = background(width, height, seed)
    image = cv2.addWeighted(image, 2.0, cv2.GaussianBlur(image, (0, 0), 1.0), -1.0, 0.0)  # crisp
    side = height * 0.35
    paste_face(image, sprites[0], Box.from_xywh(width * 0.55, height * 0.2, side, side))
    soft = image.copy()
    where = Box.from_xywh(width * 0.15, height * 0.3, size, size)
    face = paste_face(soft, sprites[seed % len(sprites)], where)
    x1, y1, x2, y2 = (int(round(v)) for v in (face.x1 - size, face.y1 - size, face.x2 + size, face.y2 + size))
    shade = cv2.GaussianBlur(soft[y1:y2, x1:x2].astype(np.float32), (0, 0), sigma) * light
    image[y1:y2, x1:x2] = np.clip(shade, 0, 255).astype(np.uint8)
    return image, face


def _round_box(b: Box) -> Box:
    # Rounded to 1/1000 px so ground truth is stable across platforms and JSON stays small.
    return Box(round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3))


def paste_face(image: np.ndarray, sprite: FaceSprite, face_box: Box, *, angle: float = 0.0,
               brightness: float = 1.0, defocus: float = 0.0) -> Box:
    """Paste ``sprite`` into ``image`` (in place) so its face box lands on ``face_box``.

    ``angle`` rotates counter-clockwise (as displayed) about the face centre; ``brightness``
    scales the sprite's colours; ``defocus`` blurs the face with a Gaussian of that sigma, as a
    fraction of the face's height (an out-of-focus background face: 0.04 smears its eyes).
    Returns the ground-truth face box clipped to the image (the bounding box of the rotated face
    box); it is empty if the face is off-frame.
    """
    if face_box.is_empty():
        raise ValueError(f"face_box must have positive size, got {face_box!r}")
    ih, iw = image.shape[:2]
    fb = sprite.face
    sx, sy = face_box.width / fb.width, face_box.height / fb.height
    h, w = sprite.rgb.shape[:2]
    rw, rh = max(1, round(w * sx)), max(1, round(h * sy))
    interp = cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR
    rgb = cv2.resize(sprite.rgb, (rw, rh), interpolation=interp)
    if defocus > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), defocus * face_box.height)
    alpha = cv2.resize(sprite.alpha, (rw, rh), interpolation=interp)
    # The resize lands on whole pixels; the warp below adds the residual scale and sub-pixel
    # shift so the face box lands exactly. All maps here are in pixel-edge coordinates.
    lin = np.diag([sx * w / rw, sy * h / rh])
    shift = np.array([face_box.x1 - fb.x1 * sx, face_box.y1 - fb.y1 * sy])
    rot = cv2.getRotationMatrix2D(face_box.center, angle, 1.0)
    m_lin, m_t = rot[:, :2] @ lin, rot[:, :2] @ shift + rot[:, 2]

    def to_frame(pts: np.ndarray, a: np.ndarray = m_lin, t: np.ndarray = m_t) -> np.ndarray:
        return pts @ a.T + t

    corners = to_frame(np.array([[0, 0], [rw, 0], [0, rh], [rw, rh]], dtype=np.float64))
    x0, y0 = max(0, math.floor(corners[:, 0].min())), max(0, math.floor(corners[:, 1].min()))
    x1, y1 = min(iw, math.ceil(corners[:, 0].max())), min(ih, math.ceil(corners[:, 1].max()))
    if x1 > x0 and y1 > y0:
        # warpAffine indexes pixel centres (edge coordinate - 0.5) and writes into the ROI only.
        m = np.hstack([m_lin, (m_lin @ [0.5, 0.5] + m_t - 0.5 - [x0, y0])[:, None]])
        size = (x1 - x0, y1 - y0)
        src = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32)
        a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
        roi = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = np.clip(roi + (src * brightness - roi) * a + 0.5, 0, 255).astype(np.uint8)
    fc = np.array([[face_box.x1, face_box.y1], [face_box.x2, face_box.y1],
                   [face_box.x1, face_box.y2], [face_box.x2, face_box.y2]])
    fc = fc @ rot[:, :2].T + rot[:, 2]
    gt = Box(fc[:, 0].min(), fc[:, 1].min(), fc[:, 0].max(), fc[:, 1].max())
    return gt.clipped(iw, ih)


@dataclass(frozen=True, slots=True)
class FaceTrack:
    """One face moving through a scene, visible for ``start <= t < end`` (seconds).

    ``path`` keyframes are ``(t, cx, cy, face_height)`` and ``rotation`` keyframes
    ``(t, degrees counter-clockwise)``; both are linearly interpolated and held at the ends.
    """

    sprite: int
    start: float
    end: float
    path: tuple[tuple[float, float, float, float], ...]
    rotation: tuple[tuple[float, float], ...] = ()
    brightness: float = 1.0
    #: Gaussian blur as a fraction of the face's height (see :func:`paste_face`).
    defocus: float = 0.0

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("FaceTrack.path needs at least one keyframe")

    def state(self, t: float) -> tuple[float, float, float, float] | None:
        """``(cx, cy, face_height, angle)`` at time ``t``, or None when not on screen."""
        if not self.start <= t < self.end:
            return None
        k = np.asarray(self.path, dtype=np.float64)
        cx, cy, fh = (float(np.interp(t, k[:, 0], k[:, i])) for i in (1, 2, 3))
        angle = 0.0
        if self.rotation:
            r = np.asarray(self.rotation, dtype=np.float64)
            angle = float(np.interp(t, r[:, 0], r[:, 1]))
        return cx, cy, fh, angle


@dataclass(frozen=True, slots=True)
class Scene:
    """A clip to render: faces over a background that switches to ``seed + k`` after the k-th cut."""

    width: int
    height: int
    fps: float
    duration: float
    faces: tuple[FaceTrack, ...] = ()
    seed: int = 0
    cuts: tuple[float, ...] = ()
    #: Camera pan in pixels per second: the background slides left by this much (a moving camera,
    #: where every part of the picture changes on every frame).
    pan: float = 0.0

    @property
    def frame_count(self) -> int:
        return round(self.duration * self.fps)

    def background_seed(self, t: float) -> int:
        return self.seed + sum(1 for c in self.cuts if c <= t)


def render(scene: Scene, frame_index: int, *, time: float | None = None) -> tuple[np.ndarray, list[Box]]:
    """The RGB frame at ``frame_index`` (or at ``time`` seconds if given) and its visible GT face boxes."""
    t = frame_index / scene.fps if time is None else time
    if scene.pan:
        travel = math.ceil(abs(scene.pan) * scene.duration) + 1
        wide = _background(scene.width + travel, scene.height, scene.background_seed(t))
        x = min(travel, round(scene.pan * t)) if scene.pan > 0 else max(0, travel + round(scene.pan * t))
        image = np.ascontiguousarray(wide[:, x:x + scene.width])
    else:
        image = background(scene.width, scene.height, scene.background_seed(t))
    sprites = _faces()
    boxes: list[Box] = []
    for track in scene.faces:
        st = track.state(t)
        if st is None:
            continue
        cx, cy, fh, angle = st
        sprite = sprites[track.sprite % len(sprites)]  # wraps when scikit-image is missing
        fw = fh * sprite.face.width / sprite.face.height
        gt = paste_face(image, sprite, Box.from_center(cx, cy, fw, fh), angle=angle,
                        brightness=track.brightness, defocus=track.defocus)
        if not gt.is_empty():
            boxes.append(_round_box(gt))
    return image, boxes


@dataclass(frozen=True, slots=True)
class GTFrame:
    """Ground truth for one frame: ``pts`` in the stream time base as muxed, ``time`` in seconds."""

    index: int
    pts: int | None
    time: float
    boxes: tuple[Box, ...]


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Per-frame GT face boxes of a written clip. ``rotation`` is the display rotation that was
    set; boxes stay in stored (encoded) orientation."""

    width: int
    height: int
    fps: float
    frames: tuple[GTFrame, ...]
    time_base: Fraction | None = None
    rotation: int = 0

    def to_json(self, path: str | Path) -> None:
        data = {
            "width": self.width, "height": self.height, "fps": self.fps,
            "time_base": None if self.time_base is None else str(self.time_base),
            "rotation": self.rotation,
            "frames": [{"index": f.index, "pts": f.pts, "time": f.time,
                        "boxes": [[b.x1, b.y1, b.x2, b.y2] for b in f.boxes]} for f in self.frames],
        }
        Path(path).write_text(json.dumps(data, separators=(",", ":")) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> GroundTruth:
        data = json.loads(Path(path).read_text())
        frames = tuple(GTFrame(f["index"], f.get("pts"), f["time"], tuple(Box(*b) for b in f["boxes"]))
                       for f in data["frames"])
        tb = data.get("time_base")
        return cls(data["width"], data["height"], data["fps"], frames,
                   None if tb is None else Fraction(tb), data.get("rotation", 0))


def _audio(start: int, count: int, total: int) -> np.ndarray:
    """Planar stereo float32 samples ``start:start+count`` of a ``total``-sample signal:
    left a 440 Hz tone with a slow tremolo, right a 220-1760 Hz linear chirp."""
    t = np.arange(start, start + count, dtype=np.float64) / AUDIO_RATE
    span = max(total / AUDIO_RATE, 1e-6)
    left = 0.2 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    right = 0.2 * np.sin(2 * np.pi * (220 * t + (1760 - 220) * t * t / (2 * span)))
    return np.ascontiguousarray(np.stack([left, right]).astype(np.float32))


def write_clip(path: str | Path, scene: Scene, *, audio: bool = True, crf: int = 23, rotation: int = 0,
               vfr: bool = False, codec: str = "libx264") -> GroundTruth:
    """Encode ``scene`` to ``path`` (.mp4, .mov or .mkv) with PyAV and return its ground truth.

    Video is yuv420p with a keyframe every 2 s; audio is AAC stereo 48 kHz. ``rotation`` sets
    the display matrix (counter-clockwise degrees). ``vfr`` gives irregular, deterministic
    frame durations. GT pts are read back from the written file, so they match what was muxed.
    """
    path = Path(path)
    if path.suffix.lower() not in _MUX_OPTIONS:
        raise ValueError(f"{path}: unsupported container {path.suffix!r}; use one of {sorted(_MUX_OPTIONS)}")
    rate = Fraction(scene.fps).limit_denominator(1001)
    tb = 1 / (rate * 4) if vfr else 1 / rate
    if vfr:
        pts_list, p = [], 0
        while p * tb < scene.duration:
            pts_list.append(p)
            p += _VFR_TICKS[(len(pts_list) - 1) % len(_VFR_TICKS)]
        end = p * tb
    else:
        pts_list = list(range(scene.frame_count))
        end = len(pts_list) * tb
    total_samples = round(end * AUDIO_RATE)
    boxes: list[tuple[Box, ...]] = []
    with av.open(str(path), "w", options=_MUX_OPTIONS[path.suffix.lower()]) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = scene.width, scene.height, "yuv420p"
        vs.time_base = vs.codec_context.time_base = tb
        vs.codec_context.gop_size = max(1, round(2 * rate))
        if codec in ("libx264", "libx265"):
            vs.options = {"crf": str(crf)}
        if rotation:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if audio else None
        sent = 0
        for i, pts in enumerate(pts_list):
            image, frame_boxes = render(scene, i, time=float(pts * tb))
            boxes.append(tuple(frame_boxes))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, tb
            out.mux(vs.encode(frame))
            # Keep audio level with video so the muxer need not buffer a whole track.
            last = i == len(pts_list) - 1
            upto = total_samples if last else min(total_samples, round(pts * tb * AUDIO_RATE))
            while aus is not None and sent < upto:
                n = min(1024, total_samples - sent)
                samples = _audio(sent, n, total_samples)
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, sent, Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(af))
                sent += n
        out.mux(vs.encode(None))
        if aus is not None:
            out.mux(aus.encode(None))
    with av.open(str(path)) as inp:
        stream = inp.streams.video[0]
        muxed = [f.pts for f in inp.decode(stream)]
        muxed_tb = stream.time_base
    if len(muxed) != len(boxes):
        raise RuntimeError(f"{path}: wrote {len(boxes)} frames but {len(muxed)} decode back")
    frames = tuple(GTFrame(i, p, float(p * muxed_tb) if p is not None else float(pts_list[i] * tb), b)
                   for i, (p, b) in enumerate(zip(muxed, boxes, strict=True)))
    return GroundTruth(scene.width, scene.height, float(scene.fps), frames, muxed_tb, rotation)


def write_still(path: str | Path, image: np.ndarray, frames: int, *, fps: int = 25, crf: int = 20) -> None:
    """Encode ``frames`` copies of the RGB ``image`` to ``path`` with libx264 (a still scene: the
    sweep's change map sees only compression noise)."""
    write_frames(path, (image for _ in range(frames)), fps=fps, crf=crf)


def write_frames(path: str | Path, images: Iterable[np.ndarray], *, fps: int = 25, crf: int = 20) -> None:
    """Encode the RGB ``images`` (all of one size) to ``path`` with libx264, one frame each."""
    with av.open(str(path), "w") as c:
        s = None
        for image in images:
            if s is None:
                h, w = image.shape[:2]
                s = c.add_stream("libx264", rate=fps)
                s.width, s.height, s.pix_fmt, s.options = w, h, "yuv420p", {"crf": str(crf)}
            c.mux(s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        if s is not None:
            c.mux(s.encode())
