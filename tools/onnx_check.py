#!/usr/bin/env python3
"""Checks Twinhead's ONNX exports where users run them: `onnx.checker` (with
shape inference) accepts each file, and ONNX Runtime's outputs on Twinhead's
probe batch equal Twinhead's own (`export onnx --reference`):

- float outputs: the largest difference at most TOLERANCE (1e-4) times the
  output's largest magnitude;
- `seg_classes` (the argmax): at most 0.1 % of pixels differ (near-ties);
- a case with `"vs": LABEL` (the int8 model against its float original) also
  reports its relative L2 distance from that case's outputs, the quantization
  error, which must stay under 0.1.

It also times ONNX Runtime on the CPU at batch 1 beside `twinhead bench infer`
on the same checkpoint (median of 50 passes each, one after the other).

    python3 -m venv /tmp/onnx && /tmp/onnx/bin/pip install onnx onnxruntime numpy
    /tmp/onnx/bin/python tools/onnx_check.py MANIFEST.json [--bin target/debug/twinhead]

MANIFEST.json lists the cases, as tools/onnx_check.sh writes it:
[{"label", "onnx", "reference", "run", "checkpoint", "vs"?}]. Exit 0 when
every case agrees; otherwise prints what differs and exits 1.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4
ARGMAX_PIXELS = 1e-3
QUANTIZATION_L2 = 0.1
PASSES = 50


def read_reference(folder):
    folder = Path(folder)
    manifest = json.loads((folder / "reference.json").read_text())
    return {
        name: np.fromfile(folder / entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])
        for name, entry in manifest.items()
    }


def compare(name, got, want):
    """A problem text, or None, and the figure measured."""
    if got.shape != want.shape:
        return f"{name}: shape {got.shape}, Twinhead {want.shape}", None
    if want.dtype.kind == "i":
        differing = float(np.mean(got != want))
        problem = f"{name}: {differing:.2%} of pixels differ" if differing > ARGMAX_PIXELS else None
        return problem, differing
    scale = max(float(np.abs(want).max()), 1e-12)
    relative = float(np.abs(got.astype(np.float64) - want).max()) / scale
    problem = f"{name}: differs by {relative:.2e} of its largest value" if relative > TOLERANCE else None
    return problem, relative


def ort_latency(session, image):
    for _ in range(5):
        session.run(None, {"images": image})
    times = []
    for _ in range(PASSES):
        start = time.perf_counter()
        session.run(None, {"images": image})
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def twinhead_latency(binary, run, checkpoint):
    out = subprocess.run(
        [binary, "bench", "infer", "--run", run, "--checkpoint", checkpoint, "--batch", "1", "--passes", str(PASSES)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(re.search(r"latency\s+([0-9.]+) ms median", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--bin", help="the twinhead binary, for bench infer's latency beside ONNX Runtime's")
    args = parser.parse_args()
    cases = json.loads(Path(args.manifest).read_text())
    outputs_of = {}
    problems = []
    rows = []
    for case in cases:
        label = case["label"]
        model = onnx.load(case["onnx"])
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as error:  # the checker's own exceptions vary by version
            problems.append(f"{label}: onnx.checker: {error}")
            continue
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(case["onnx"], options, providers=["CPUExecutionProvider"])
        reference = read_reference(case["reference"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, {"images": reference["images"]})))
        outputs_of[label] = got
        figures = []
        for name in names:
            problem, figure = compare(name, got[name], reference[name])
            figures.append(f"{name} {figure:.1e}" if figure is not None else name)
            if problem:
                problems.append(f"{label}: {problem}")
        if "vs" in case and case["vs"] in outputs_of:
            base = outputs_of[case["vs"]]
            for name in ["det_cls_logits", "det_box_raw", "seg_logits"]:
                a, b = got[name].astype(np.float64), base[name].astype(np.float64)
                l2 = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))
                figures.append(f"{name} vs {case['vs']}: relative L2 {l2:.3f}")
                if l2 > QUANTIZATION_L2:
                    problems.append(f"{label}: {name} is {l2:.3f} (relative L2) from {case['vs']}'s")
        ort_ms = ort_latency(session, reference["images"][:1])
        ours_ms = twinhead_latency(args.bin, case["run"], case["checkpoint"]) if args.bin else None
        ops = len(model.graph.node)
        rows.append((label, ops, ort_ms, ours_ms))
        print(f"{label}: {ops} nodes, opset {model.opset_import[0].version}; " + "; ".join(figures))
    print()
    print(f"ONNX Runtime {ort.__version__} (CPU) vs twinhead bench infer, batch 1, median of {PASSES} passes:")
    print("| case | nodes | ONNX Runtime ms | Twinhead (burn) ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, ops, ort_ms, ours_ms in rows:
        ours = f"{ours_ms:.2f}" if ours_ms is not None else "–"
        ratio = f"{ours_ms / ort_ms:.2f}×" if ours_ms is not None else "–"
        print(f"| {label} | {ops} | {ort_ms:.2f} | {ours} | {ratio} |")
    for problem in problems:
        print("PROBLEM", problem)
    print(f"{len(cases)} case(s), {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
