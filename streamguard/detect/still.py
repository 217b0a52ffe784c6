"""Photos: the tiled detector's photo plan, run in each of its views and the finds merged."""

from __future__ import annotations

import numpy as np

from ..types import Detection
from .fuse import unite
from .known import SURE_SCORE
from .plan import View
from .tiling import TiledDetector

__all__ = ["StillDetector"]

#: The closer views look for the back rows of a crowd: faces of 6-24 px, shown to the model
#: upscaled up to 3x. On a portrait, the same upscaled views call hair, fabric and a flag's stars
#: faces: Grace Hopper's photo (512 x 600) got 121 finds of 14-28 px there, and came out blurred
#: whole. On the real benchmark's 26 photos every face only they found was in a photo where the
#: other views had found 32 or more sure faces of up to 48 px (a parade, two marching bands,
#: a volleyball crowd, a meeting); the portraits, families and street scenes had 0-4.
SMALL_COMPANY = 3


class StillDetector:
    """A :class:`TiledDetector` running its photo plan (the preset's ``still``) on every image, in
    each of the plan's views (:class:`~streamguard.detect.plan.View`): a FaceDetector for still
    images that shares the tiled detector's models and threads, and leaves closing them to it."""

    def __init__(self, tiled: TiledDetector) -> None:
        self.tiled = tiled

    def view_finds(self, image: np.ndarray, view: View) -> list[Detection]:
        """The photo plan's finds in one ``view`` of ``image``, in the image's own pixels."""
        if not view.mirrored:
            return self.tiled.detect(image, still=True, view=view)
        finds = self.tiled.detect(np.ascontiguousarray(image[:, ::-1]), still=True, view=view)
        w = image.shape[1]
        return [Detection(d.box.mirrored(w), d.score, -d.roll) for d in finds]  # mirrored back

    def detect(self, image: np.ndarray) -> list[Detection]:
        views = self.tiled.still_preset.views
        whole = [v for v in views if v.max_face is None]
        found = [d for view in whole for d in self.view_finds(image, view)]
        if any(v.max_face is not None for v in views) and self._among_small_faces(found, views):
            found += [d for view in views if view.max_face is not None for d in self.view_finds(image, view)]
        # A face seen in several views becomes the union of its boxes, as a cut face's pieces do,
        # not their score-weighted mean: views frame a small face differently, and the mean
        # of its boxes could leave part of each uncovered. On the 26 real photos
        # (benchmarks/real.py) the union left 8 of 770 faces exposed against the mean's 14,
        # blurring more around them (3.14x -> 3.71x the faces' area). Uniting only boxes of
        # one size (IoU >= 0.35), with the four views: 7 exposed against 3, 3.71x against 3.99x.
        return found if len(views) == 1 else unite(found)

    def _among_small_faces(self, found: list[Detection], views: tuple[View, ...]) -> bool:
        """Whether the closer views (levels for small faces only, the picture upscaled) are run:
        when the whole views found at least ``SMALL_COMPANY`` sure faces (``SURE_SCORE``) of at
        most twice the closer views' largest face, or the user set the threshold."""
        if self.tiled.threshold is not None:
            return True
        small = 2 * max(v.max_face for v in views if v.max_face is not None)
        sure = unite([d for d in found if d.score >= SURE_SCORE and d.box.height <= small])
        return len(sure) >= SMALL_COMPANY

    def close(self) -> None:
        """Nothing: the models belong to the tiled detector, closed by its owner."""
