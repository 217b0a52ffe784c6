"""End to end on real files: faces destroyed, everything else kept."""

from __future__ import annotations

import logging
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamguard import Config, EncodeConfig, TrackConfig, anonymize_video
from streamguard.types import Box

from .conftest import file_hash
from .corpus import face_picture
from .pixels import assert_destroyed, audio_packets, decode_rgb, outside_mask, video_pts


def test_faces_destroyed_and_rest_unchanged(face_clip, workdir, detector):
    src, gt = face_clip
    out = workdir / "out.mp4"
    before = file_hash(src)
    result = anonymize_video(src, out, detector=detector)
    assert result.output == out and out.exists()
    assert file_hash(src) == before, "input must never be touched"
    original, anonymized = decode_rgb(src), decode_rgb(out)
    assert len(anonymized) == len(original) == len(gt.frames)
    for i, (a, b, f) in enumerate(zip(original, anonymized, gt.frames, strict=True)):
        assert f.boxes, "every frame of this clip shows faces"
        for box in f.boxes:
            assert_destroyed(a, b, box, f"frame {i} box {box}")
        keep = outside_mask(a.shape[:2], list(f.boxes))
        diff = np.abs(a.astype(int) - b.astype(int))[keep].mean()
        assert diff < 4.0, f"frame {i}: background changed by {diff:.1f} on average"


def test_timestamps_frames_and_audio_kept(face_clip, workdir, detector):
    src, _ = face_clip
    out = workdir / "out.mp4"
    anonymize_video(src, out, detector=detector)
    assert video_pts(out) == video_pts(src)
    a_in, a_out = audio_packets(src), audio_packets(out)
    assert len(a_in) > 10
    assert a_out == a_in, "audio must be copied packet for packet, not re-encoded"
    with av.open(str(src)) as ci, av.open(str(out)) as co:
        vi, vo = ci.streams.video[0], co.streams.video[0]
        assert (vo.codec_context.width, vo.codec_context.height) == (
            vi.codec_context.width,
            vi.codec_context.height,
        )
        assert vo.average_rate == vi.average_rate
        assert vo.codec_context.name == "h264"
        assert vo.codec_context.pix_fmt == "yuv420p"
        # Video first, audio after, as in the input.
        assert [s.type for s in co.streams] == [s.type for s in ci.streams]


def test_variable_frame_rate_keeps_timestamps(vfr_clip, workdir, detector):
    src, gt = vfr_clip
    out = workdir / "out.mkv"
    anonymize_video(src, out, detector=detector)
    pts_in, pts_out = video_pts(src), video_pts(out)
    steps = np.diff(pts_in)
    assert steps.max() - steps.min() > 0.01, "fixture must really be variable frame rate"
    assert pts_out == pts_in
    assert audio_packets(out) == audio_packets(src)


