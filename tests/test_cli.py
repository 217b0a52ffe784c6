"""The command line: bad input gets one line naming the file, a distinct exit code, nothing left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from streamguard.cli import main

from .conftest import file_hash
from .corpus import _video
from .pixels import audio_packets, decode_rgb


def run_main(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _assert_one_line_error(err: str, path: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("streamguard: error: ") and str(path) in lines[0], lines[0]
    assert "Traceback" not in err


def _make_truncated(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("missing.mp4", None, "no such file"),
        ("adir.mp4", "dir", "no images or videos found"),
        ("empty.mp4", b"", "file is empty"),
        ("text.mp4", b"this is not a video, just some text\n" * 20, "cannot open"),
        # Fixed bytes: random ones are now and then probed as some audio format ("no video stream").
        ("random.mp4", random.Random(0).randbytes(4096), "cannot open"),
        ("photo.jpg", b"not a jpeg at all", "not a readable image"),
        ("truncated.mp4", "truncated", ""),
    ],
)
def test_bad_input(capsys, workdir, face_clip, name, make, expected):
    path = workdir / name
    if make == "dir":
        path.mkdir()
    elif make == "truncated":
        _make_truncated(face_clip[0], path)
    elif make is not None:
        path.write_bytes(make)
    before = file_hash(path) if path.is_file() else None
    code, err = run_main(capsys, str(path))
    assert code == 3, err
    _assert_one_line_error(err, path)
    assert expected in err
    if before is not None:
        assert file_hash(path) == before
    leftovers = [p.name for p in workdir.iterdir() if p.name != name]
    assert leftovers == [], f"output left behind: {leftovers}"


def test_a_cut_off_matroska_file_is_refused(capsys, workdir, vfr_clip):
    # Matroska has no frame index: libav stops quietly at the cut, and only the track's
    # DURATION tag says there should be more.
    path = workdir / "half.mkv"
    data = vfr_clip[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, err = run_main(capsys, str(path))
    assert code == 3, err
    _assert_one_line_error(err, path)
    assert "truncated" in err and "video ends at" in err
    assert [p.name for p in workdir.iterdir()] == ["half.mkv"]


def test_an_output_container_that_cannot_hold_the_audio_says_so(capsys, workdir):
    # Opus audio in a .mov: libav refuses the header only once the first packets come out.
    src = _video(codec="libvpx-vp9", audio=("libopus",))(workdir / "talk.webm").path
    out = workdir / "talk.mov"
    code, err = run_main(capsys, str(src), "-o", str(out), "--detection", "fast")
    assert code == 4, err
    _assert_one_line_error(err, out)
    assert "cannot hold its video with opus audio" in err and ".mkv" in err
    assert [p.name for p in workdir.iterdir()] == ["talk.webm"]


def test_aac_audio_goes_into_mpeg_ts_and_is_refused_by_webm(capsys, copy_of, face_clip):
    # MPEG-TS lists no codecs to libav's question yet holds H.264 and AAC; WebM truly cannot.
    src = copy_of(face_clip[0], "clip.mp4")
    ts = src.parent / "clip.ts"
    code, err = run_main(capsys, str(src), "-o", str(ts), "--detection", "fast", "-q")
    assert code == 0, err
    assert len(decode_rgb(ts)) == len(face_clip[1].frames)
    with av.open(str(ts)) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
    webm = src.parent / "clip.webm"
    code, err = run_main(capsys, str(src), "-o", str(webm), "--detection", "fast")
    assert code == 4, err
    _assert_one_line_error(err, webm)
    assert "cannot hold the input's aac audio" in err and ".mkv" in err
    assert sorted(p.name for p in src.parent.iterdir()) == ["clip.mp4", "clip.ts"]


def test_pcm_audio_copied_into_mp4_with_a_word_about_players(capsys, workdir):
    src = _video(audio=("pcm_s16le",))(workdir / "camera.mov").path
    out = workdir / "camera.mp4"
    code, err = run_main(capsys, str(src), "-o", str(out), "--detection", "fast")
    assert code == 0, err
    assert "pcm_s16le audio in an .mp4 plays in few players" in err
    assert audio_packets(out) == audio_packets(src)


def test_a_wmv_output_is_refused_and_the_wma_audio_goes_into_an_avi(capsys, workdir):
    # ASF shifts re-encoded frames' times by a frame; its WMA audio fits neither .mkv nor .mp4.
    src = _video(codec="wmv2", audio=("wmav2",), fps=25)(workdir / "old.wmv").path
    code, err = run_main(capsys, str(src), "--detection", "fast")
    assert code == 4, err
    _assert_one_line_error(err, workdir / "old.anonymized.wmv")
    assert "cannot keep every frame's time" in err
    code, err = run_main(capsys, str(src), "-o", str(workdir / "old.mkv"), "--detection", "fast")
    assert code == 4 and "cannot hold the input's wmav2 audio" in err and "choose a .avi output" in err, err
    assert [p.name for p in workdir.iterdir()] == ["old.wmv"]
    code, err = run_main(capsys, str(src), "-o", str(workdir / "old.avi"), "--detection", "fast", "-q")
    assert code == 0, err
    assert [(n, data) for n, _, data in audio_packets(workdir / "old.avi")] == [
        (n, data) for n, _, data in audio_packets(src)]


def test_existing_output_refused_without_overwrite(capsys, workdir, face_clip):
    out = workdir / "out.mp4"
    out.write_bytes(b"keep me")
    code, err = run_main(capsys, str(face_clip[0]), "-o", str(out))
    assert code == 4
    _assert_one_line_error(err, out)
    assert "already exists" in err and out.read_bytes() == b"keep me"


def test_output_that_is_the_input_refused_even_with_overwrite(capsys, copy_of, face_clip):
    src = copy_of(face_clip[0], "clip.mp4")
    before = src.read_bytes()
    for extra in ((), ("--overwrite",)):
        # The same file by another spelling of its path.
        code, err = run_main(capsys, str(src), "-o", str(src.parent / "." / "clip.mp4"), *extra)
        assert code == 4, err
        _assert_one_line_error(err, src)
        assert "would overwrite the input" in err
    assert src.read_bytes() == before
    assert [p.name for p in src.parent.iterdir()] == ["clip.mp4"]


def test_output_folder_missing(capsys, workdir, face_clip):
    out = workdir / "nope" / "out.mp4"
    code, err = run_main(capsys, str(face_clip[0]), "-o", str(out))
    assert code == 4
    _assert_one_line_error(err, out)


def test_video_default_output_name(capsys, copy_of, face_clip):
    src = copy_of(face_clip[0], "clip.mp4")
    code, err = run_main(capsys, str(src), "--quiet")
    assert code == 0, err
    assert err == ""
    assert (src.parent / "clip.anonymized.mp4").exists()


def test_output_gets_the_users_usual_permissions(capsys, copy_of, face_clip):
    src = copy_of(face_clip[0], "clip.mp4")
    old = os.umask(0o027)
    try:
        code, err = run_main(capsys, str(src), "--quiet", "--detection", "fast")
    finally:
        os.umask(old)
    assert code == 0, err
    # Not the 0600 of the temporary file it was written as.
    assert (src.parent / "clip.anonymized.mp4").stat().st_mode & 0o777 == 0o640


def test_bad_option_values_are_usage_errors(capsys, face_clip):
    for args in (["--threshold", "1.5"], ["--strength", "0"], ["--mode", "smear"], ["--crf", "99"]):
        with pytest.raises(SystemExit) as e:
            main([str(face_clip[0]), *args])
        assert e.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("hold, lookahead", [(None, 0.5), (0.2, 0.5), (0.0, 0.5), (1.5, 1.5)])
def test_a_longer_hold_holds_frames_back_as_long(hold, lookahead):
    # With a look-ahead shorter than the hold, an unseen face's cover grows as fast as live (no
    # held frames to bridge it to where the face is found again): hold 0.75 with the 0.5 s
    # look-ahead blurred 6.4x the real clips' faces' area around them, 2.9x with 0.75.
    from streamguard.cli import build_parser
    from streamguard.options import config_from_args

    args = ["in.mp4"] + ([] if hold is None else ["--hold", str(hold)])
    track = config_from_args(build_parser().parse_args(args)).track
    assert track.hold == (0.5 if hold is None else hold)
    assert track.ahead == lookahead


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "streamguard" in capsys.readouterr().out


def _long_clip(workdir: Path) -> Path:
    from streamguard import synth

    scene = synth.Scene(
        width=640,
        height=360,
        fps=30,
        duration=20,
        seed=5,
        faces=(synth.FaceTrack(0, 0, 20, ((0, 200, 180, 140), (20, 440, 180, 140))),),
    )
    path = workdir / "long.mp4"
    synth.write_clip(path, scene, crf=35)
    return path


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_cleans_up(workdir, sig, code):
    src = _long_clip(workdir)
    out = workdir / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamguard", str(src), "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    # Wait until encoding has begun (the temporary file exists), then interrupt.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".out.") for p in workdir.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "run ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["long.mp4"]


def test_disk_full_gives_one_line_and_no_file(workdir, face_clip):
    import resource

    def small_disk() -> None:
        # A file-size limit stands in for a full disk: writes past it fail with EFBIG.
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = workdir / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "streamguard", str(face_clip[0]), "-o", str(out), "--detection", "fast"],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == 4, proc.stderr
    _assert_one_line_error(proc.stderr, out)
    assert "file too large" in proc.stderr
    assert list(workdir.iterdir()) == []
