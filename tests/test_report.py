"""The audit sidecar: content, atomic replace, nothing on failure."""

from __future__ import annotations

import gc
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamguard.config import TrackConfig
from streamguard.errors import OutputError
from streamguard.lookahead import TrackStage
from streamguard.report import ReportWriter
from streamguard.types import Box, Detection, Frame, Region

IMG = np.zeros((48, 64, 3), np.uint8)


def frame(index: int, *regions: Region, damaged: bool = False) -> Frame:
    return Frame(IMG, index, pts=index * 512, time_base=Fraction(1, 15360), regions=regions, damaged=damaged)


def test_report_content(tmp_path: Path) -> None:
    path = tmp_path / "out.report.json"
    w = ReportWriter(path, input_path="in.mp4")
    w.add(frame(0, Region(Box(1.234, 2, 30, 40.5), "detection", 1, 0.91234)))
    w.add(frame(1))
    w.add(frame(2, Region(Box(0, 0, 5, 5), "backfill", 1, 0.5), Region(Box(9, 9, 20, 20), "prediction", 2),
                damaged=True))
    assert not path.exists(), "nothing under the final name before close"
    assert w.close(success=True) == path
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["input"] == "in.mp4"
    assert [f["index"] for f in data["frames"]] == [0, 1, 2]
    assert data["frames"][1] == {"index": 1, "time": pytest.approx(1 / 30, abs=1e-6), "regions": []}
    assert data["frames"][0]["regions"] == [
        {"box": [1.23, 2, 30, 40.5], "track_id": 1, "source": "detection", "score": 0.9123}
    ]
    assert data["frames"][2]["damaged"] is True
    assert data["summary"] == {"detection": 1, "prediction": 1, "backfill": 1, "motion": 0, "curtain": 0,
                               "gap": 0}
    assert os.listdir(tmp_path) == [path.name], "no temporary file left"
    assert w.close(success=True) == path  # idempotent


def test_nothing_written_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    w = ReportWriter(path)
    w.add(frame(0, Region(Box(0, 0, 1, 1))))
    assert w.close(success=False) is None
    assert os.listdir(tmp_path) == []


def test_failure_keeps_an_older_report(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), ReportWriter(path) as w:
        w.add(frame(0))
        raise RuntimeError("pipeline failed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]


def test_empty_run_and_dropped_writer(tmp_path: Path) -> None:
    ReportWriter(tmp_path / "empty.json").close(success=True)
    assert json.loads((tmp_path / "empty.json").read_text())["frames"] == []
    w = ReportWriter(tmp_path / "dropped.json")
    w.add(frame(0))
    del w
    gc.collect()
    assert os.listdir(tmp_path) == ["empty.json"], "a writer dropped without close leaves nothing"


def test_unwritable_folder_fails_early(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="missing"):
        ReportWriter(tmp_path / "missing" / "r.json")


def test_report_of_tracked_frames(tmp_path: Path) -> None:
    stage = TrackStage(TrackConfig(lookahead=0.1), fps=30)
    w = ReportWriter(tmp_path / "r.json", input_path="x")
    for i in range(10):
        dets = (Detection(Box(10, 10, 30, 30), 0.8),) if i in (3, 4) else ()
        for f in stage.process(Frame(IMG, i, detections=dets, detected=True)):
            w.add(f)
    for f in stage.flush():
        w.add(f)
    w.close(success=True)
    data = json.loads((tmp_path / "r.json").read_text())
    sources = [[r["source"] for r in f["regions"]] for f in data["frames"]]
    # lookahead 0.1 s at 30 fps: backfill reaches 3 frames before the first detection.
    assert sources[:6] == [["backfill"]] * 3 + [["detection"], ["detection"], ["prediction"]]
    assert data["frames"][0]["time"] is None  # no pts: the report does not invent times
    assert data["summary"]["detection"] == 2 and data["summary"]["backfill"] == 3
