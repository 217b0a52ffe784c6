"""Frames kept as their decoded 4:2:0 planes: covered there and encoded as they are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamguard.anonymize import Anonymizer, cover_faces
from streamguard.colour import from_frame, is_packed, pack, unpack
from streamguard.config import AnonymizeConfig
from streamguard.sources import VideoFileSource
from streamguard.types import Box, Frame, Region

from .conftest import SAMPLE_DIR


def _decoded(n: int = 1) -> list[Frame]:
    with VideoFileSource(SAMPLE_DIR / "sample.mp4") as src:
        out = []
        for f in src:
            out.append(f)
            if len(out) == n:
                return out
    raise AssertionError("sample too short")


def test_decoded_frames_keep_their_planes_beside_a_read_only_picture():
    f = _decoded()[0]
    assert f.packed is not None and f.packed.shape == (f.height * 3 // 2, f.width)
    assert not f.image.flags.writeable, "nothing may draw on a picture whose planes would win"
    rgb = f.image.copy()
    planes = f.packed.copy()
    pack(f)
    assert is_packed(f) and np.array_equal(f.packed, planes), "packing a decoded frame converts nothing"
    assert np.array_equal(cv2.cvtColor(f.packed, cv2.COLOR_YUV2RGB_I420), rgb)
    unpack(f)
    assert f.packed is None and f.image.flags.writeable and np.array_equal(f.image, rgb)


def test_unpacking_an_unpacked_decoded_frame_drops_the_planes_and_frees_the_picture():
    f = _decoded()[0]
    unpack(f)
    assert f.packed is None and f.image.flags.writeable
    f.image[0, 0] = 0  # the RGB picture is the frame now: the encoder takes it


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
def test_covering_in_the_planes_matches_covering_in_rgb(mode):
    f = _decoded()[0]
    faces = [Box(101, 81, 221, 231), Box(600, 300, 680, 400), Box(1200, 600, 1279, 719)]
    config = AnonymizeConfig(mode=mode)
    reference = f.image.copy()
    cover_faces(reference, faces, config)
    original = f.image.copy()

    f.regions = tuple(Region(box=b, source="track") for b in faces)
    out = Anonymizer(config, planar=True)(f)
    assert out.protected and is_packed(out), "covered in the planes, handed on packed"
    got = unpack(out).image
    changed = np.abs(reference.astype(int) - original).max(axis=2) > 8
    assert changed.mean() > 0.01, "the covers changed the picture"
    diff = np.abs(got.astype(int) - reference)
    # The same covers, up to 4:2:0 chroma rounding at their edges (and for pixelate, blocks
    # laid from a region corner moved by up to a pixel onto the chroma grid).
    assert diff.mean() < 0.5
    assert np.percentile(diff[changed], 99 if mode != "pixelate" else 90) <= 12
    far = np.ones(changed.shape, bool)
    for b in faces:
        x1, y1, x2, y2 = b.grown(1.5).clipped(f.width, f.height).as_int()
        far[y1:y2, x1:x2] = False
    assert np.abs(got.astype(int) - original)[far].max() <= 2, "nothing away from the faces moved"


def test_frames_that_need_rgb_take_the_rgb_path():
    for config, damaged in ((AnonymizeConfig(boxes=True), False), (AnonymizeConfig(), True)):
        f = _decoded()[0]
        f.damaged = damaged
        f.regions = (Region(box=Box(100, 80, 220, 230), source="track"),)
        out = Anonymizer(config, planar=True)(f)
        assert out.protected and out.packed is None and out.image.flags.writeable


def test_the_encoder_gets_the_covered_planes_as_they_are():
    f = _decoded()[0]
    f.regions = (Region(box=Box(100, 80, 220, 230), source="track"),)
    out = Anonymizer(AnonymizeConfig(), planar=True)(f)
    vf = from_frame(out, "yuv420p")
    assert np.array_equal(vf.to_ndarray(format="yuv420p"), out.packed)
    # An encoder that does not take 4:2:0 gets the RGB picture.
    rgb = from_frame(out, "yuv444p").to_ndarray(format="rgb24")
    assert np.abs(rgb.astype(int) - cv2.cvtColor(vf.to_ndarray(format="yuv420p"),
                                                  cv2.COLOR_YUV2RGB_I420)).mean() < 2
