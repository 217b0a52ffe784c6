"""BlazeFace on LiteRT against MediaPipe's own face detection solution, on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamguard.detect import blazeface
from streamguard.detect.blazeface import DEFAULT_THRESHOLD, MODELS, BlazeFace
from streamguard.errors import ModelError
from streamguard.synth import FaceTrack, Scene, background, load_faces, paste_face, render
from streamguard.types import Box


def _tiles(size: int, whole: bool = False) -> list[np.ndarray]:
    """Model-sized tiles with real faces of several sizes, and some with none; with ``whole``,
    also the wide frame they come from and the frame turned on its side (letterboxed)."""
    scene = Scene(960, 540, 30, 1.0, seed=11, faces=tuple(
        FaceTrack(i % len(load_faces()), 0.0, 1.0, ((0.0, 120 + 180 * i, 160 + 60 * (i % 3), 40 + 25 * i),))
        for i in range(5)
    ))
    image, _ = render(scene, 0)
    out = []
    for y in range(0, 540 - 240, 120):
        for x in range(0, 960 - 240, 120):
            out.append(np.ascontiguousarray(cv2.resize(image[y:y + 240, x:x + 240], (size, size),
                                                       interpolation=cv2.INTER_AREA)))
    if whole:
        out += [image, np.ascontiguousarray(np.rot90(image))]
    return out


@pytest.mark.parametrize("model", ["short", "full"])
def test_matches_mediapipe_solution(model: str) -> None:
    """Same faces, boxes and scores as MediaPipe's graph on the same model-sized input."""
    mp = pytest.importorskip("mediapipe")
    ours = BlazeFace(model)
    total = 0
    with mp.solutions.face_detection.FaceDetection(model_selection=int(model == "full")) as ref:
        for tile in _tiles(MODELS[model].size, whole=True):
            h, w = tile.shape[:2]
            theirs = sorted(((d.score[0], d.location_data.relative_bounding_box)
                             for d in ref.process(tile).detections or ()), key=lambda t: -t[0])
            mine = ours.detect_rolled(tile)
            assert len(mine) == len(theirs)
            for (det, _), (score, rb) in zip(mine, theirs, strict=True):
                assert det.score == pytest.approx(score, abs=1e-4)
                box = Box.from_xywh(rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h)
                assert det.box.iou(box) > 0.98
            total += len(mine)
    assert total >= 4  # the comparison saw faces, not only empty tiles


def test_letterboxed_image_maps_back() -> None:
    """A wide image is letterboxed into the square; boxes come back in the image's pixels."""
    sprite = load_faces()[0]
    image = background(900, 300, seed=2)
    truth = paste_face(image, sprite, Box(600, 90, 720, 210))
    found = BlazeFace("full").detect_rolled(image)
    assert len(found) == 1
    det, roll = found[0]
    assert det.box.iou(truth) > 0.6 and abs(roll) < 15


def test_threshold() -> None:
    tiles = _tiles(128)
    default = BlazeFace("short")
    assert default.threshold == DEFAULT_THRESHOLD["short"]
    low = BlazeFace("short", threshold=0.2)
    counts = [(len(default.detect_rolled(t)), len(low.detect_rolled(t))) for t in tiles]
    assert all(a <= b for a, b in counts) and sum(b for _, b in counts) > sum(a for a, _ in counts)
    assert all(d.score >= 0.2 for t in tiles for d, _ in low.detect_rolled(t))


def test_missing_models_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blazeface.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="mediapipe"):
        BlazeFace("short")
