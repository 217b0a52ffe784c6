"""BlazeFace on LiteRT: the models the mediapipe wheel ships, run without MediaPipe's graph.

MediaPipe's face detection solution wraps each model call in a calculator graph: packets
in, a hand-off to the graph's threads, image-to-tensor, inference, decoding and
non-maximum suppression as separate calculators, the result back as protobuf messages
turned into Python objects. On a model-sized tile that wrapping costs more than the
model: measured on this 2-core machine on a real 128 px tile, 4.1 ms per short-range
call and 8.9 ms per full-range call through the solution, against 1.5-2.0 and 5.7-6.2
ms for the same ``.tflite`` files invoked directly with LiteRT (Google's TFLite
runtime, ``ai-edge-litert``). The tiled detector makes hundreds of such calls per
frame, so this module runs the models directly and does the little decoding the
graph did, with the options of MediaPipe's ``face_detection*.pbtxt`` graphs:

* input: the image letterboxed into the model's square (black border), values in [-1, 1];
* SSD anchors on fixed-size grids (short-range: 16x16 x 2 and 8x8 x 6 = 896; full-range:
  48x48 x 1 = 2304), each raw box an offset from its anchor's centre in input pixels;
* scores: raw logits clipped to +-100, then a sigmoid;
* weighted non-maximum suppression (IoU > 0.3): each kept face is the score-weighted mean
  of the boxes it suppressed, which steadies boxes from frame to frame.

``tests/test_blazeface.py`` checks the result against MediaPipe's own solution on real faces.
The model files are only located inside the installed mediapipe package; importing
mediapipe itself (tens of MB of graph machinery) is not needed.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError
from ..types import Box, Detection

__all__ = ["ModelSpec", "MODELS", "BlazeFace", "model_path"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One BlazeFace model as MediaPipe's graph runs it."""

    file: str
    #: Square input side in pixels.
    size: int
    #: SSD layer strides; layers with the same stride share one grid.
    strides: tuple[int, ...]
    #: Anchors per layer: the aspect ratio 1.0 one, plus an interpolated-scale one if set.
    per_layer: int


MODELS: dict[str, ModelSpec] = {
    "short": ModelSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": ModelSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1),
}

#: Each model's own minimum score (MediaPipe's graphs: min_score_thresh).
DEFAULT_THRESHOLD = {"short": 0.5, "full": 0.6}
#: Raw logits are clipped to this before the sigmoid (MediaPipe's score_clipping_thresh).
SCORE_CLIP = 100.0
#: Boxes overlapping a kept one by more than this IoU are merged into it.
NMS_IOU = 0.3


def model_path(name: str) -> Path:
    """Where the installed mediapipe wheel keeps model ``name`` ("short" or "full")."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("mediapipe is not installed: it ships the BlazeFace models "
                         "(pip install mediapipe==0.10.21)")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "modules" / "face_detection" / MODELS[name].file
    if not path.is_file():
        raise ModelError(f"{path}: BlazeFace model missing (mediapipe 0.10.21 ships it; "
                         "later releases do not)")
    return path


@cache
def _anchors(name: str) -> np.ndarray:
    """Anchor centres (N x 2, x and y as fractions of the input), in the model's output order."""
    spec = MODELS[name]
    out = []
    i = 0
    while i < len(spec.strides):
        stride, n = spec.strides[i], 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            n, i = n + spec.per_layer, i + 1
        cells = math.ceil(spec.size / stride)
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray,
                  eyes: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Merge overlapping boxes (x1 y1 x2 y2) into their score-weighted mean, best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, eyes = boxes[order], scores[order], eyes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    kept = []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        b = boxes[i]
        iw = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        group = left & ((iou > NMS_IOU) | (np.arange(len(boxes)) == i))
        w = scores[group] / scores[group].sum()
        kept.append((w @ boxes[group], float(scores[i]), w @ eyes[group]))
        left &= ~group
    return kept


