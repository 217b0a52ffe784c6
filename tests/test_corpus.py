"""Issue 8: every file of the bad-input corpus is either anonymized correctly or refused cleanly.

Refused: one line naming the file, the documented exit code, nothing left behind,
the input untouched. Processed: the output opens, every face is destroyed, frames,
timestamps and audio packets are the input's. Never a traceback, never exit 0 with
a broken or partial output.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from streamguard import Config, anonymize_file
from streamguard.cli import main
from streamguard.errors import StreamguardError
from streamguard.images import IMAGE_SUFFIXES

from .conftest import file_hash
from .corpus import CASES, Case, Made
from .pixels import assert_destroyed, audio_packets, decode_rgb, video_pts


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


_made: dict[str, Made] = {}


def _get(case: Case, corpus_dir: Path) -> Made:
    if case.name not in _made:
        _made[case.name] = case.make(corpus_dir / case.name)
    return _made[case.name]


def _params() -> list[object]:
    out = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _input_pts(made: Made) -> list[float]:
    if not made.damaged:
        return video_pts(made.path)
    # A damaged input cannot be decoded through by the test helper: its packets say when frames are.
    with av.open(str(made.path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.pts is not None)


def _check_processed(made: Made, out: Path) -> None:
    src = made.path
    assert out.exists(), "no output"
    if _is_image(src):
        with Image.open(out) as im:
            assert "exif" not in im.info and not im.getexif(), "EXIF must not be written"
            result = np.asarray(im.convert("RGB"))
        ref = made.reference[0]
        assert result.shape == ref.shape
        for box in made.boxes[0]:
            assert_destroyed(ref, result, box, src.name)
        data = out.read_bytes()
        assert data.count(b"\xff\xd8\xff") <= 1, "an embedded thumbnail was written"
        return
    if made.even_fps:
        stamps = video_pts(src)
        assert stamps != sorted(stamps), "the case must carry the shuffled stamps it is about"
        want = [i / made.even_fps for i in range(len(stamps))]  # the times it was written with
        assert np.allclose(video_pts(out), want, atol=1e-3), video_pts(out)
    else:
        assert video_pts(out) == _input_pts(made), "frame count or timestamps changed"
    if out.suffix == src.suffix:
        assert audio_packets(out) == audio_packets(src), "audio not copied packet for packet"
    else:
        # Another container: the same packets, their times to its precision (Matroska: 1 ms).
        got, want = audio_packets(out), audio_packets(src)
        assert [(n, data) for n, _, data in got] == [(n, data) for n, _, data in want]
        assert np.allclose([t for _, t, _ in got], [t for _, t, _ in want], atol=1e-3)
    with av.open(str(src)) as ci, av.open(str(out)) as co:
        assert len(co.streams.audio) == len(ci.streams.audio)
        # Exactly the one (anonymized) picture stream: no cover art or thumbnail copied raw.
        assert len(co.streams.video) == 1, [s.codec_context.name for s in co.streams.video]
        if not made.damaged:
            assert next(co.decode(video=0)).rotation == next(ci.decode(video=0)).rotation
    result = decode_rgb(out)
    assert made.reference is not None and len(result) == len(made.reference) == len(made.boxes)
    for i, (ref, res, boxes) in enumerate(zip(made.reference, result, made.boxes, strict=True)):
        for box in boxes:
            assert_destroyed(ref, res, box, f"{src.name} frame {i}")


def _check_refused(made: Made, before: str, err_line: str, case: Case, folder: Path, names: set[str]) -> None:
    assert str(made.path) in err_line, err_line
    assert case.error in err_line, err_line
    assert file_hash(made.path) == before, "input was modified"
    left = {p.name for p in folder.iterdir()} - names
    assert not left, f"output left behind: {left}"


def _private_copy(made: Made, tmp_path: Path) -> Made:
    dst = tmp_path / made.path.name
    shutil.copyfile(made.path, dst)
    return dataclasses.replace(made, path=dst)


def _out(case: Case, made: Made) -> Path:
    suffix = case.out_suffix or made.path.suffix
    return made.path.with_name(f"{made.path.stem}.out{suffix}")


@pytest.mark.parametrize("case", _params())
def test_cli(case, corpus_dir, tmp_path, capsys):
    made = _private_copy(_get(case, corpus_dir), tmp_path)
    before = file_hash(made.path)
    names = {p.name for p in tmp_path.iterdir()}
    out = _out(case, made)
    code = main([str(made.path), "-o", str(out), "--detection", "fast", "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if case.expect == "ok":
        assert code == 0, err
        _check_processed(made, out)
    else:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("streamguard: error: "), err
        assert code == case.expect, err
        _check_refused(made, before, lines[0], case, tmp_path, names)


@pytest.mark.parametrize("case", _params())
def test_api(case, corpus_dir, tmp_path, detector):
    made = _private_copy(_get(case, corpus_dir), tmp_path)
    before = file_hash(made.path)
    names = {p.name for p in tmp_path.iterdir()}
    out = _out(case, made)
    if case.expect == "ok":
        result = anonymize_file(made.path, out, Config(), detector=detector)
        assert result.output == out
        if made.damaged:
            assert result.damaged_frames >= len(made.damaged)
        _check_processed(made, out)
    else:
        with pytest.raises(StreamguardError) as e:
            anonymize_file(made.path, out, Config(), detector=detector)
        assert e.value.exit_code == case.expect
        assert "\n" not in str(e.value)
        _check_refused(made, before, str(e.value), case, tmp_path, names)
