"""Photos: faces destroyed, EXIF orientation applied, nothing identifying written."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from streamguard import anonymize_image
from streamguard.images import load_image
from streamguard.synth import background, load_faces, paste_face
from streamguard.types import Box

from .conftest import file_hash
from .pixels import assert_destroyed, outside_mask

EXIF_ORIENTATION = 0x0112
GPS_IFD = 0x8825


def _photo() -> tuple[np.ndarray, list[Box]]:
    image = background(900, 600, seed=21)
    faces = load_faces()
    boxes = [
        paste_face(image, faces[0], Box.from_xywh(120, 140, 230, 230)),
        paste_face(image, faces[-1], Box.from_xywh(560, 200, 170, 170)),
    ]
    return image, boxes


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_image_faces_destroyed(workdir, detector, suffix):
    image, boxes = _photo()
    src = workdir / f"photo{suffix}"
    Image.fromarray(image).save(src, quality=95) if suffix != ".png" else Image.fromarray(image).save(src)
    original = np.asarray(Image.open(src).convert("RGB"))
    before = file_hash(src)
    result = anonymize_image(src, detector=detector)
    assert result.output == workdir / f"photo.anonymized{suffix}"
    assert file_hash(src) == before
    out = np.asarray(Image.open(result.output).convert("RGB"))
    assert out.shape == original.shape
    for box in boxes:
        assert_destroyed(original, out, box, suffix)
    keep = outside_mask(original.shape[:2], boxes)
    assert np.abs(original.astype(int) - out.astype(int))[keep].mean() < 3.0


def test_exif_orientation_applied_and_metadata_stripped(workdir, detector):
    upright, boxes = _photo()
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise, so store
    # the picture turned counter-clockwise.
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright)))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    exif[0x010F] = "CameraMaker"  # Make
    src = workdir / "phone.jpg"
    stored.save(src, quality=95, exif=exif)
    assert Image.open(src).getexif().get_ifd(GPS_IFD), "fixture must carry GPS"

    result = anonymize_image(src, workdir / "out.jpg", detector=detector)
    out_im = Image.open(result.output)
    # Written upright, so no orientation tag is needed; and no EXIF at all (GPS, maker, thumbnail).
    assert out_im.size == (900, 600)
    assert len(out_im.getexif()) == 0
    assert "exif" not in out_im.info
    out = np.asarray(out_im.convert("RGB"))
    original = np.asarray(Image.open(src).transpose(Image.Transpose.ROTATE_270).convert("RGB"))
    for box in boxes:
        assert_destroyed(original, out, box, "in the EXIF-rotated photo")


def test_png_alpha_kept(workdir, detector):
    image, boxes = _photo()
    alpha = np.full(image.shape[:2], 255, np.uint8)
    alpha[:50, :50] = 0
    src = workdir / "alpha.png"
    Image.fromarray(np.dstack([image, alpha]), "RGBA").save(src)
    result = anonymize_image(src, detector=detector)
    out = np.asarray(Image.open(result.output))
    assert out.shape[2] == 4 and (out[..., 3] == alpha).all()
    assert_destroyed(image, out[..., :3], boxes[0])


@pytest.mark.parametrize(("name", "bits"), [("grey.jpg", 8), ("grey16.png", 16), ("grey_alpha.png", 8)])
def test_a_grey_photo_stays_grey(workdir, detector, caplog, monkeypatch, name, bits):
    image, boxes = _photo()
    grey = np.asarray(Image.fromarray(image).convert("L"))
    src = workdir / name
    if bits == 16:
        Image.fromarray(grey.astype(np.uint16) * 257).save(src)
    elif name.endswith(".png"):
        Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA").save(src)
    else:
        Image.fromarray(grey).save(src, quality=95)
    original = np.asarray(Image.open(src).convert("L")) if bits == 8 else grey
    monkeypatch.setattr(logging.getLogger("streamguard"), "propagate", True)  # past the CLI's logging
    with caplog.at_level(logging.WARNING, logger="streamguard"):
        result = anonymize_image(src, detector=detector)
    out = Image.open(result.output)
    assert out.mode == ("LA" if "alpha" in name else "L"), "one channel, not three equal ones"
    pixels = np.asarray(out.convert("L"))
    for box in boxes:
        assert_destroyed(np.dstack([original] * 3), np.dstack([pixels] * 3), box, name)
    assert ("written with 8 bits" in caplog.text) == (bits == 16)


def test_icc_profile_kept(workdir, detector):
    from PIL import ImageCms

    image, _ = _photo()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = workdir / "icc.jpg"
    Image.fromarray(image).save(src, icc_profile=profile)
    result = anonymize_image(src, detector=detector)
    assert Image.open(result.output).info.get("icc_profile") == profile


def test_photo_detection_runs_with_quiet_native_pools_and_gives_them_back(workdir, detector):
    """OpenCV's own pool is held at one thread while the detector looks at a photo (its threads are
    the parallelism), and the host program's setting comes back afterwards."""
    import cv2

    seen: list[int] = []

    class Watching:
        def detect(self, image: np.ndarray) -> list:
            seen.append(cv2.getNumThreads())
            return detector.detect(image)

        def close(self) -> None:
            pass

    src = workdir / "in.png"
    Image.fromarray(background(320, 240, seed=1)).save(src)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        anonymize_image(src, workdir / "out.png", detector=Watching())
        assert seen == [1]
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_the_command_says_how_many_covered_regions_are_sure_faces(workdir, capsys):
    # A photo's plan covers every find, however unsure; "107 face(s) covered" for a photo of three
    # people misled. The two pasted faces are sure finds; any others are counted apart.
    import re

    from streamguard.api import ImageResult
    from streamguard.cli import main

    image, _ = _photo()
    src = workdir / "photo.png"
    Image.fromarray(image).save(src)
    assert main([str(src), "-o", str(workdir / "out.png")]) == 0
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r".*out\.png: (2 face\(s\) covered|\d+ region\(s\) covered: 2 sure face\(s\) and "
                        r"\d+ less certain find\(s\))", said), said
    assert ImageResult(workdir, 7, 10, 10, sure=3).summary() == (
        "7 region(s) covered: 3 sure face(s) and 4 less certain find(s)")
    assert ImageResult(workdir, 2, 10, 10, sure=2).summary() == "2 face(s) covered"


