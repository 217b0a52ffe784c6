"""One video in chunks: the joined file is the single pass's in frames, timestamps, rotation and
audio, faces crossing a chunk border stay covered, workers that die are retried, and an
interrupted run resumes from its finished chunks."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from streamguard import Config, anonymize_video
from streamguard.cli import main
from streamguard.config import DetectConfig
from streamguard.parallel.batch import ParallelOptions, run_parallel
from streamguard.parallel.chunks import ChunkResult, anonymize_chunk, plan_chunks
from streamguard.parallel.items import BatchItem
from streamguard.parallel.join import join_chunks
from streamguard.parallel.tasks import KILL_ONCE_ENV
from streamguard.parallel.workdir import WorkDir, config_key, work_dir_for

from .chunk_media import border_clip, packet_times, video_rotation
from .corpus import make_bframes_avi, write_video
from .pixels import assert_destroyed, audio_packets, decode_rgb, face_similarity, video_pts

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def border(tmp_path_factory):
    return border_clip(tmp_path_factory.mktemp("chunks"))


def _chunked(src: Path, out: Path, chunks: int, detector, config: Config | None = None):
    """Plan, anonymize every chunk in this process, join: the worker's code without the workers."""
    config = config or Config()
    plan = plan_chunks(src, config, chunks=chunks)
    assert plan is not None and len(plan.chunks) == chunks
    paths = []
    for spec in plan.chunks:
        path = out.with_name(f"{out.stem}.chunk{spec.index}.mp4")
        result = anonymize_chunk(src, spec, path, config, detector=detector)
        assert result.frames == spec.frames
        paths.append(path)
    assert join_chunks(src, plan, paths, out, config) == plan.frames
    return plan