class BlazeFace:
    """One BlazeFace model in its own LiteRT interpreter (one caller at a time)."""

    def __init__(self, model: str = "full", threshold: float | None = None) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be 'full' or 'short', got {model!r}")
        path = model_path(model)
        try:
            from ai_edge_litert.interpreter import Interpreter

            # One thread: streamguard runs several interpreters on threads of its own (calls
            # release the GIL), which beats splitting one small call over cores.
            self._interpreter = Interpreter(model_path=os.fspath(path), num_threads=1)
            self._interpreter.allocate_tensors()
        except Exception as e:  # ImportError, or a model the runtime cannot load
            raise ModelError(f"cannot load the BlazeFace {model}-range model ({path}): {e}") from e
        self.model = model
        threshold = DEFAULT_THRESHOLD[model] if threshold is None else threshold
        self.threshold = threshold
        self.spec = MODELS[model]
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda o: o["shape"][-1])
        self._scores, self._raw = outputs[0]["index"], outputs[1]["index"]  # (1, N, 1), (1, N, 16)
        self._anchors = _anchors(model)
        self._min_logit = math.log(threshold / (1 - threshold))
        self._tensor = np.zeros((1, self.spec.size, self.spec.size, 3), np.float32)

    def detect_rolled(self, image: np.ndarray) -> list[tuple[Detection, float]]:
        """Faces in an RGB uint8 image, boxes in its pixels, each with its roll in degrees
        (the eye line's angle, y down), best first."""
        return self.detect_peak(image)[0]

    def detect_peak(self, image: np.ndarray,
                    min_score: float | None = None) -> tuple[list[tuple[Detection, float]], float]:
        """:meth:`detect_rolled`, and the best score any anchor had, found or not: how face-like
        the most face-like spot of the image looked to the model. ``min_score`` replaces the
        model's threshold for this call."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return [], 0.0
        size = self.spec.size
        # MediaPipe's letterbox: the image's centre square of side max(w, h), corners mapped to
        # the tensor's corners, bilinear, black beyond the image (the model was tuned on this).
        side = max(w, h)
        x0, y0 = (w - side) / 2, (h - side) / 2
        if (w, h) != (size, size):
            k = size / side
            m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], np.float64)
            image = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        t = self._tensor
        np.multiply(image, 2 / 255, out=t[0], casting="unsafe")
        t -= 1.0
        self._interpreter.set_tensor(self._input, t)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        # Scores are sigmoid(clip(logit)); the threshold's logit lies inside the clip range, so
        # only the rows kept need clipping (np.clip over all 896-2304 cost ~50 us a call).
        peak = float(1 / (1 + math.exp(-min(max(float(logits.max()), -SCORE_CLIP), SCORE_CLIP))))
        # sigmoid(x) >= p  <=>  x >= logit(p): filter before any arithmetic on 896-2304 rows.
        min_logit = self._min_logit if min_score is None else math.log(min_score / (1 - min_score))
        hit = np.flatnonzero(logits >= min_logit)
        if not len(hit):
            return [], peak
        raw = self._interpreter.get_tensor(self._raw)[0, hit]
        scores = 1 / (1 + np.exp(-np.clip(logits[hit], -SCORE_CLIP, SCORE_CLIP)))
        anchors = self._anchors[hit]
        centre = raw[:, 0:2] / size + anchors
        half = raw[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        eyes = raw[:, 4:8] / size + np.tile(anchors, 2)  # right eye x y, left eye x y
        found = []
        for b, score, e in _weighted_nms(boxes, scores, eyes):
            # Input fractions -> image pixels, undoing the letterbox.
            x1, y1, x2, y2 = b * side + [x0, y0, x0, y0]
            box = Box(float(x1), float(y1), float(x2), float(y2))
            if box.is_empty():
                continue
            roll = math.degrees(math.atan2((e[3] - e[1]) * size, (e[2] - e[0]) * size))
            found.append((Detection(box=box, score=score), roll))
        return found, peak

    def close(self) -> None:
        self._interpreter = None  # type: ignore[assignment]
