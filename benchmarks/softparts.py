"""A soft, dark face behind a sharp scene: how often is it covered?

    python benchmarks/softparts.py [--scenes N]

Real footage left such a face exposed (the held-out stage video's dark, out-of-focus 55 px face
at the back, behind sharp performers): ``detect/focus.py`` sharpens only a picture that is soft
all over, so a soft part of a sharp one is shown to the detector as it is. Each scene here is a
generated sharp background with a sharp subject (Grace Hopper, a third of the picture's height)
and, in the background, a real face (Grace Hopper or the astronaut, both public domain,
alternating) blurred by a Gaussian and darkened, with the picture round it; 12 identical frames
through x264 (CRF 20), run through ``anonymize_video`` at ``balanced``. A frame counts as covered
when a covered region of the run's report holds at least 80% of the face's box. Kinds: 720p and
1080p, faces of 40 and 55 px, blur sigma 2 and 3.5 px, light kept or cut to 40%. (A mask for the
soft parts alone was tried against it; see docs/recall.md.)

With ``--moving``, a sharp performer (a face twice the soft one's size) sways left and right
below the soft face, 3 of its sizes each way every 4 s, never over its box: a stage's tiles over
the soft face then change on every frame, as they do where people move in front.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamguard import anonymize_video, synth  # noqa: E402
from streamguard.detect import TiledDetector  # noqa: E402
from streamguard.types import Box  # noqa: E402

FRAMES = 12


def _swaying(image: np.ndarray, face: Box, frames: int, fps: int = 25):
    """``image`` with a sharp performer swaying below ``face`` (see module docs), frame by frame."""
    sprite = synth.load_faces()[-1]
    size = 2 * face.height
    cx, cy = face.center
    for i in range(frames):
        frame = image.copy()
        x = cx + 1.5 * size * math.sin(2 * math.pi * i / (4 * fps))
        synth.paste_face(frame, sprite, Box.from_xywh(x - size / 2, cy + 1.75 * size - size / 2, size, size))
        yield frame


def covered(image: np.ndarray, face: Box, work: Path, detector: TiledDetector, frames: int = FRAMES,
            moving: bool = False) -> int:
    src, out, report = work / "in.mp4", work / "out.mp4", work / "report.json"
    if moving:
        synth.write_frames(src, _swaying(image, face, frames))
    else:
        synth.write_still(src, image, frames)
    anonymize_video(src, out, detector=detector, report=report, overwrite=True)
    return sum(any(Box(*r["box"]).intersection(face) >= 0.8 * face.area for r in f["regions"])
               for f in json.loads(report.read_text())["frames"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=4,
                    help="scenes of each kind (backgrounds, faces alternating)")
    ap.add_argument("--frames", type=int, default=FRAMES,
                    help="frames of each scene's clip at 25 fps (unchanged tiles run again after 1 s)")
    ap.add_argument("--moving", action="store_true",
                    help="a sharp performer sways below the soft face (its tiles change every frame)")
    args = ap.parse_args()
    total = done = 0
    print("| picture | face px | blur sigma | light | frames covered |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, TiledDetector("balanced") as detector:
        for (w, h), size, sigma, light in itertools.product([(1280, 720), (1920, 1080)], [40, 55], [2.0, 3.5],
                                                             [1.0, 0.4]):
            hits = sum(covered(*synth.soft_part_scene(w, h, size, sigma, light, seed), Path(tmp), detector,
                               args.frames, args.moving) for seed in range(args.scenes))
            total += args.scenes * args.frames
            done += hits
            print(f"| {w}x{h} | {size} | {sigma} | {light:.0%} | {hits} / {args.scenes * args.frames} |",
                  flush=True)
    print(f"\ncovered on {done} of {total} frames")


if __name__ == "__main__":
    main()
