#!/usr/bin/env python3
"""Reads a run's TensorBoard log back with TensorBoard's own reader and checks
it against the run's metrics.jsonl: every scalar equal (as float32), each step
once per tag, every image a PNG of the size its summary states.

    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard
    /tmp/tb/bin/python tools/tensorboard_check.py runs/quick [runs/other ...]

Exit 0 when every run agrees; otherwise prints what differs and exits 1.
"""

import json
import struct
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import (
    IMAGES,
    SCALARS,
    EventAccumulator,
)


def expected_scalars(run):
    """tag -> [(step, value)] from metrics.jsonl, mapped as docs/training.md says."""
    want = defaultdict(list)
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill; the reader skips it too
        step = event.get("step")
        kind = event["event"]
        if kind == "step":
            for key, tag in [("det_loss", "loss/det"), ("seg_loss", "loss/seg"), ("penalty", "loss/penalty")]:
                if event.get(key) is not None:
                    want[tag].append((step, event[key]))
            want["train/lr"].append((step, event["lr"]))
            want["train/images_per_sec"].append((step, event["images_per_sec"]))
            memory = event.get("device_memory")
            if memory:
                want["device/memory_in_use_mib"].append((step, memory["in_use"] / 2**20))
                want["device/memory_reserved_mib"].append((step, memory["reserved"] / 2**20))
        elif kind == "eval":
            for key, tag in [
                ("map50", "eval/map50"),
                ("miou", "eval/miou"),
                ("pixel_acc", "eval/pixel_acc"),
                ("det_forgetting", "forgetting/det"),
                ("seg_forgetting", "forgetting/seg"),
            ]:
                want[tag].append((step, event[key]))
            for key, value in (event.get("conflict") or {}).items():
                want[f"conflict/{key}"].append((step, value))
            for group, key in [("ap50", "det_per_class"), ("iou", "seg_per_class")]:
                for name, value in event[key].items():
                    if value is not None:
                        want[f"{group}/{name}"].append((step, value))
    return want


def png_size(data):
    """(width, height) of a PNG, after checking its signature and inflating its pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    zlib.decompress(idat)
    return width, height


def check(run):
    problems = []
    logdir = run / "tensorboard"
    acc = EventAccumulator(str(logdir), size_guidance={SCALARS: 0, IMAGES: 0})
    acc.Reload()
    tags = acc.Tags()
    want = expected_scalars(run)
    for tag, points in sorted(want.items()):
        if tag not in tags["scalars"]:
            problems.append(f"{tag}: missing")
            continue
        got = [(s.step, s.value) for s in acc.Scalars(tag)]
        expected = [(step, float(np.float32(v))) for step, v in points]
        if got != expected:
            problems.append(f"{tag}: {len(got)} points differ from metrics.jsonl's {len(expected)} (first: {got[:2]} vs {expected[:2]})")
    extra = set(tags["scalars"]) - set(want)
    if extra:
        problems.append(f"tags not in metrics.jsonl: {sorted(extra)[:5]}")
    images = 0
    for tag in tags["images"]:
        steps = [image.step for image in acc.Images(tag)]
        if len(steps) != len(set(steps)):
            problems.append(f"{tag}: a step twice")
        for image in acc.Images(tag):
            if png_size(image.encoded_image_string) != (image.width, image.height):
                problems.append(f"{tag} step {image.step}: PNG size differs from the summary's")
            images += 1
    points = sum(len(v) for v in want.values())
    print(f"{run}: {len(want)} scalar tags, {points} points, {images} images; {len(problems)} problem(s)")
    for problem in problems:
        print(f"  {problem}")
    return not problems


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ok = all([check(Path(run)) for run in sys.argv[1:]])
    sys.exit(0 if ok else 1)
