"""Measures on real pixels: is a face destroyed, is the rest unchanged?"""

from __future__ import annotations

import av
import cv2
import numpy as np

from streamguard.anonymize import head_box
from streamguard.types import Box


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box.clipped(w, h).as_int()
    return image[y1:y2, x1:x2]


def _detail(gray: np.ndarray, size: float) -> np.ndarray:
    # Band-pass at facial-feature scale (eyes, mouth, nose): what identity lives in.
    sigma = max(1.0, size / 24)
    g = gray.astype(np.float32)
    return cv2.GaussianBlur(g, (0, 0), sigma / 2) - cv2.GaussianBlur(g, (0, 0), sigma * 2)


def face_similarity(original: np.ndarray, output: np.ndarray, box: Box) -> tuple[float, float]:
    """(detail energy ratio output/original, correlation of detail) inside ``box``.

    A face left as it was scores about (1, 1); a destroyed one near (0, 0).
    """
    a = cv2.cvtColor(crop(original, box), cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(crop(output, box), cv2.COLOR_RGB2GRAY)
    size = max(box.width, box.height)
    da, db = _detail(a, size), _detail(b, size)
    ea, eb = float((da**2).mean()), float((db**2).mean())
    energy = eb / ea if ea > 0 else 0.0
    denom = float(np.sqrt((da**2).sum() * (db**2).sum()))
    corr = float((da * db).sum() / denom) if denom > 0 else 0.0
    return energy, corr


def assert_destroyed(original: np.ndarray, output: np.ndarray, box: Box, what: str = "") -> None:
    energy, corr = face_similarity(original, output, box)
    # Thresholds: an untouched face (video re-encode only) scores energy ~1, corr > 0.9;
    # the size-relative blur leaves energy < 0.05. 0.2/0.5 leaves room for codec noise.
    assert energy < 0.2 and corr < 0.5, f"face not destroyed {what}: energy={energy:.3f} corr={corr:.3f}"


def outside_mask(shape: tuple[int, int], faces: list[Box], margin: float = 0.5) -> np.ndarray:
    """True where no covered head region (with its feather) can reach."""
    mask = np.ones(shape, bool)
    for f in faces:
        e = head_box(f, margin).grown(0.25)
        x1, y1, x2, y2 = e.clipped(shape[1], shape[0]).as_int()
        mask[y1:y2, x1:x2] = False
    return mask


def decode_rgb(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def video_pts(path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def audio_packets(path) -> list[tuple[int, float, bytes]]:
    """(stream order, time in seconds, payload) of every audio packet, in demux order per stream."""
    out = []
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        order = {s.index: n for n, s in enumerate(streams)}
        for p in c.demux(streams):
            if p.dts is None:
                continue
            out.append((order[p.stream.index], float(p.pts * p.time_base), bytes(p)))
    # Stable sort: grouped by stream, demux order kept within each.
    return sorted(out, key=lambda item: item[0])