def test_photo_report_lists_its_covered_faces(workdir, capsys):
    """``--report`` on a photo writes the covered regions (it used to be dropped silently)."""
    import json

    from streamguard.cli import main

    image, boxes = _photo()
    src = workdir / "photo.png"
    Image.fromarray(image).save(src)
    report = workdir / "photo.report.json"
    assert main([str(src), "-o", str(workdir / "out.png"), "--report", str(report), "-q"]) == 0
    data = json.loads(report.read_text())
    assert data["input"] == str(src) and len(data["frames"]) == 1
    frame = data["frames"][0]
    assert frame["index"] == 0 and frame["time"] is None
    covered = [Box(*r["box"]) for r in frame["regions"]]
    for face in boxes:  # each pasted face lies inside some reported region
        assert any(c.intersection(face) >= 0.9 * face.area for c in covered), (face, covered)
    assert data["summary"]["detection"] >= len(boxes)
    assert data["summary"]["detection"] + data["summary"]["gap"] == len(frame["regions"])
    out = np.asarray(Image.open(workdir / "out.png").convert("RGB"))
    for box in boxes:
        assert_destroyed(image, out, box, ".png")


def test_a_photo_of_ninety_megapixels_is_read(workdir):
    # Pillow's own guard calls anything over 89 Mpx a possible bomb; a 100 Mpx camera does not.
    path = workdir / "big.jpg"
    Image.new("RGB", (10_000, 9_000), (120, 110, 100)).save(path, quality=50)
    image = load_image(path)
    assert image.rgb.shape == (9_000, 10_000, 3)