def _assert_same_as_single_pass(single: Path, chunked: Path) -> None:
    assert video_pts(chunked) == video_pts(single)
    assert audio_packets(chunked) == audio_packets(single)
    assert video_rotation(chunked) == video_rotation(single)
    with av.open(str(single)) as a, av.open(str(chunked)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert (sb.time_base, sb.average_rate, sb.codec_context.name) == (
            sa.time_base,
            sa.average_rate,
            sa.codec_context.name,
        )
        assert [s.type for s in b.streams] == [s.type for s in a.streams]
    dts = [d for _, d in packet_times(chunked)]
    assert dts == sorted(set(dts)), "dts must increase across the chunk joins"


def test_plan_owns_every_frame_once(border):
    src, gt = border
    plan = plan_chunks(src, Config(), chunks=3)
    assert plan is not None and plan.frames == len(gt.frames)
    starts = [c.start for c in plan.chunks]
    # 6 s with keyframes every 2 s: the borders are the keyframes.
    assert [float(s * plan.time_base) for s in starts] == [0.0, 2.0, 4.0]
    assert sum(c.frames for c in plan.chunks) == plan.frames
    for a, b in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert a.end == b.start and a.first_index + a.frames == b.first_index
    last = plan.chunks[-1]
    assert last.end is None and last.feed_until is None
    assert last.seek is not None and last.seek <= last.feed_from < last.start  # decodes from 2 s
    assert plan.chunks[0].feed_until * plan.time_base >= 2.5  # looks 0.5 s past its end
    # Too short to cut: a single chunk is no plan.
    assert plan_chunks(src, Config(), chunk_seconds=10) is None


def test_chunked_equals_single_pass_and_covers_faces_across_borders(border, workdir, detector):
    src, gt = border
    single, chunked = workdir / "single.mp4", workdir / "chunked.mp4"
    anonymize_video(src, single, detector=detector)
    plan = _chunked(src, chunked, 3, detector)
    _assert_same_as_single_pass(single, chunked)
    if shutil.which("ffprobe"):
        r = subprocess.run(
            ["ffprobe", "-v", "error", "-show_packets", "-show_frames", str(chunked)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and r.stderr == "", r.stderr
    original, a, b = decode_rgb(src), decode_rgb(single), decode_rgb(chunked)
    assert len(b) == len(a) == len(original) == len(gt.frames)
    borders = [c.first_index for c in plan.chunks[1:]]
    near = {i for k in borders for i in range(k - 10, k + 10)}
    checked = 0
    for i, f in enumerate(gt.frames):
        for box in f.boxes:
            if box.width < 24 or box.height < 24:
                continue  # a face half out of the frame edge
            if i in near:
                # Around each border: covered in both outputs, the moving face and the one coming in.
                assert_destroyed(original[i], a[i], box, f"single pass, frame {i}")
                assert_destroyed(original[i], b[i], box, f"chunked, frame {i} (borders at {borders})")
                checked += 1
            else:
                energy, corr = face_similarity(original[i], a[i], box)
                if energy < 0.2 and corr < 0.5:  # covered in one pass: covered in chunks too
                    assert_destroyed(original[i], b[i], box, f"chunked, frame {i}")
    assert checked >= 50


def test_vfr_mkv_and_rotation_kept(vfr_clip, rotated_clip, workdir, detector):
    # VFR with borders between keyframes (1.5 s clip, keyframe only at 0); Matroska output.
    src, _ = vfr_clip
    plan = _chunked(src, workdir / "vfr.chunked.mkv", 3, detector)
    assert all(c.seek is None for c in plan.chunks)
    anonymize_video(src, workdir / "vfr.single.mkv", detector=detector)
    _assert_same_as_single_pass(workdir / "vfr.single.mkv", workdir / "vfr.chunked.mkv")
    # A portrait phone clip (display matrix) into a .mov.
    src, _ = rotated_clip
    _chunked(src, workdir / "rot.chunked.mov", 2, detector)
    anonymize_video(src, workdir / "rot.single.mov", detector=detector)
    assert video_rotation(workdir / "rot.chunked.mov") == 90
    _assert_same_as_single_pass(workdir / "rot.single.mov", workdir / "rot.chunked.mov")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_jobs_on_one_file_survive_a_killed_worker(border, workdir, capsys, monkeypatch, detector):
    """--jobs 2 on one file: chunks in two worker processes; one is killed mid-chunk and its
    chunk runs again; the result is complete and equal to the single pass."""
    src, _ = border
    single, out = workdir / "single.mp4", workdir / "out.mp4"
    anonymize_video(src, single, detector=detector)
    marker = workdir / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    code = main([str(src), "-o", str(out), "--jobs", "2", "--chunk-seconds", "2", "--detection", "fast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert marker.exists(), "no worker was killed"
    assert "3 chunks on 2 workers" in err and "retried" in err, err
    _assert_same_as_single_pass(single, out)
    assert sorted(p.name for p in workdir.iterdir()) == ["killed", "out.mp4", "single.mp4"]


def test_sigterm_keeps_finished_chunks_and_a_rerun_resumes(border, workdir, capsys):
    src, _ = border
    out = workdir / "out.mp4"
    work = work_dir_for(out)
    argv = [str(src), "-o", str(out), "--jobs", "2", "--chunk-seconds", "1", "--detection", "fast"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamguard", *argv], stderr=subprocess.PIPE, text=True, env=_env()
    )

    def done_chunks() -> set[str]:
        try:
            return set(json.loads((work / "manifest.json").read_text())["done"])
        except (OSError, ValueError, KeyError):
            return set()

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not done_chunks() and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "run ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    # No final file, nothing half-written beside it; the finished chunks and the manifest stay.
    assert sorted(p.name for p in workdir.iterdir()) == [work.name]
    assert not [p for p in work.iterdir() if ".part" in p.name]
    done = done_chunks()
    assert 1 <= len(done) < 6
    # The re-run skips the finished chunks (their files are not written again).
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{len(done)} from an earlier run" in err, err
    assert sorted(p.name for p in workdir.iterdir()) == ["out.mp4"]
    assert len(video_pts(out)) == 180 and video_pts(out) == video_pts(src)
    assert audio_packets(out) == audio_packets(src)


def test_avi_with_b_frames_is_not_cut(tmp_path):
    # Its packets' stamps are not its frames' times (see sources.stamped_by_dts): chunk borders
    # drawn from them would not match the frames the workers decode. The same frames in
    # Matroska are cut as asked.
    assert plan_chunks(make_bframes_avi(tmp_path / "b.avi").path, Config(), chunks=2) is None
    plan = plan_chunks(write_video(tmp_path / "b.mkv", frames=15).path, Config(), chunks=2)
    assert plan is not None and len(plan.chunks) == 2


def test_mpeg_program_stream_is_not_cut_and_comes_back_whole_as_mkv(capsys, tmp_path):
    # An .mpg's decoded frames came out of a chunk's planned range: it runs as one piece.
    src = write_video(tmp_path / "old.mpg", codec="mpeg2video", audio=("mp2",), fps=25, frames=50).path
    assert plan_chunks(src, Config(), chunks=2) is None
    code = main([str(src), "--jobs", "2", "--chunk-seconds", "0.5", "--detection", "fast", "-q"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "old.anonymized.mkv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.anonymized.mkv", "old.mpg"]
    assert video_pts(out) == video_pts(src)


def test_chunks_that_cannot_be_joined_are_removed_for_the_next_run(border, workdir, detector):
    # A work folder left by an interrupted run whose finished chunks cannot be joined (here one
    # encoded at another CRF, as another version or a damaged file would leave): kept for a
    # resume, they failed every later run the same way.
    src, _ = border
    out = workdir / "out.mp4"
    config = Config(detect=DetectConfig(preset="fast"))
    plan = plan_chunks(src, config, chunk_seconds=2)
    assert plan is not None and len(plan.chunks) == 3
    work = WorkDir(out)
    work.start(src, config_key(config, out), plan)
    odd = dataclasses.replace(config, encode=dataclasses.replace(config.encode, crf=config.encode.crf + 9))
    for spec in plan.chunks:
        made = anonymize_chunk(src, spec, work.chunk_path(spec.index), odd if spec.index == 1 else config,
                               detector=detector)
        work.mark_done(ChunkResult(spec.index, made.frames, 0, made.seconds))
    options = ParallelOptions(executor="inline", chunk_seconds=2)

    results, _ = run_parallel([BatchItem(src, out)], config, options)
    (r,) = results
    assert r.status == "failed" and r.exit_code == 4, r
    assert "other settings" in r.message and "the next run makes them again" in r.message, r.message
    assert sorted(p.name for p in workdir.iterdir()) == [], "the chunks and the work folder go"

    results, info = run_parallel([BatchItem(src, out)], config, options)
    assert results[0].status == "done", results[0].message
    assert info.chunks == 3 and info.reused_chunks == 0
    assert video_pts(out) == video_pts(src) and audio_packets(out) == audio_packets(src)
