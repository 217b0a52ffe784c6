"""Regenerate the bundled samples in this folder from public-domain faces.

    python sample_media/generate.py

Writes ``sample.mp4`` + ``sample.json`` (per-frame ground-truth face boxes) and
``photo.jpg`` + ``photo.json``. The output is deterministic: running it twice gives
the same JSON. See ``streamguard/synth.py`` for how the media are built.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
# Run as a plain script from a checkout: make the repository importable without installing it.
sys.path.insert(0, str(HERE.parent))

from streamguard.synth import FaceTrack, Scene, background, load_faces, paste_face, write_clip  # noqa: E402
from streamguard.types import Box  # noqa: E402

log = logging.getLogger("generate")

GRACE, ASTRONAUT = 0, 1

# 8 s of 1280x720 at 30 fps. Sizes are face-box heights in pixels; paths keep faces apart
# so no face hides another.
VIDEO = Scene(
    width=1280, height=720, fps=30, duration=8.0, seed=7,
    faces=(
        # Large face, drifting slowly and leaning a little.
        FaceTrack(GRACE, 0.0, 8.0, ((0.0, 330, 370, 250), (8.0, 420, 390, 240)),
                  rotation=((0.0, 0.0), (4.0, 6.0), (8.0, -4.0))),
        # Mid face entering from the right edge, then tilting one way and the other.
        FaceTrack(ASTRONAUT, 0.0, 8.0, ((0.0, 1360, 190, 100), (2.0, 1090, 200, 100), (8.0, 800, 230, 112)),
                  rotation=((0.0, 0.0), (2.0, 0.0), (4.5, -15.0), (7.0, 15.0), (8.0, 10.0))),
        # Small face, a little darker, moving right.
        FaceTrack(ASTRONAUT, 0.0, 8.0, ((0.0, 900, 560, 40), (8.0, 1150, 500, 44)), brightness=0.85),
        # Tiny face near the bottom.
        FaceTrack(GRACE, 0.0, 8.0, ((0.0, 700, 645, 24), (8.0, 820, 635, 24))),
        # A face that pops in and out mid-clip (tests appearance and disappearance).
        FaceTrack(GRACE, 2.5, 6.0, ((2.5, 1010, 400, 64), (6.0, 960, 390, 64))),
    ),
)

# The photo as displayed (upright): 1600x1067 with three faces.
PHOTO_SIZE = (1600, 1067)
PHOTO_FACES = (  # sprite, face box (x, y, w, h), rotation in degrees
    (GRACE, (260.0, 300.0, 320.0, 320.0), 0.0),
    (ASTRONAUT, (980.0, 240.0, 140.0, 140.0), 8.0),
    (GRACE, (1240.0, 700.0, 56.0, 56.0), 0.0),
)
EXIF_ORIENTATION = 0x0112


def make_video() -> None:
    # crf 26 keeps the file well under 2 MB with the faces still sharp.
    gt = write_clip(HERE / "sample.mp4", VIDEO, crf=26)
    gt.to_json(HERE / "sample.json")
    log.info("sample.mp4: %d frames, %d boxes", len(gt.frames), sum(len(f.boxes) for f in gt.frames))


def make_photo() -> None:
    width, height = PHOTO_SIZE
    image = background(width, height, seed=11)
    sprites = load_faces()
    boxes = []
    for index, xywh, angle in PHOTO_FACES:
        box = paste_face(image, sprites[index % len(sprites)], Box.from_xywh(*xywh), angle=angle)
        boxes.append([round(v, 3) for v in (box.x1, box.y1, box.x2, box.y2)])
    # EXIF orientation 6 means "rotate 90 degrees clockwise to display", so store the
    # upright picture turned 90 degrees counter-clockwise (np.rot90 turns counter-clockwise).
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(image)))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored.save(HERE / "photo.jpg", quality=90, exif=exif.tobytes())
    gt = {"width": width, "height": height, "orientation": 6, "boxes": boxes}
    (HERE / "photo.json").write_text(json.dumps(gt, indent=1) + "\n")
    log.info("photo.jpg: %dx%d displayed, %d faces", width, height, len(boxes))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_video()
    make_photo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
