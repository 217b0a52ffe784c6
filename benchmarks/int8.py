"""Would 8-bit BlazeFace be faster? The shipped models, quantized here, timed against themselves.

    python benchmarks/int8.py [--calibration N] [--runs N]

The mediapipe wheel's models keep their weights as float16 (decoded by DEQUANTIZE ops at load)
and the full-range one as sparse tensors (DENSIFY). This script bakes those into plain float32
constants (values read from LiteRT's own decoding, so the graph computes the same numbers), folds
each RELU into the operation before it, quantizes weights and activations to int8 with LiteRT's
post-training calibration (``ai_edge_litert``'s calibration wrapper, the one TensorFlow's
converter uses) on tiles cut from real frames, and times one call of each model on one thread,
float against int8, on the same tiles. It also prints how often the int8 model's best score in a
tile lands on the other side of the model's threshold from the float one's. Nothing is written
into the package: it is a measurement.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamguard.detect.blazeface import DEFAULT_THRESHOLD, MODELS, model_path  # noqa: E402

HERE = Path(__file__).resolve().parent
CLIPS = [HERE / "out" / "real" / "media" / f"{c}.mp4" for c in ("towncentre", "people-walking", "dance")]
SAMPLE = HERE.parent / "sample_media" / "sample.mp4"


def _litert():  # imported late: the tools pull in flatbuffers and the schema
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, Interpreter, OpResolverType, flatbuffer_utils


def tiles(size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` model inputs ([-1, 1], 1 x size x size x 3) cut from real frames at the sweep's scales."""
    frames = []
    for clip in [c for c in CLIPS if c.exists()] or [SAMPLE]:
        with av.open(str(clip)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 40 == 0:
                    frames.append(f.to_ndarray(format="rgb24"))
                if i > 400:
                    break
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        frame = frames[rng.integers(len(frames))]
        s = float(rng.choice([1.0, 0.9, 0.5, 0.25]))
        img = cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s != 1 else frame
        img = cv2.copyMakeBorder(img, 0, max(0, size - img.shape[0]), 0, max(0, size - img.shape[1]),
                                 cv2.BORDER_REFLECT_101)
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        out.append((img[y:y + size, x:x + size].astype(np.float32) * (2 / 255) - 1)[None])
    return out


def float32_model(name: str) -> bytes:
    """The shipped model with its float16/sparse weights baked into float32 and RELUs folded."""
    schema, Interpreter, OpResolverType, fu = _litert()
    path = str(model_path(name))
    model = fu.read_model(path)
    graph = model.subgraphs[0]
    codes = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}

    def op_name(op) -> str:
        c = model.operatorCodes[op.opcodeIndex]
        return codes[max(c.builtinCode, c.deprecatedBuiltinCode)]

    # LiteRT's reference kernels decode the weights; read every tensor after one run.
    ref = Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ref.allocate_tensors()
    inp = ref.get_input_details()[0]
    ref.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    ref.invoke()

    def constant(i: int) -> bool:
        return bool(graph.tensors[i].buffer) and model.buffers[graph.tensors[i].buffer].data is not None

    changed = True
    while changed:  # DENSIFY feeds DEQUANTIZE: fold until nothing is left to fold
        changed, kept = False, []
        for op in graph.operators:
            if op_name(op) in ("DEQUANTIZE", "DENSIFY") and all(constant(i) for i in op.inputs):
                buf = schema.BufferT()
                buf.data = np.frombuffer(ref.get_tensor(op.outputs[0]).astype(np.float32).tobytes(), np.uint8)
                model.buffers.append(buf)
                graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
                changed = True
            else:
                kept.append(op)
        graph.operators = kept
    # A separate int8 RELU would split XNNPACK's graph into a partition per RELU.
    producer = {o: op for op in graph.operators for o in op.outputs}
    uses = collections.Counter(i for op in graph.operators for i in op.inputs)
    kept = []
    for op in graph.operators:
        src = producer.get(op.inputs[0])
        if (op_name(op) == "RELU" and src is not None and uses[op.inputs[0]] == 1
                and op_name(src) in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD")
                and src.builtinOptions.fusedActivationFunction == schema.ActivationFunctionType.NONE):
            src.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
            src.outputs[0] = op.outputs[0]
        else:
            kept.append(op)
    graph.operators = kept
    used = sorted({op.opcodeIndex for op in graph.operators})
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in graph.operators:
        op.opcodeIndex = used.index(op.opcodeIndex)
    return bytes(fu.convert_object_to_bytearray(model))


def int8_model(float_model: bytes, calibration: list[np.ndarray]) -> bytes:
    """Weights and activations in int8 (float input and output), calibrated on ``calibration``."""
    from ai_edge_litert import _pywrap_tensorflow_lite_calibration_wrapper as calibrator

    c = calibrator.CalibrationWrapper(float_model, [], [])
    c.Prepare([list(calibration[0].shape)])
    for x in calibration:
        c.FeedTensor([x])
    f32, i8, i32 = (np.dtype(t).num for t in (np.float32, np.int8, np.int32))
    return bytes(c.QuantizeModel(f32, f32, False, i8, i32, False, False))


def timed(model: bytes, inputs: list[np.ndarray], runs: int) -> tuple[float, list[float], int]:
    """(ms a call, best score per input, XNNPACK partitions) on one thread."""
    _, Interpreter, _, _ = _litert()
    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    scores = min(it.get_output_details(), key=lambda o: o["shape"][-1])["index"]
    parts = sum(1 for o in it._get_ops_details() if o["op_name"] == "DELEGATE")
    peaks = []
    for x in inputs:
        it.set_tensor(index, x)
        it.invoke()
        peaks.append(float(1 / (1 + np.exp(-np.clip(it.get_tensor(scores).max(), -100, 100)))))
    t0 = time.perf_counter()
    for k in range(runs):
        it.set_tensor(index, inputs[k % len(inputs)])
        it.invoke()
    return (time.perf_counter() - t0) / runs * 1000, peaks, parts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration", type=int, default=200, help="tiles to calibrate on")
    ap.add_argument("--runs", type=int, default=600, help="timed calls per model")
    a = ap.parse_args(argv)
    for name, spec in MODELS.items():
        data = tiles(spec.size, a.calibration + 100)
        calibration, test = data[:a.calibration], data[a.calibration:]
        f32 = float32_model(name)
        i8 = int8_model(f32, calibration)
        rows = {}
        for label, model in (("shipped", model_path(name).read_bytes()), ("float32", f32), ("int8", i8)):
            timed(model, test[:10], 50)  # warm up
            rows[label] = timed(model, test, a.runs)
        t = DEFAULT_THRESHOLD[name]
        flips = sum((p >= t) != (q >= t) for p, q in zip(rows["shipped"][1], rows["int8"][1], strict=True))
        diff = np.abs(np.array(rows["shipped"][1]) - np.array(rows["int8"][1]))
        print(f"{name}-range ({spec.size} px): " + ", ".join(
            f"{k} {ms:.2f} ms ({parts} XNNPACK partition{'s' if parts != 1 else ''})"
            for k, (ms, _, parts) in rows.items())
            + f"; int8 best tile score off by {diff.mean():.3f} on average (max {diff.max():.3f}), "
              f"{flips} of {len(test)} tiles on the other side of {t}")


if __name__ == "__main__":
    main()
