"""Making faces unrecognisable: a feathered ellipse over the whole head, written into the frame.

Strength is relative to the face: a fixed blur sigma that hides a 30 px face
leaves a 300 px face recognisable, so sigma and pixel blocks scale with the
face box.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .colour import is_packed, pack, put_region_rgb, region_rgb, unpack
from .config import AnonymizeConfig
from .types import Box, Frame, Region, Stage, overlap_groups

__all__ = ["Anonymizer", "head_box", "past_the_edge", "cover_region", "cover_faces", "cover_area", "curtain"]

#: Blur sigma as a fraction of the face box height at strength 1. At 0.15 a face
#: keeps about two resolvable cycles from brow to chin: skin tone, no identity.
BLUR_SIGMA_PER_FACE = 0.15
#: Pixel blocks across the face box height at strength 1. Seven left the band-pass
#: correlation with the original face at 0.73 (see tests/pixels.py); five brings it under 0.3.
PIXELATE_BLOCKS_PER_FACE = 5.0
#: Floor for tiny faces, in pixels.
MIN_SIGMA = 3.0
MIN_BLOCK = 5
#: Soft edge outside the ellipse, as a fraction of its radius; the ellipse itself is fully covered.
FEATHER = 0.15
#: A box this close to the picture's edge (px) is on it (see :func:`past_the_edge`).
_EDGE = 1.0
#: A face box cut by the edge is blurred as a face this much larger (see :func:`past_the_edge`).
_CUT_BLUR = 1.5

_OUTLINE_COLOURS = {
    "detection": (0, 255, 0),
    "prediction": (255, 200, 0),
    "backfill": (0, 200, 255),
    "motion": (255, 0, 255),
    "curtain": (255, 0, 0),
    "gap": (255, 255, 255),
}


def head_box(face: Box, margin: float) -> Box:
    """The region to cover for a detector face box (brow to chin).

    Grown by ``margin`` of the face size sideways and more upward (hair, hat)
    than downward (chin), so the ellipse inscribed in it covers the whole head.
    The face box itself stays inside that ellipse for any ``margin >= 0.4``.
    """
    w, h = face.width, face.height
    cx, cy = face.center
    return Box.from_center(cx, cy - 0.3 * margin * h, w * (1 + margin), h * (1 + 1.6 * margin))


def past_the_edge(face: Box, width: int, height: int) -> Box:
    """``face`` as it continues past the picture's edge. A detector's box for a face the edge cuts
    holds only the part in the picture, and is smaller than the face besides (a 130 px face half
    out of a real clip got boxes 49-72 px wide and 86-144 px high): the ellipse inscribed in its
    head curved away from the edge, and a blur sized for it left the face's outline readable. A
    face box is about square, so a box on the edge and narrower than it is high (on the top or
    bottom edge: lower than it is wide) is squared up outward, past the edge; and its blur is
    sized for a larger face (``_CUT_BLUR``). Its ellipse is not grown: on the real benchmark
    most such boxes are false finds cut by the edge, and growing them by half took the clips'
    over-cover 2.07x -> 2.44x."""
    x1, y1, x2, y2 = face.x1, face.y1, face.x2, face.y2
    w, h = face.width, face.height
    # On the edge, not past it: a tracker's box that reaches past the edge already holds the
    # face beyond it (a face growing as it nears, held by the look-ahead, spans the picture).
    if w < h and abs(x2 - width) <= _EDGE:
        x2 = x1 + h
    elif w < h and abs(x1) <= _EDGE:
        x1 = x2 - h
    elif h < w and abs(y2 - height) <= _EDGE:
        y2 = y1 + w
    elif h < w and abs(y1) <= _EDGE:
        y1 = y2 - w
    else:
        return face
    return Box(x1, y1, x2, y2)


def _blur(crop: np.ndarray, size: float, strength: float) -> np.ndarray:
    sigma = max(MIN_SIGMA, BLUR_SIGMA_PER_FACE * strength * size)
    h, w = crop.shape[:2]
    # Blur a downscaled copy: the cost stays flat however large the face is, and a sigma of
    # 1.5-3 px left in the small copy keeps its stretch back smooth. The factor is a whole
    # number, INTER_AREA's fast path (2-17x quicker than a fractional factor): the last
    # w % k columns and h % k rows are left out of the small copy and the stretch back covers
    # them, a shift of under k px against a blur of 1.5k px and more.
    k = max(1, min(math.ceil(sigma / 3.0), w, h))
    if k == 1:
        return cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(crop[:h - h % k, :w - w % k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / k, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pixelate(crop: np.ndarray, size: float, strength: float) -> np.ndarray:
    block = max(MIN_BLOCK, round(size * strength / PIXELATE_BLOCKS_PER_FACE))
    h, w = crop.shape[:2]
    small = cv2.resize(crop, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _solid(crop: np.ndarray, size: float, strength: float) -> np.ndarray:
    return np.zeros_like(crop)


_MODES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "blur": _blur,
    "pixelate": _pixelate,
    "solid": _solid,
}


def _ellipse_alpha(shape: tuple[int, int], ellipses: Box | Sequence[Box],
                   origin: tuple[int, int]) -> np.ndarray:
    """1 inside any of ``ellipses``, fading to 0 over the feather band outside each (H x W float32,
    the region at ``origin`` of the frame).

    Each ellipse is computed on a grid of at most ~48 steps across its own size and upscaled: a
    large face's mask costs what a small one's does (5x faster at 500 px). The ramp starts two
    grid steps outside the ellipse so interpolation can never dip below 1 inside it; the grid is
    the ellipse's own, not the group's, since a step set by a wide group of heads (a crowd) put
    a small face's ramp many times its radius out (a 15 px face covered 22x its area).
    """
    h, w = shape
    out = np.zeros((h, w), np.float32)
    for ellipse in [ellipses] if isinstance(ellipses, Box) else ellipses:
        cx, cy = ellipse.center
        a = max(ellipse.width / 2, 0.5)
        b = max(ellipse.height / 2, 0.5)
        step = max(1, round(2.6 * max(a, b)) // 48)
        slack = 2 * step / min(a, b) if step > 1 else 0.0  # computed per pixel: nothing to dip
        lo, hi = (1 + slack) ** 2, (1 + FEATHER + slack) ** 2
        reach = math.sqrt(hi)
        # The window the ramp reaches, in region pixels, on the region's pixel grid.
        x1 = max(0, math.floor(cx - a * reach) - origin[0] - step)
        y1 = max(0, math.floor(cy - b * reach) - origin[1] - step)
        x2 = min(w, math.ceil(cx + a * reach) - origin[0] + step)
        y2 = min(h, math.ceil(cy + b * reach) - origin[1] + step)
        if x2 <= x1 or y2 <= y1:
            continue
        ww, wh = x2 - x1, y2 - y1
        sw, sh = -(-ww // step) + 1, -(-wh // step) + 1
        gx = np.arange(sw, dtype=np.float32) * step + origin[0] + x1 + 0.5
        gy = np.arange(sh, dtype=np.float32) * step + origin[1] + y1 + 0.5
        xs = ((gx - cx) / a) ** 2
        ys = ((gy - cy) / b) ** 2
        one = np.clip((hi - (ys[:, None] + xs[None, :])) / (hi - lo), 0.0, 1.0)
        if step > 1:
            one = cv2.resize(one, (sw * step, sh * step), interpolation=cv2.INTER_LINEAR)
        np.maximum(out[y1:y2, x1:x2], one[:wh, :ww], out=out[y1:y2, x1:x2])
    return out


def _outer(face: Box, config: AnonymizeConfig) -> Box:
    """The pixels :func:`cover_region` may change for ``face``: its head ellipse and feather."""
    return head_box(face, config.margin).grown(FEATHER / 2 + 0.01)


def cover_region(image: np.ndarray, face: Box, config: AnonymizeConfig) -> None:
    """Obscure the head around ``face`` in ``image`` (H x W x 3 uint8), in place."""
    cover_faces(image, [face], config)


def cover_faces(image: np.ndarray, faces: Sequence[Box], config: AnonymizeConfig) -> None:
    """Obscure the head around each of ``faces`` (H x W x 3 uint8, in place). Heads whose covers
    overlap (a face and where it was heading, two people side by side) are covered in one pass,
    as strongly as the largest of them: each pixel is blurred and blended once."""

    def put(x1: int, y1: int, pixels: np.ndarray) -> None:
        # Write back into the frame: the bug that drew a rectangle but never stored
        # the blurred pixels must be impossible here.
        image[y1:y1 + pixels.shape[0], x1:x1 + pixels.shape[1]] = pixels

    ih, iw = image.shape[:2]
    # Blurred regions on the 4:2:0 path's grid too: the blur's whole-factor grid starts at the
    # region's corner, and regions a pixel apart blurred a large face in a narrow region at the
    # frame's corner 30 grey levels apart between the two paths. (Pixel blocks keep the face's
    # own corner: moved, they leave a 32-40 px face a little more readable at some offsets.)
    align = 1 if config.mode == "pixelate" else 2
    _cover_groups(iw, ih, faces, config, lambda x1, y1, x2, y2: image[y1:y2, x1:x2], put, align=align)


def cover_faces_packed(frame: Frame, faces: Sequence[Box], config: AnonymizeConfig) -> None:
    """:func:`cover_faces` on a packed ``frame``'s 4:2:0 planes (see ``colour.pack``): only the
    regions covered go to RGB and back, not the whole picture (at 1080p the two whole-frame
    conversions cost ~4 ms a frame; eight faces' regions a fraction of that)."""
    _cover_groups(frame.width, frame.height, faces, config,
                  lambda x1, y1, x2, y2: region_rgb(frame, x1, y1, x2, y2),
                  lambda x1, y1, pixels: put_region_rgb(frame, x1, y1, pixels), align=2)


def _cover_groups(iw: int, ih: int, faces: Sequence[Box], config: AnonymizeConfig,
                  get: Callable[[int, int, int, int], np.ndarray],
                  put: Callable[[int, int, np.ndarray], None], align: int) -> None:
    """The regions of :func:`cover_faces`: ``get`` reads one (x1, y1, x2, y2, with corners on
    multiples of ``align``), ``put`` writes it back covered."""
    cut = [past_the_edge(f, iw, ih) for f in faces]
    # A face the edge cuts is larger than the part the detector saw: blurred for a larger face.
    sizes = [max(c.width, c.height) * (_CUT_BLUR if c is not f else 1.0)
             for c, f in zip(cut, faces, strict=True)]
    faces = cut
    outers = [_outer(f, config).clipped(iw, ih) for f in faces]
    for group in overlap_groups(outers):
        x1, y1, x2, y2 = Box.bounding(outers[i] for i in group).as_int()
        x1, y1 = x1 - x1 % align, y1 - y1 % align
        x2, y2 = min(x2 + (-x2) % align, iw), min(y2 + (-y2) % align, ih)
        if x2 <= x1 or y2 <= y1:
            continue
        crop = get(x1, y1, x2, y2)
        size = max(sizes[i] for i in group)
        covered = _MODES[config.mode](crop, size, config.strength)
        alpha = _ellipse_alpha(crop.shape[:2], [head_box(faces[i], config.margin) for i in group], (x1, y1))
        put(x1, y1, cv2.blendLinear(covered, crop, alpha, 1.0 - alpha))


def cover_area(image: np.ndarray, box: Box, config: AnonymizeConfig) -> None:
    """Obscure all of ``box`` in ``image`` (in place), as strongly as a face the size of its longer
    side: whatever face is inside is smaller than that."""
    ih, iw = image.shape[:2]
    x1, y1, x2, y2 = box.clipped(iw, ih).as_int()
    x2, y2 = min(x2, iw), min(y2, ih)
    if x2 <= x1 or y2 <= y1:
        return
    crop = image[y1:y2, x1:x2]
    crop[:] = _MODES[config.mode](crop, max(x2 - x1, y2 - y1), config.strength)


def curtain(image: np.ndarray) -> None:
    """Obscure the whole picture (fail closed when a frame cannot be trusted)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 32), max(1, h // 32)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=2.0)
    image[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def draw_outline(image: np.ndarray, region: Region, margin: float) -> None:
    colour = _OUTLINE_COLOURS.get(region.source, (255, 255, 255))
    thick = max(1, round(math.sqrt(image.shape[0] * image.shape[1]) / 500))
    if not region.is_face:
        x1, y1, x2, y2 = region.box.as_int()
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, thick)
        return
    ih, iw = image.shape[:2]
    e = head_box(past_the_edge(region.box, iw, ih), margin)
    cx, cy = e.center
    cv2.ellipse(
        image,
        (round(cx), round(cy)),
        (max(1, round(e.width / 2)), max(1, round(e.height / 2))),
        0,
        0,
        360,
        colour,
        thick,
    )


class Anonymizer(Stage):
    """Covers every region of a frame and marks it protected; sinks accept nothing else."""

    def __init__(self, config: AnonymizeConfig | None = None, *, planar: bool = False) -> None:
        self.config = config or AnonymizeConfig()
        #: Cover a frame that has its 4:2:0 planes in them, and hand it on packed: for a sink
        #: that encodes 4:2:0 (``colour.from_frame``); any other consumer calls ``colour.unpack``.
        self.planar = planar

    def __call__(self, frame: Frame) -> Frame:
        faces = [r.box for r in frame.regions if r.is_face]
        if (self.planar and frame.packed is not None and not frame.damaged and not self.config.boxes
                and len(faces) == len(frame.regions)):
            pack(frame)  # no conversion: the frame has its planes (waited in a window, or decoded)
            if is_packed(frame):
                cover_faces_packed(frame, faces, self.config)
                frame.protected = True
                return frame
        unpack(frame)  # RGB to draw on: a frame that waited in the tracker's window comes as 4:2:0
        if frame.damaged:
            curtain(frame.image)
        else:
            areas = [r.box for r in frame.regions if not r.is_face]
            for box in areas:
                cover_area(frame.image, box, self.config)
            # A head inside an area covered whole is gone already (more strongly: the area's
            # blur is sized by its longer side).
            cover_faces(frame.image, [r.box for r in frame.regions if r.is_face and not any(
                a.contains(head_box(r.box, self.config.margin)) for a in areas)], self.config)
        if self.config.boxes:
            for region in frame.regions:
                draw_outline(frame.image, region, self.config.margin)
        frame.protected = True
        return frame
