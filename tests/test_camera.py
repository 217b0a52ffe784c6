"""The camera's motion, measured on a real picture panned, zoomed or held still, and the tracker
moving a lost face's cover with it."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from skimage import data

from streamguard import camera
from streamguard.camera import CameraMotion
from streamguard.config import TrackConfig
from streamguard.lookahead import TrackStage
from streamguard.types import Box, Detection, Frame

W, H = 320, 240


@functools.cache
def scene(side: int = 1024) -> np.ndarray:
    """A real photo (scikit-image's astronaut, public domain) enlarged: room to pan."""
    return cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)


def view(x: float, y: float, zoom: float = 1.0, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """The window of the scene whose top-left corner is at ``(x, y)``, magnified ``zoom`` times
    about the window's centre (sub-pixel positions interpolated, as a camera sees them)."""
    w, h = size
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]], np.float64)
    return cv2.warpAffine(scene(1024 if w <= W else 2600), m, (w, h), flags=cv2.INTER_LINEAR)


def frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(np.ascontiguousarray(image), index)


@pytest.mark.parametrize("size", [(W, H), (1920, 1080)])
def test_a_pan_is_measured_to_a_fraction_of_a_pixel(size: tuple[int, int]) -> None:
    motion = CameraMotion()
    x, y = 300.0, 200.0
    big = size[0] / W  # a 1080p picture is measured on a copy 6 times smaller
    assert motion(frame(view(x, y, size=size))) is None, "no motion before a second frame"
    for i, (dx, dy) in enumerate([(5.5, -3.0), (-7.25, 2.0), (0.5, 6.0)], start=1):
        x, y = x + dx * big, y + dy * big
        m = motion(frame(view(x, y, size=size), i))
        assert m is not None
        # The camera turned right by dx: the picture's content moved left by dx.
        assert m[0, 2] == pytest.approx(-dx * big, abs=0.3 * big)
        assert m[1, 2] == pytest.approx(-dy * big, abs=0.3 * big)
        assert camera.scale_of(m) == pytest.approx(1.0, abs=0.005)


def test_a_zoom_is_measured() -> None:
    motion = CameraMotion()
    motion(frame(view(300, 200, 1.0)))
    m = motion(frame(view(300, 200, 1.04), 1))
    assert m is not None and camera.scale_of(m) == pytest.approx(1.04, abs=0.005)
    # The window's centre stays where it was.
    assert camera.apply(m, W / 2, H / 2) == pytest.approx((W / 2, H / 2), abs=0.5)


def test_a_still_camera_reads_as_no_motion_and_a_blank_picture_as_unknown() -> None:
    motion = CameraMotion()
    rng = np.random.default_rng(0)
    still = view(300, 200).astype(np.int16)
    for i in range(3):  # sensor noise on a still picture is no motion
        noisy = np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
        m = motion(frame(noisy, i))
        assert i == 0 or (m is not None and np.array_equal(m, np.eye(3)))
    blank = CameraMotion()
    blank(frame(np.full((H, W, 3), 128, np.uint8)))
    assert blank(frame(np.full((H, W, 3), 128, np.uint8), 1)) is None


def test_warp_box_moves_and_zooms_a_box() -> None:
    m = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -4.0], [0.0, 0.0, 1.0]])
    assert camera.warp_box(m, Box(10, 10, 20, 30)) == Box.from_center(40.0, 36.0, 20.0, 40.0)
    back = camera.compose(camera.invert(m), m)
    assert np.allclose(back, np.eye(3))


FACE = Box.from_xywh(440, 330, 40, 40)  # a face-sized patch of the scene: the astronaut's face


def _coverage(true: Box, frame: Frame) -> float:
    mask = np.zeros((H, W), bool)
    for r in frame.regions:
        x1, y1, x2, y2 = r.box.clipped(W, H).as_int()
        mask[y1:y2, x1:x2] = True
    x1, y1, x2, y2 = true.clipped(W, H).as_int()
    return float(mask[y1:y2, x1:x2].mean())


def _pan(follow: bool, *, with_camera: bool) -> list[float]:
    """A 30 fps shot: the camera holds still for 10 frames while the face is found, then pans
    right 8 px a frame while the detector misses it (turned away, face paint, motion blur).
    ``with_camera``: the face is in the scene (it moves left in the picture as the camera pans);
    otherwise it moves with the camera (a selfie walker: still in the picture). Returns the share
    of the face covered on each frame the detector missed it."""
    stage = TrackStage(TrackConfig(follow_camera=follow), fps=30.0)
    out, truth = [], {}
    for i in range(25):
        x = 300 + 8 * max(0, i - 9)
        face = FACE.shifted(-x, -200) if with_camera else FACE.shifted(-300, -200)
        truth[i] = face
        dets = (Detection(face, 0.9),) if i < 10 else ()
        out += stage.process(Frame(view(x, 200), i, detections=dets, detected=True))
    out += stage.flush()
    return [_coverage(truth[f.index], f) for f in out if f.index >= 10]


def test_a_lost_face_is_covered_where_the_panning_camera_took_it() -> None:
    covered = _pan(True, with_camera=True)
    assert min(covered) >= 0.95, covered
    # Control: without the camera's motion the cover stays behind as the face leaves it.
    assert min(_pan(False, with_camera=True)) < 0.5


def test_a_face_moving_with_the_camera_stays_covered_where_it_was_seen() -> None:
    assert min(_pan(True, with_camera=False)) >= 0.95


def _found_late(follow: bool) -> list[float]:
    """The camera pans right 12 px a frame and stops at frame 12; the face, standing in the scene,
    is found from then on only (it still stands in the picture: no velocity to follow back).
    Returns the share of the face covered on the frames before, within the look-ahead."""
    stage = TrackStage(TrackConfig(follow_camera=follow), fps=30.0)
    out, truth = [], {}
    for i in range(20):
        x = 200 + 12 * min(i, 12)
        truth[i] = FACE.shifted(-x, -200)
        dets = (Detection(truth[i], 0.9),) if i >= 12 else ()
        out += stage.process(Frame(view(x, 200), i, detections=dets, detected=True))
    out += stage.flush()
    return [_coverage(truth[f.index], f) for f in out if 6 <= f.index < 12]


def test_backfill_moves_back_with_the_camera() -> None:
    covered = _found_late(True)
    assert min(covered) >= 0.95, covered
    assert min(_found_late(False)) < 0.5, "control: the birth box alone stays where it was found"