def test_rotation_kept_and_faces_found_upright(rotated_clip, workdir, detector):
    src, gt = rotated_clip
    out = workdir / "out.mp4"
    anonymize_video(src, out, detector=detector)
    with av.open(str(out)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 90
    original, anonymized = decode_rgb(src), decode_rgb(out)
    for i in (0, len(original) // 2, len(original) - 1):
        for box in gt.frames[i].boxes:
            assert_destroyed(original[i], anonymized[i], box, f"rotated frame {i}")


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_output_passes_ffprobe(face_clip, workdir, detector):
    src, _ = face_clip
    out = workdir / "out.mp4"
    anonymize_video(src, out, detector=detector)
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-count_frames", "-of", "compact", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "codec_name=h264" in r.stdout and "codec_name=aac" in r.stdout


def test_metadata_dropped_unless_asked(face_clip, workdir, detector):
    src, _ = face_clip
    tagged = workdir / "tagged.mp4"
    with av.open(str(src)) as ci, av.open(str(tagged), "w") as co:
        co.metadata["location"] = "+48.8577+002.2950/"
        co.metadata["comment"] = "shot by device 1234"
        mapping = {s.index: co.add_stream_from_template(s) for s in ci.streams}
        for p in ci.demux():
            if p.dts is None:
                continue
            p.stream = mapping[p.stream.index]
            co.mux(p)
    out = workdir / "out.mp4"
    anonymize_video(tagged, out, detector=detector)
    with av.open(str(out)) as c:
        assert "location" not in c.metadata and "comment" not in c.metadata
    kept = workdir / "kept.mp4"
    anonymize_video(tagged, kept, Config(encode=EncodeConfig(keep_metadata=True)), detector=detector)
    with av.open(str(kept)) as c:
        assert c.metadata.get("location") == "+48.8577+002.2950/"


def test_existing_output_refused(face_clip, workdir, detector):
    from streamguard import OutputError

    src, _ = face_clip
    out = workdir / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        anonymize_video(src, out, detector=detector)
    assert out.read_bytes() == b"precious"
    anonymize_video(src, out, detector=detector, overwrite=True)
    assert out.stat().st_size > 1000


def test_no_temporary_files_left(face_clip, workdir, detector):
    src, _ = face_clip
    anonymize_video(src, workdir / "out.mp4", detector=detector)
    assert sorted(p.name for p in workdir.iterdir()) == ["out.mp4"]


def test_hold_zero_still_covers_detected_faces(face_clip, workdir, detector):
    src, gt = face_clip
    out = workdir / "out.mp4"
    anonymize_video(src, out, Config(track=TrackConfig(hold=0, lookahead=0)), detector=detector)
    original, anonymized = decode_rgb(src), decode_rgb(out)
    box: Box = gt.frames[10].boxes[0]
    assert_destroyed(original[10], anonymized[10], box)


def test_sample_media_is_bundled():
    here = Path(__file__).resolve().parent.parent / "sample_media"
    assert (here / "sample.mp4").stat().st_size < 3_000_000
    assert (here / "sample.json").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make a subtitled file")
def test_subtitles_dropped_unless_asked_then_copied_where_the_container_allows(face_clip, workdir, detector):
    # A drone's or dashcam's subtitle track says where it was, second by second.
    src, _ = face_clip
    srt = workdir / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,900\nGPS (2.2950, 48.8577, 19)\n\n"
                   "2\n00:00:01,000 --> 00:00:01,400\nGPS (2.2951, 48.8577, 19)\n")
    subbed = workdir / "subbed.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-i", str(srt), "-map", "0", "-map", "1",
                    "-c", "copy", "-c:s", "srt", str(subbed)], check=True)

    def subtitle_packets(path: Path) -> list[tuple[float, bytes]]:
        with av.open(str(path)) as c:
            return [
                (float(p.pts * p.time_base), bytes(p))
                for p in c.demux(c.streams.subtitles)
                if p.dts is not None
            ]

    out = workdir / "out.mkv"
    anonymize_video(subbed, out, detector=detector)
    with av.open(str(out)) as c:
        assert len(c.streams.subtitles) == 0
    assert audio_packets(out) == audio_packets(subbed)
    kept = workdir / "kept.mkv"
    anonymize_video(subbed, kept, Config(encode=EncodeConfig(keep_metadata=True)), detector=detector)
    assert len(subtitle_packets(subbed)) == 2
    assert subtitle_packets(kept) == subtitle_packets(subbed)
    assert audio_packets(kept) == audio_packets(subbed)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make a chaptered file")
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_chapter_marks_kept_their_titles_only_when_asked(face_clip, workdir, detector, suffix):
    src, _ = face_clip
    meta = workdir / "chapters.txt"
    meta.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=700\ntitle=At Jane Doe's house\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=700\nEND=1500\ntitle=Interview\n")
    chaptered = workdir / "chaptered.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-i", str(meta), "-map", "0",
                    "-map_chapters", "1", "-c", "copy", str(chaptered)], check=True)

    def chapters(path: Path) -> list[tuple[float, str | None]]:
        # Where each begins (an MP4's last chapter ends where its longest track does).
        with av.open(str(path)) as c:
            return [(round(float(ch["start"] * ch["time_base"]), 3), ch["metadata"].get("title"))
                    for ch in c.chapters()]

    assert chapters(chaptered) == [(0.0, "At Jane Doe's house"), (0.7, "Interview")]
    out = workdir / f"out{suffix}"
    anonymize_video(chaptered, out, detector=detector)
    assert [start for start, _ in chapters(out)] == [0.0, 0.7]
    assert not any(title for _, title in chapters(out)), "titles are metadata"
    kept = workdir / f"kept{suffix}"
    anonymize_video(chaptered, kept, Config(encode=EncodeConfig(keep_metadata=True)), detector=detector)
    assert chapters(kept) == chapters(chaptered)
    assert audio_packets(out) == audio_packets(chaptered)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make a two-camera file")
