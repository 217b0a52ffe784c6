"""Several inputs or folders: mirrored outputs, failures recorded, re-runs resume."""

from __future__ import annotations

import numpy as np
from PIL import Image

from streamguard.cli import main

from .test_images import _photo


def _folder(root):
    image, boxes = _photo()
    (root / "in" / "sub").mkdir(parents=True)
    Image.fromarray(image).save(root / "in" / "a.jpg", quality=95)
    Image.fromarray(image).save(root / "in" / "sub" / "b.png")
    (root / "in" / "notes.txt").write_text("not media")
    (root / "in" / "broken.mp4").write_bytes(b"\x00" * 1000)
    return image, boxes


def test_folder_batch_continues_past_failures_and_resumes(workdir, capsys):
    image, boxes = _folder(workdir)
    code = main([str(workdir / "in"), "-r", "-o", str(workdir / "out"), "--detection", "fast"])
    err = capsys.readouterr().err
    assert code == 3, err  # the broken file's code
    assert "broken.mp4" in err and "notes.txt" in err and "Traceback" not in err
    assert "2 done" in err and "1 failed" in err
    out_a, out_b = workdir / "out" / "a.jpg", workdir / "out" / "sub" / "b.png"
    assert out_a.exists() and out_b.exists()
    assert not (workdir / "out" / "broken.mp4").exists()
    from .pixels import assert_destroyed

    assert_destroyed(image, np.asarray(Image.open(out_b).convert("RGB")), boxes[0])
    # A re-run skips what is done.
    mtime = out_a.stat().st_mtime_ns
    code = main([str(workdir / "in"), "-r", "-o", str(workdir / "out"), "--detection", "fast"])
    err = capsys.readouterr().err
    assert "2 skipped" in err and out_a.stat().st_mtime_ns == mtime


def test_without_recursive_subfolders_are_ignored(workdir, capsys):
    _folder(workdir)
    main([str(workdir / "in"), "-o", str(workdir / "out"), "--detection", "fast", "-q"])
    assert (workdir / "out" / "a.jpg").exists() and not (workdir / "out" / "sub").exists()


def test_parallel_jobs(workdir, capsys):
    _folder(workdir)
    code = main([str(workdir / "in"), "-r", "-o", str(workdir / "out"), "--detection", "fast", "-j", "2"])
    err = capsys.readouterr().err
    assert code == 3 and "2 done" in err
    assert (workdir / "out" / "a.jpg").exists() and (workdir / "out" / "sub" / "b.png").exists()


def test_several_files_beside_their_inputs(workdir, capsys):
    _folder(workdir)
    a, b = workdir / "in" / "a.jpg", workdir / "in" / "sub" / "b.png"
    assert main([str(a), str(b), "--detection", "fast", "-q"]) == 0
    assert (workdir / "in" / "a.anonymized.jpg").exists()
    assert (workdir / "in" / "sub" / "b.anonymized.png").exists()


def test_a_failed_run_creates_nothing(workdir, capsys):
    # An empty folder as input: nothing to do, and no output folder made for it.
    empty = workdir / "some_dir.mp4"
    empty.mkdir()
    out = workdir / "out.mp4"
    assert main([str(empty), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "no images or videos found" in err and "Traceback" not in err
    assert not out.exists()

    # Every file failing, one at a time or on workers: no output folders (new ones) left behind.
    (workdir / "in" / "sub").mkdir(parents=True)
    (workdir / "in" / "sub" / "broken.mp4").write_bytes(b"\x00" * 1000)
    (workdir / "kept").mkdir()
    for outdir, extra in [("out", []), ("out", ["-j", "2"]), ("kept", [])]:
        code = main([str(workdir / "in"), "-r", "-o", str(workdir / outdir), "--detection", "fast", *extra])
        err = capsys.readouterr().err
        assert code == 3 and "1 failed" in err, err
        assert not (workdir / "out").exists(), extra
        assert list((workdir / "kept").iterdir()) == [], "a folder that existed stays, and stays empty"
