#!/usr/bin/env python3
"""Checks `twinhead submit track1` against the way the CVPR23 Track1 evaluator
reads a submission, on a three-task run trained on the synthetic sets.

It lays the synthetic validation splits out as a Track1 data folder (cls/,
dec/, seg/, each with a test.txt), writes the submission, and then:

- seg: rebuilds every mask from its polygons as the evaluator does
  (`cv2.fillPoly` of each class's polygons of more than two points, class by
  class in key order) and compares it with Twinhead's own predicted mask
  (`predict --format png`): the share of equal pixels (at least 99.5 %), and
  the mIoU of both against the ground truth (within 0.005);
- dec: scores the results with pycocotools against the ground truth of
  `data export-coco` (image ids renumbered to the lines of dec/test.txt), and
  the same boxes with `eval det --metric coco`: AP@[.5:.95] and AP50 equal to 1e-4;
- cls: top-1 of the submission's classes against the list's labels, equal to
  `eval --run`'s top-1 (same crops, same network).

    python3 -m venv /tmp/t1 && /tmp/t1/bin/pip install opencv-python-headless pycocotools numpy
    /tmp/t1/bin/python tools/track1_check.py --bin target/debug/twinhead --run RUN --synth DIR

DIR is the run's synthetic folder (voc/, ade/, cls/). Run it from the folder
the run was trained in (its configuration's relative paths resolve there).
Exit 0 when every check passes; prints each figure.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

PIXEL_AGREEMENT = 0.995
MIOU_TOLERANCE = 0.005
AP_TOLERANCE = 1e-4


def run(bin_path, *args):
    result = subprocess.run([str(bin_path), *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"twinhead {' '.join(map(str, args[:2]))} failed:\n{result.stderr}")
    return result.stdout


def layout(synth, out):
    """The synthetic validation splits as a Track1 data folder; returns the image lists."""
    lists = {}
    cls_lines = (synth / "cls" / "val.txt").read_text().split()
    lists["cls"] = [(synth / "cls" / "images" / name, int(label)) for name, label in zip(cls_lines[::2], cls_lines[1::2])]
    ids = (synth / "voc" / "ImageSets" / "Main" / "val.txt").read_text().split()
    lists["dec"] = [synth / "voc" / "JPEGImages" / f"{i}.jpg" for i in ids]
    lists["seg"] = sorted((synth / "ade" / "images" / "validation").glob("*.jpg"))
    for task, items in lists.items():
        (out / task).mkdir(parents=True)
        paths = [item[0] if isinstance(item, tuple) else item for item in items]
        (out / task / "test.txt").write_text("".join(f"{p}\n" for p in paths))
    return lists


def confusion(truth, pred, classes):
    """[truth][pred] over ground-truth labels 1..classes (ADE: 0 unlabelled), pred labels 0..classes."""
    keep = truth > 0
    t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
    return np.bincount(t * (classes + 1) + p, minlength=(classes + 1) ** 2).reshape(classes + 1, classes + 1)


def miou(matrix):
    ious = []
    for c in range(1, matrix.shape[0]):
        inter = matrix[c, c]
        union = matrix[c, :].sum() + matrix[1:, c].sum() - inter
        if union > 0:
            ious.append(inter / union)
    return float(np.mean(ious))


def check_seg(bin_path, args, submission, lists, work, classes):
    paths = lists["seg"]
    run(bin_path, "predict", "--run", args.run, "--format", "png", "--out", work / "pred", *paths)
    equal = total = 0
    rebuilt_cm = np.zeros((classes + 1, classes + 1), np.int64)
    twin_cm = np.zeros_like(rebuilt_cm)
    entries = {name: polygons for entry in submission["seg"] for name, polygons in entry.items()}
    for path in paths:
        ours = cv2.imread(str(work / "pred" / "masks" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        truth = cv2.imread(str(args.synth / "ade" / "annotations" / "validation" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        polygons = entries[f"{path.stem}.png"]
        assert list(polygons) == [str(c) for c in range(classes)], f"{path.stem}: keys {list(polygons)}"
        mask = np.full(ours.shape, 255, np.uint8)
        for key, polys in polygons.items():
            kept = [np.array(p, np.int32) for p in polys if len(p) > 2]
            if kept:
                cv2.fillPoly(mask, kept, int(key))
        # Twinhead's PNGs are ADE-encoded: class c is c + 1, 0 where nothing was predicted.
        ours_ids = np.where(ours > 0, ours.astype(np.int64) - 1, 255)
        equal += int((mask == ours_ids).sum())
        total += mask.size
        rebuilt_ade = np.where(mask == 255, 0, mask.astype(np.int64) + 1)
        rebuilt_cm += confusion(truth, rebuilt_ade, classes)
        twin_cm += confusion(truth, ours, classes)
    agreement = equal / total
    m_rebuilt, m_twin = miou(rebuilt_cm), miou(twin_cm)
    print(f"seg: {len(paths)} images, {agreement * 100:.3f} % of pixels as Twinhead predicted them; "
          f"mIoU {m_rebuilt:.4f} rebuilt, {m_twin:.4f} Twinhead's (difference {abs(m_rebuilt - m_twin):.4f})")
    return agreement >= PIXEL_AGREEMENT and abs(m_rebuilt - m_twin) <= MIOU_TOLERANCE


def check_dec(bin_path, args, submission, lists, work):
    gt_path = work / "gt.json"
    run(bin_path, "data", "export-coco", "--voc", args.synth / "voc", "--split", "val", "--out", gt_path)
    gt = json.loads(gt_path.read_text())
    line_of = {p.name: i + 1 for i, p in enumerate(lists["dec"])}
    voc_id = {line_of[img["file_name"]]: Path(img["file_name"]).stem for img in gt["images"]}
    renumber = {img["id"]: line_of[img["file_name"]] for img in gt["images"]}
    for img in gt["images"]:
        img["id"] = renumber[img["id"]]
    for ann in gt["annotations"]:
        ann["image_id"] = renumber[ann["image_id"]]
    (work / "gt_lines.json").write_text(json.dumps(gt))
    coco = COCO(str(work / "gt_lines.json"))
    evaluation = COCOeval(coco, coco.loadRes(submission["dec"]), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    ap, ap50 = evaluation.stats[0], evaluation.stats[1]
    # The same boxes in Twinhead's prediction format (VOC ids and corners), scored by `eval det --metric coco`.
    names = {c["id"]: c["name"] for c in gt["categories"]}
    boxes = [{"image_id": voc_id[d["image_id"]], "category": names[d["category_id"]],
              "bbox": [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]],
              "score": d["score"]} for d in submission["dec"]]
    (work / "boxes.json").write_text(json.dumps(boxes))
    ours = json.loads(run(bin_path, "eval", "det", "--voc", args.synth / "voc", "--split", "val",
                          "--pred", work / "boxes.json", "--metric", "coco", "--json"))
    our_ap, our_ap50 = ours["map"], ours["ap50"]
    print(f"dec: {len(submission['dec'])} boxes; pycocotools AP {ap:.6f} AP50 {ap50:.6f}, "
          f"eval det --metric coco AP {our_ap:.6f} AP50 {our_ap50:.6f}")
    return abs(ap - our_ap) <= AP_TOLERANCE and abs(ap50 - our_ap50) <= AP_TOLERANCE


def check_cls(bin_path, args, submission, lists):
    predicted = {name: label for entry in submission["cls"] for name, label in entry.items()}
    right = sum(predicted[path.name] == label for path, label in lists["cls"])
    top1 = right / len(lists["cls"])
    report = json.loads(run(bin_path, "eval", "--run", args.run, "--json"))
    theirs = report["cls"]["top1"]
    print(f"cls: {len(predicted)} images, top-1 {top1:.4f} from the submission, {theirs:.4f} from eval --run")
    return len(predicted) == len(lists["cls"]) and abs(top1 - theirs) <= 1e-9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=Path("target/debug/twinhead"))
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--synth", type=Path, required=True)
    args = parser.parse_args()
    args.bin, args.run, args.synth = args.bin.resolve(), args.run.resolve(), args.synth.resolve()
    state = json.loads((args.run / "checkpoints" / "last" / "state.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lists = layout(args.synth, work / "track1")
        run(args.bin, "submit", "track1", "--run", args.run, "--data", work / "track1", "--out", work / "submission.json")
        submission = json.loads((work / "submission.json").read_text())
        assert list(submission) == ["cls", "dec", "seg"], list(submission)
        results = [
            check_seg(args.bin, args, submission, lists, work, len(state["seg_classes"])),
            check_dec(args.bin, args, submission, lists, work),
            check_cls(args.bin, args, submission, lists),
        ]
    print("all checks pass" if all(results) else "CHECK FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