def test_a_second_video_track_is_not_written_and_that_is_said(face_clip, workdir, detector, caplog,
                                                              monkeypatch):
    # The command line's logging (set up by earlier tests) stops propagation to caplog's handler.
    monkeypatch.setattr(logging.getLogger("streamguard"), "propagate", True)
    src, gt = face_clip
    two = workdir / "two.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-i", str(src), "-map", "0", "-map", "1:v",
                    "-c", "copy", str(two)], check=True)
    out = workdir / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="streamguard"):
        anonymize_video(two, out, detector=detector)
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    assert len(decode_rgb(out)) == len(gt.frames)
    assert audio_packets(out) == audio_packets(two)
    assert "1 other track(s) not copied: a second video" in caplog.text


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None
    or "libxvid" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout,
    reason="ffmpeg CLI with libxvid needed",
)
def test_an_xvid_avi_with_packed_b_frames_is_whole_not_cut_off(face_clip, workdir, detector):
    # Xvid's AVI index counts empty "drop frame" chunks (its B-frame delay) that the demuxer
    # skips: 46 entries for 43 pictures here; a camcorder clip's 51 for 48 was refused as cut off.
    src, gt = face_clip
    avi = workdir / "camcorder.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:v", "libxvid", "-bf", "2", "-q:v", "3",
                    "-c:a", "mp3", str(avi)], check=True)
    with av.open(str(avi)) as c:
        declared = c.streams.video[0].frames
    original = decode_rgb(avi)
    assert declared - len(original) >= 3, "control: the index counts more than decode"
    out = workdir / "out.avi"
    anonymize_video(avi, out, detector=detector)
    anonymized = decode_rgb(out)
    assert len(anonymized) == len(original)
    for box in gt.frames[0].boxes:
        assert_destroyed(original[0], anonymized[0], box, "in the Xvid clip's first frame")
    assert audio_packets(out) == audio_packets(avi)


def test_a_repeated_timestamp_is_nudged_not_fatal(workdir, detector):
    # A muxer that stamped two frames alike: the encoder takes only increasing stamps, so the
    # second is timed one tick later; every other frame keeps its time, every face is covered.
    src, stamps = workdir / "repeat.mkv", [0, 1, 2, 2, 3, 4]
    pictures = []
    with av.open(str(src), "w") as out:
        s = out.add_stream("mjpeg", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuvj420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 10)
        for i, t in enumerate(stamps):
            pictures.append(face_picture(160, 120, i))
            vf = av.VideoFrame.from_ndarray(pictures[-1][0], format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                p.pts = p.dts = t
                out.mux(p)
    assert video_pts(src) == [0.0, 0.1, 0.2, 0.2, 0.3, 0.4]
    dst = workdir / "repeat.out.mkv"
    anonymize_video(src, dst, detector=detector)
    assert np.allclose(video_pts(dst), [0.0, 0.1, 0.2, 0.201, 0.3, 0.4]), video_pts(dst)
    for i, (ref, res) in enumerate(zip(decode_rgb(src), decode_rgb(dst), strict=True)):
        assert_destroyed(ref, res, pictures[i][1], f"frame {i}")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to trim a file")
def test_a_clip_trimmed_between_keyframes_is_processed_whole(face_clip, workdir, detector):
    # A trim without re-encoding (an editor's, or ffmpeg -ss -c copy) keeps the keyframe before
    # the cut and an edit list hiding the frames up to it: the index counts them, nobody sees them.
    src, _ = face_clip
    trimmed = workdir / "trimmed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "0.6", "-i", str(src), "-c", "copy", str(trimmed)],
                   check=True)
    shown = video_pts(trimmed)
    with av.open(str(trimmed)) as c:
        assert len(shown) < c.streams.video[0].frames * 0.98 - 1  # the index counts hidden frames
    out = workdir / "out.mp4"
    anonymize_video(trimmed, out, detector=detector)
    assert video_pts(out) == pytest.approx(shown, abs=1e-6)
    assert audio_packets(out) == audio_packets(trimmed)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to tag a file")
def test_colour_tags_and_pixel_shape_kept(face_clip, workdir, detector):
    # A phone's BT.709 clip, and PAL 16:9 stored in 4:3 pixels' worth of width: untagged, the
    # colours shift in players that assume BT.601 and the picture squashes to 4:3.
    src, _ = face_clip
    tagged = workdir / "tagged.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-vf", "setsar=64/45", "-c:v", "libx264",
                    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                    "-c:a", "copy", str(tagged)], check=True)
    out = workdir / "out.mp4"
    anonymize_video(tagged, out, detector=detector)

    def tags(path: Path) -> tuple[object, ...]:
        with av.open(str(path)) as c:
            cc = c.streams.video[0].codec_context
            return cc.color_primaries, cc.color_trc, cc.colorspace, cc.sample_aspect_ratio

    assert tags(tagged) == (1, 1, 1, Fraction(64, 45))
    assert tags(out) == tags(tagged)
    # And the values mean the same: the picture far from the faces decodes to the same colours.
    a, b = decode_rgb(tagged)[5], decode_rgb(out)[5]
    assert np.abs(a[:40, :40].astype(int) - b[:40, :40]).mean() < 3
