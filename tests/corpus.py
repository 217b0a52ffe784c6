"""Issue 8's bad-input corpus: tiny media files, good and broken, built with PyAV and Pillow.

Every case is generated on first use into a session tmp folder (nothing is committed).
A case either must be anonymized correctly (``expect="ok"``) or refused with one
line and an exit code (``expect=3`` / ``4``).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box


@dataclass
class Case:
    name: str
    #: "ok": must be processed correctly; an int: the exit code of the expected refusal.
    expect: str | int
    make: Callable[[Path], Made]
    #: Output suffix (default: the input's).
    out_suffix: str | None = None
    #: Substring the one-line error must contain.
    error: str = ""
    xfail: str | None = None


@dataclass
class Made:
    path: Path
    #: Per frame, GT face boxes in stored orientation (video) or upright (image); empty for bad input.
    boxes: list[list[Box]] = field(default_factory=list)
    #: Frames whose bytes were damaged on purpose (must be covered, never pass through).
    damaged: set[int] = field(default_factory=set)
    #: Decoded reference pictures to compare against, when the decoder of the input is the truth.
    reference: list[np.ndarray] | None = None
    #: Frames per second when the input's own decoded stamps are not its frames' times (H.264
    #: with B-frames in AVI): the output must then hold frame i at i / even_fps, as written.
    even_fps: float | None = None


# --------------------------------------------------------------------------- pictures


def face_picture(width: int, height: int, i: int = 0, seed: int = 8) -> tuple[np.ndarray, Box]:
    """A background with one real face filling most of the (small) frame, drifting with ``i``."""
    image = background(width, height, seed)
    sprite = load_faces()[0]
    fh = 0.62 * min(width, height)
    fw = fh * sprite.face.width / sprite.face.height
    cx = width / 2 + (i % 7) - 3
    box = paste_face(image, sprite, Box.from_center(cx, height / 2, fw, fh))
    return image, box


def _rot_box(box: Box, k: int, w: int, h: int) -> Box:
    """``box`` in a w x h image after ``np.rot90(image, k)``."""
    mask = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = box.as_int()
    mask[y1:y2, x1:x2] = 1
    r = np.rot90(mask, k)
    ys, xs = np.nonzero(r)
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


# --------------------------------------------------------------------------- video

_AUDIO_FRAME = {"aac": 1024, "libopus": 960, "mp3": 1152, "libmp3lame": 1152, "ac3": 1536, "mp2": 1152,
                "wmav2": 2048}


def _add_audio(out: av.container.OutputContainer, codec: str) -> av.audio.stream.AudioStream:
    rate = 48_000
    s = out.add_stream(codec, rate=rate, layout="stereo")
    if codec.startswith("pcm"):
        s.format = "s16"
    if codec.startswith("wma"):
        s.bit_rate = 128_000  # WMA takes no default rate
    return s


def _audio_frames(stream: av.audio.stream.AudioStream, seconds: float, freq: float) -> list[av.AudioFrame]:
    rate = 48_000
    n_total = round(seconds * rate)
    size = _AUDIO_FRAME.get(stream.codec_context.name, 1024)
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    frames, sent = [], 0
    while sent < n_total:
        n = min(size, n_total - sent)
        t = np.arange(sent, sent + n) / rate
        mono = 0.2 * np.sin(2 * np.pi * freq * t)
        planar = np.stack([mono, mono])
        if not fmt.endswith("p"):
            planar = planar.T.reshape(1, -1)  # packed: samples interleaved in one plane
        if fmt.startswith("s16"):
            data = (planar * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            data = (planar * 2147483647).astype(np.int32)
        else:
            data = planar.astype(np.float32)
        f = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        f.sample_rate, f.pts, f.time_base = rate, sent, Fraction(1, rate)
        frames.append(f)
        sent += n
    return frames


def write_video(
    path: Path,
    *,
    width: int = 160,
    height: int = 120,
    frames: int = 12,
    fps: int = 15,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: tuple[str, ...] = ("aac",),
    rotation: int = 0,
    vfr: bool = False,
    container_options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
    gop: int | None = None,
) -> Made:
    """``frames`` pictures of one face (displayed upright, stored turned by ``rotation``)."""
    k = (rotation // 90) % 4
    sw, sh = (height, width) if k % 2 else (width, height)  # stored size
    rate = Fraction(fps)
    tb = 1 / (rate * 4) if vfr else 1 / rate
    ticks = (4, 2, 6, 4, 3, 8, 5, 4, 1, 3)
    pts_list, p = [], 0
    for i in range(frames):
        pts_list.append(p)
        p += ticks[i % len(ticks)] if vfr else 1
    boxes: list[list[Box]] = []
    with av.open(str(path), "w", options=container_options or {}) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = sw, sh, pix_fmt
        vs.time_base = vs.codec_context.time_base = tb
        vs.codec_context.gop_size = gop or frames
        if codec_options:
            vs.options = codec_options
        if rotation:
            vs.set_display_rotation(rotation)
        astreams = [_add_audio(out, c) for c in audio]
        for i, pts in enumerate(pts_list):
            upright, box = face_picture(width, height, i)
            # The product shows np.rot90(stored, k); store the inverse turn.
            stored = np.ascontiguousarray(np.rot90(upright, -k))
            boxes.append([_rot_box(box, -k, width, height)] if k else [box])
            vf = av.VideoFrame.from_ndarray(stored, format="rgb24")
            vf.pts, vf.time_base = pts, tb
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        seconds = float(p * tb)
        for n, s in enumerate(astreams):
            for af in _audio_frames(s, seconds, 330.0 * (n + 1)):
                out.mux(s.encode(af))
            out.mux(s.encode(None))
    return Made(path, boxes)


def remux_damaged(src: Path, dst: Path, frames: set[int]) -> set[int]:
    """Copy ``src`` packet for packet, overwriting the payload of video packets ``frames`` (decode order)."""
    rng = np.random.default_rng(4)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        n = 0
        for pkt in inp.demux(vin):
            if pkt.size == 0:  # the demuxer's flush packet
                continue
            if n in frames:
                data = bytearray(bytes(pkt))
                # Keep the NAL length prefix and header, trash the slice data.
                for j in range(8, len(data)):
                    data[j] = int(rng.integers(0, 256))
                new = av.Packet(bytes(data))
                new.pts, new.dts, new.time_base = pkt.pts, pkt.dts, pkt.time_base
                new.is_keyframe = pkt.is_keyframe
                pkt = new
            pkt.stream = vout
            out.mux(pkt)
            n += 1
    return frames


# --------------------------------------------------------------------------- makers


def _bytes(data: bytes) -> Callable[[Path], Made]:
    def make(path: Path) -> Made:
        path.write_bytes(data)
        return Made(path)

    return make


def make_truncated_moov_end(path: Path) -> Made:
    full = path.with_name("full_" + path.name)
    write_video(full)  # no faststart: moov is written last
    data = full.read_bytes()
    moov = data.rfind(b"moov")
    assert moov > data.find(b"mdat"), "fixture needs moov at the end"
    path.write_bytes(data[: moov + 64])  # cut inside moov
    full.unlink()
    return Made(path)


def make_fragmented_cut(path: Path) -> Made:
    full = path.with_name("full_" + path.name)
    write_video(full, frames=30, gop=5, container_options={"movflags": "frag_keyframe+empty_moov"})
    data = full.read_bytes()
    # Cut in the middle of the fourth fragment's media data.
    starts = [i for i in range(len(data)) if data.startswith(b"moof", i)]
    assert len(starts) >= 5, starts
    mdat = data.find(b"mdat", starts[3])
    path.write_bytes(data[: mdat + (starts[4] - mdat) // 2])
    full.unlink()
    return Made(path)


def make_corrupt_packets(path: Path) -> Made:
    good = path.with_name("good_" + path.name)
    made = write_video(good, frames=20, gop=20, audio=())
    damaged = remux_damaged(good, path, {6, 7, 8})
    reference = _decode(good)
    good.unlink()
    return Made(path, made.boxes, damaged=damaged, reference=reference)


def make_cover_art(path: Path) -> Made:
    """An MP4 whose cover art (an attached picture stream) is an unblurred face."""
    base = path.with_name(".base-" + path.name)
    made = write_video(base)
    picture, _ = face_picture(200, 200)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="JPEG")
    with av.open(str(base)) as ic, av.open(str(path), "w") as oc:
        streams = {s.index: oc.add_stream_from_template(s) for s in ic.streams}
        cover = oc.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 200, 200, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        for packet in ic.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            oc.mux(packet)
        pic = av.Packet(buf.getvalue())
        pic.stream, pic.pts, pic.dts = cover, 0, 0
        oc.mux(pic)
    base.unlink()
    return Made(path, made.boxes, reference=_decode(path))


def make_audio_only(path: Path) -> Made:
    with av.open(str(path), "w") as out:
        s = _add_audio(out, "aac")
        for af in _audio_frames(s, 0.5, 440):
            out.mux(s.encode(af))
        out.mux(s.encode(None))
    return Made(path)


def make_no_video_frames(path: Path) -> Made:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=15)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        s = _add_audio(out, "aac")
        for af in _audio_frames(s, 0.5, 440):
            out.mux(s.encode(af))
        out.mux(s.encode(None))
    return Made(path)


def make_huge_dims(path: Path) -> Made:
    # A y4m header is text, so a 10000x8000 (80 Mpx) stream costs a few bytes to declare.
    # (Much larger, e.g. 40000x20000, libav itself refuses at open: "device or resource busy".)
    header = b"YUV4MPEG2 W10000 H8000 F15:1 Ip A1:1 C420jpeg\n"
    path.write_bytes(header + b"FRAME\n" + os.urandom(1024))
    return Made(path)


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def make_bframes_avi(path: Path) -> Made:
    """H.264 with B-frames in AVI (cameras, older tools): AVI keeps no presentation times, and
    libav hands the frames back in display order with shuffled stamps."""
    made = write_video(path, frames=15, audio=("mp3",), codec_options={"bf": "3", "preset": "medium"})
    made.reference = _decode(path)
    made.even_fps = 15.0
    return made


def _video(**kw: object) -> Callable[[Path], Made]:
    def make(path: Path) -> Made:
        made = write_video(path, **kw)  # type: ignore[arg-type]
        made.reference = _decode(path)
        return made

    return make


# --------------------------------------------------------------------------- images


def _photo(width: int = 240, height: int = 180) -> tuple[np.ndarray, Box]:
    return face_picture(width, height, seed=11)


def _tiff_entry(tag: int, typ: int, count: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")


def exif_app1(orientation: int, thumbnail: bytes) -> bytes:
    """An EXIF APP1 segment (little-endian TIFF) with Orientation, a GPS IFD and an IFD1 JPEG thumbnail."""
    # Layout: header(8) | IFD0 (2 entries) | GPS IFD (2 entries) | IFD1 (2 entries) | GPS latitude | thumb
    ifd0_off = 8
    ifd0_len = 2 + 2 * 12 + 4
    gps_off = ifd0_off + ifd0_len
    gps_len = 2 + 2 * 12 + 4
    ifd1_off = gps_off + gps_len
    ifd1_len = 2 + 2 * 12 + 4
    lat_off = ifd1_off + ifd1_len
    lat = struct.pack("<6I", 48, 1, 51, 1, 29, 1)
    thumb_off = lat_off + len(lat)
    ifd0 = (
        struct.pack("<H", 2)
        + _tiff_entry(0x0112, 3, 1, struct.pack("<H", orientation))
        + _tiff_entry(0x8825, 4, 1, struct.pack("<I", gps_off))
        + struct.pack("<I", ifd1_off)
    )
    gps = (
        struct.pack("<H", 2)
        + _tiff_entry(0x0001, 2, 2, b"N\0")
        + _tiff_entry(0x0002, 5, 3, struct.pack("<I", lat_off))
        + struct.pack("<I", 0)
    )
    ifd1 = (
        struct.pack("<H", 2)
        + _tiff_entry(0x0201, 4, 1, struct.pack("<I", thumb_off))
        + _tiff_entry(0x0202, 4, 1, struct.pack("<I", len(thumbnail)))
        + struct.pack("<I", 0)
    )
    tiff = b"II*\0" + struct.pack("<I", ifd0_off) + ifd0 + gps + ifd1 + lat + thumbnail
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def make_exif_jpeg(path: Path) -> Made:
    upright, box = _photo()
    stored = np.ascontiguousarray(np.rot90(upright))  # orientation 6: viewer turns it clockwise
    thumb = io.BytesIO()
    Image.fromarray(stored).resize((60, 80)).save(thumb, "JPEG", quality=70)
    plain = io.BytesIO()
    Image.fromarray(stored).save(plain, "JPEG", quality=95)
    data = plain.getvalue()
    path.write_bytes(data[:2] + exif_app1(6, thumb.getvalue()) + data[2:])
    return Made(path, [[box]], reference=[upright])


def make_png_alpha(path: Path) -> Made:
    rgb, box = _photo()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :20] = 0
    alpha[:20, :] = 128
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return Made(path, [[box]], reference=[rgb])


def make_png16_rgb(path: Path) -> Made:
    rgb, box = _photo()
    wide = rgb.astype(np.uint16) * 257
    assert cv2.imwrite(str(path), np.ascontiguousarray(wide[..., ::-1]))
    return Made(path, [[box]], reference=[rgb])


def make_png16_grey(path: Path) -> Made:
    rgb, box = _photo()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    return Made(path, [[box]], reference=[np.repeat(grey[..., None], 3, axis=2)])


def make_cmyk_jpeg(path: Path) -> Made:
    rgb, box = _photo()
    Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=95)
    reference = np.asarray(Image.open(path).convert("RGB"))
    return Made(path, [[box]], reference=[reference])


def make_webp(path: Path) -> Made:
    rgb, box = _photo()
    Image.fromarray(rgb).save(path, "WEBP", quality=95)
    return Made(path, [[box]], reference=[np.asarray(Image.open(path).convert("RGB"))])


def make_animated_gif(path: Path) -> Made:
    frames = [Image.fromarray(face_picture(160, 120, i)[0]) for i in range(6)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Made(path)


def make_animated_webp(path: Path) -> Made:
    frames = [Image.fromarray(face_picture(160, 120, i)[0]) for i in range(5)]
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Made(path)


def make_still_gif(path: Path) -> Made:
    rgb, box = _photo()
    Image.fromarray(rgb).save(path)
    return Made(path, [[box]], reference=[np.asarray(Image.open(path).convert("RGB"))])


# --------------------------------------------------------------------------- the corpus

CASES: list[Case] = [
    Case("random.mp4", 3, _bytes(np.random.default_rng(1).bytes(4096)), error="cannot open"),
    Case("notes.txt", 3, _bytes(b"just some text, not a video\n" * 40), error="a text file, not a video"),
    Case("moov_at_end_cut.mp4", 3, make_truncated_moov_end, error="truncated"),
    Case("fragmented_cut.mp4", 3, make_fragmented_cut, error="truncated"),
    # Refused, not patched over: libav's H.264 decoder rejects the trashed packets, and what it
    # outputs around them carries wrong timestamps, so no correct timeline could be written.
    Case("corrupt_packets.mkv", 3, make_corrupt_packets, error="cannot decode video after frame"),
    Case("audio_only.mp4", 3, make_audio_only, error="no video stream"),
    # The cover art shows a face: it is dropped, never copied raw (see _check_processed).
    Case("cover_art.mp4", "ok", make_cover_art),
    Case("no_video_frames.mkv", 3, make_no_video_frames, error="video"),
    Case("odd_641x479.mp4", "ok", _video(width=641, height=479, frames=6, pix_fmt="yuv444p")),
    Case("huge_dims.y4m", 3, make_huge_dims, out_suffix=".mp4", error="larger than streamguard supports"),
    Case("ten_bit_h264.mp4", "ok", _video(pix_fmt="yuv420p10le")),
    Case("ten_bit_hevc.mkv", "ok", _video(codec="libx265", pix_fmt="yuv420p10le",
                                          codec_options={"x265-params": "log-level=error"})),
    Case("vfr.mkv", "ok", _video(vfr=True, frames=20)),
    Case("rot90.mp4", "ok", _video(rotation=90)),
    Case("rot180.mp4", "ok", _video(rotation=180)),
    Case("rot270.mp4", "ok", _video(rotation=270)),
    Case("three_audio.mkv", "ok", _video(audio=("aac", "libopus", "aac"))),
    Case("h264.mov", "ok", _video(audio=("pcm_s16le",))),
    Case("hevc.mp4", "ok", _video(codec="libx265", codec_options={"x265-params": "log-level=error"})),
    Case("vp9.webm", "ok", _video(codec="libvpx-vp9", audio=("libopus",))),
    Case("mpeg4.avi", "ok", _video(codec="mpeg4", audio=("mp3",), codec_options={"qscale": "2"})),
    Case("mjpeg.avi", "ok", _video(codec="mjpeg", pix_fmt="yuvj420p", audio=("pcm_s16le",))),
    Case("h264_bframes.avi", "ok", make_bframes_avi),
    Case("mjpeg.mkv", "ok", _video(codec="mjpeg", pix_fmt="yuvj420p", audio=("ac3",))),
    # Dashcams, camcorders (AVCHD), old phones and older tools: kept in their own containers.
    Case("dashcam.ts", "ok", _video()),
    Case("camcorder.mts", "ok", _video(audio=("ac3",), fps=25)),
    Case("phone.3gp", "ok", _video()),
    # MPEG program streams lose re-encoded frames' times: written as .mkv, the default output.
    Case("old.mpg", "ok", _video(codec="mpeg2video", audio=("mp2",), fps=25), out_suffix=".mkv"),
    Case("web.flv", "ok", _video(fps=25)),
    # images
    Case("exif_gps_thumb.jpg", "ok", make_exif_jpeg),
    Case("alpha.png", "ok", make_png_alpha),
    Case("rgb16.png", "ok", make_png16_rgb),
    Case("grey16.png", "ok", make_png16_grey),
    Case("cmyk.jpg", "ok", make_cmyk_jpeg),
    Case("photo.webp", "ok", make_webp),
    Case("still.gif", "ok", make_still_gif),
    Case("animated.gif", 3, make_animated_gif, error="animated"),
    Case("animated.webp", 3, make_animated_webp, error="animated WEBP"),
]
