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


def test_a_file_failing_midway_does_not_stop_the_batch(workdir, capsys, monkeypatch):
    # The pipeline sets its stop event on an error: that must stop this file, not the batch.
    from streamguard.anonymize import Anonymizer
    from streamguard.errors import OutputError

    from .chunk_media import short_clip

    (workdir / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        short_clip(workdir / "in", name)
    real, calls = Anonymizer.process, []

    def failing(self, frame):
        calls.append(frame.index)
        if len(calls) == 5:
            raise OutputError("a.mp4: disk full (simulated)")
        return real(self, frame)

    monkeypatch.setattr(Anonymizer, "process", failing)
    code = main([str(workdir / "in"), "-o", str(workdir / "out"), "--detection", "fast"])
    err = capsys.readouterr().err
    assert code == 4 and "interrupted" not in err, err
    assert "1 done" in err and "1 failed" in err and "disk full (simulated)" in err
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["b.mp4"]


def test_one_short_file_on_a_pool_runs_in_this_process(workdir):
    import os
    import socket

    from streamguard import Config, DetectConfig
    from streamguard.parallel import BatchItem, ParallelOptions, run_parallel

    from .chunk_media import short_clip

    src = short_clip(workdir)
    seen = []
    results, info = run_parallel(
        [BatchItem(src, workdir / "out.mp4")],
        Config(detect=DetectConfig(preset="fast")),
        ParallelOptions(jobs=2),
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert [(r.status, r.frames) for r in results] == [("done", 30)]
    assert (info.workers, info.chunks) == (1, 0)
    assert list(info.worker_cpu) == [f"{socket.gethostname()}:{os.getpid()}"], "no worker process"
    assert seen[-1] == (30, 30)
