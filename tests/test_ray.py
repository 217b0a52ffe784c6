"""--ray: files and chunks as Ray tasks on a local Ray instance with two worker CPUs.

One Ray instance serves the module (starting one takes seconds). The kill-once fault injection
is handed to Ray's workers through the environment when Ray starts, disarmed: its marker file
exists until a test removes it.
"""

from __future__ import annotations

import os
import shutil

import pytest

from streamguard.cli import main
from streamguard.parallel.tasks import KILL_ONCE_ENV

from .chunk_media import border_clip, short_clip
from .pixels import audio_packets, video_pts

ray = pytest.importorskip("ray", reason="the Ray tests need the ray package (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-media")
    border, _ = border_clip(folder)
    return folder, border, short_clip(folder, "a.mp4"), short_clip(folder, "b.mp4")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    marker = tmp_path_factory.mktemp("ray-kill") / "killed"
    marker.touch()  # disarmed
    saved = os.environ.get(KILL_ONCE_ENV)
    os.environ[KILL_ONCE_ENV] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        yield marker
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop(KILL_ONCE_ENV, None)
        else:
            os.environ[KILL_ONCE_ENV] = saved


def test_unreachable_cluster_is_one_line_and_quick(media, workdir, capsys):
    import time

    assert not ray.is_initialized()
    t0 = time.monotonic()
    code = main([str(media[2]), "-o", str(workdir / "x.mp4"), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 7 and time.monotonic() - t0 < 15, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamguard: error: cannot start or reach Ray"), err
    assert list(workdir.iterdir()) == []


def test_small_batch_on_two_ray_workers(local_ray, media, workdir, capsys):
    folder, border, a, b = media
    inputs = workdir / "in"
    inputs.mkdir()
    for f in (border, a, b):
        shutil.copyfile(f, inputs / f.name)
    out = workdir / "out"
    code = main([str(inputs), "-o", str(out), "--ray", "--chunk-seconds", "2", "--detection", "fast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "3 done" in err and "cut into 3 chunks" in err, err
    assert ray.cluster_resources().get("CPU") == 2
    for f in (border, a, b):
        assert video_pts(out / f.name) == video_pts(f)
        assert audio_packets(out / f.name) == audio_packets(f)
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in (border, a, b))


def test_ray_task_killed_mid_chunk_is_retried(local_ray, media, workdir, capsys):
    _, border, _, _ = media
    local_ray.unlink()  # armed: the first chunk task past half its frames kills its worker
    out = workdir / "out.mp4"
    code = main([str(border), "-o", str(out), "--ray", "--chunk-seconds", "2", "--detection", "fast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert local_ray.exists(), "no Ray worker was killed"
    assert "3 chunks on 2 workers" in err and "1 retried" in err, err
    assert video_pts(out) == video_pts(border) and len(video_pts(out)) == 180
    assert audio_packets(out) == audio_packets(border)
    assert sorted(p.name for p in workdir.iterdir()) == ["out.mp4"]
