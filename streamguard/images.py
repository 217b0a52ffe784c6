"""Still images: read upright (EXIF orientation applied), write without leaking metadata.

What a photo carries besides pixels can identify people: GPS position, camera
serial numbers, and an embedded EXIF thumbnail that is an unblurred copy of the
picture. None of it is written; the colour profile is, since dropping it shifts
colours.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, OutputError, existing_file

__all__ = ["IMAGE_SUFFIXES", "LoadedImage", "load_image", "save_image"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Pillow format names per output suffix.
_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}
#: Refuse pictures above this many pixels (a decompression bomb guard; 400 Mpx).
MAX_IMAGE_PIXELS = 400_000_000
# Pillow's own guard warns from 89 Mpx, which load_image makes an error: a 100 Mpx camera's
# photos and stitched panoramas are pictures, not bombs. Ours decides.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
#: Formats whose several frames are an animation, not pages: writing only the first would be a
#: broken result. (A multi-page TIFF's pages are documents; its first is written.)
_ANIMATED = frozenset({"GIF", "WEBP", "PNG"})


@dataclass(slots=True)
class LoadedImage:
    rgb: np.ndarray  # H x W x 3 uint8, upright
    alpha: np.ndarray | None  # H x W uint8, kept as it was
    icc_profile: bytes | None
    frames: int
    grey: bool = False  # written back as greyscale, not as three equal channels


#: Greyscale modes, and those of them with more than 8 bits a sample.
_GREY = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I"})
_DEEP = frozenset({"I;16", "I;16B", "I;16L", "I"})


def _to_8bit_rgb(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    alpha = None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip to white.
        a = np.asarray(im, dtype=np.uint32)
        a8 = (a >> 8).astype(np.uint8) if a.max() > 255 else a.astype(np.uint8)
        return np.repeat(a8[..., None], 3, axis=2), None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        arr = np.asarray(im)
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return np.asarray(im.convert("RGB")).copy(), alpha


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read a picture upright as 8-bit RGB; one-line :class:`InputError` if it cannot be read."""
    p = existing_file(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise InputError(f"{p}: image is {im.width}x{im.height}, too large")
                frames = getattr(im, "n_frames", 1)
                if frames > 1 and im.format in _ANIMATED:
                    raise InputError(
                        f"{p}: animated {im.format} ({frames} frames) is not supported; "
                        "convert it to a video first"
                    )
                icc = im.info.get("icc_profile")
                im.load()
                upright = ImageOps.exif_transpose(im)
                rgb, alpha = _to_8bit_rgb(upright)
                grey = upright.mode in _GREY
                if upright.mode in _DEEP:
                    log.warning("%s: a 16-bit picture; the result is written with 8 bits a sample", p)
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{p}: not a readable image: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{p}: cannot decode image: {e}") from e
    return LoadedImage(rgb=rgb, alpha=alpha, icc_profile=icc, frames=frames, grey=grey)


def output_format(path: Path) -> str:
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"{path}: unsupported image type {path.suffix!r}") from None


def save_image(image: LoadedImage, rgb: np.ndarray, path: str | os.PathLike[str], fmt: str) -> None:
    """Write ``rgb`` (with the original alpha) as ``fmt``, without EXIF, GPS or thumbnails."""
    p = Path(path)
    im = Image.fromarray(rgb, "RGB")
    if image.grey and fmt != "WEBP":
        # WebP holds colour only; elsewhere a grey photo stays a third of the size.
        im = im.convert("L")
    if image.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        im.putalpha(Image.fromarray(image.alpha, "L"))
    options: dict[str, object] = {}
    if image.icc_profile:
        options["icc_profile"] = image.icc_profile
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95)
    try:
        # No exif= argument: Pillow then writes no EXIF block at all.
        im.save(p, format=fmt, **options)
    except OSError as e:
        raise OutputError(f"{p}: cannot write image: {e.strerror or e}") from e
