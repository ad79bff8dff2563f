#!/usr/bin/env python3
"""Reference results for twinhead's evaluation code (src/eval).

Builds seeded random detection and segmentation cases, scores them with
independent reference implementations and writes case + results as JSON
fixtures under tests/fixtures/eval/, which `cargo test` checks the Rust code
against (to 1e-4; the Rust tests never run Python).

  pip install numpy pycocotools
  python3 tools/reference_eval.py            # rewrites the fixtures

References:
- VOC07 (11-point) and VOC (area) AP: a port of the devkit's VOCevaldet.m /
  VOCap.m, organised like py-faster-rcnn's voc_eval.py but following MATLAB
  where the two differ: IoU >= 0.5 (not > 0.5), a stable score sort, and
  the 11 recall steps as MATLAB's 0:0.1:1 produces them (0.6 and 0.7 are the
  nearest doubles; numpy's arange gives 0.6000000000000001 and 0.7000000000000001).
- COCO AP, AP50, AP75: pycocotools' COCOeval itself, on the case converted the
  way twinhead converts VOC data (boxes [x, y, xmax - x, ymax - y]; difficult
  objects as iscrowd = 1).
- Segmentation: a numpy confusion matrix (np.bincount) over the whole case.
"""

import contextlib
import io
import json
import os
import random
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "eval")


# ---------------------------------------------------------------- detection case

def make_det_case(seed, num_images, classes, half_pixels=False, crowded_pair=False):
    """A random case. Class 3 has only difficult objects and class 4 no objects
    at all (both must be left out of the means); scores are multiples of 1/256
    so ties occur (and are exact in f32), as are coordinates (integers or halves)."""
    rng = random.Random(seed)
    step = 0.5 if half_pixels else 1.0

    def q(v):  # quantise a coordinate
        return round(v / step) * step

    images, gts, dets = [], [], []
    for image in range(num_images):
        width, height = rng.randint(80, 400), rng.randint(80, 400)
        images.append({"id": f"{image:06d}", "width": width, "height": height})
        for _ in range(rng.randint(0, 6)):
            cls = rng.choice([0, 1, 2, 3, 5]) if len(classes) > 5 else rng.choice([0, 1, 2, 3])
            w, h = rng.uniform(6, width / 2), rng.uniform(6, height / 2)
            x0, y0 = q(rng.uniform(1, width - w)), q(rng.uniform(1, height - h))
            box = [x0, y0, q(min(width, x0 + w)), q(min(height, y0 + h))]
            difficult = cls == 3 or rng.random() < 0.15
            gts.append({"image": image, "class": cls, "bbox": box, "difficult": difficult})

    def score(base):
        return min(255, max(0, int(base * 256 + rng.gauss(0, 40)))) / 256

    def jitter(box, amount):
        x0, y0, x1, y1 = box
        w, h = x1 - x0 + 1, y1 - y0 + 1
        nx0 = q(x0 + rng.gauss(0, amount * w))
        ny0 = q(y0 + rng.gauss(0, amount * h))
        nx1 = q(max(nx0, x1 + rng.gauss(0, amount * w)))
        ny1 = q(max(ny0, y1 + rng.gauss(0, amount * h)))
        return [nx0, ny0, nx1, ny1]

    for g in gts:
        if rng.random() < 0.8:  # found, more or less precisely
            dets.append({"image": g["image"], "class": g["class"], "bbox": jitter(g["bbox"], rng.choice([0.02, 0.1, 0.25])), "score": score(0.7)})
        if rng.random() < 0.2:  # duplicate
            dets.append({"image": g["image"], "class": g["class"], "bbox": jitter(g["bbox"], 0.05), "score": score(0.5)})
        if rng.random() < 0.1:  # wrong class
            dets.append({"image": g["image"], "class": rng.randrange(len(classes)), "bbox": jitter(g["bbox"], 0.05), "score": score(0.4)})
    for image, info in enumerate(images):
        for _ in range(rng.randint(0, 4)):  # background false positives, class 4 included
            x0, y0 = q(rng.uniform(1, info["width"] - 10)), q(rng.uniform(1, info["height"] - 10))
            box = [x0, y0, q(min(info["width"], x0 + rng.uniform(5, 80))), q(min(info["height"], y0 + rng.uniform(5, 80)))]
            dets.append({"image": image, "class": rng.randrange(len(classes)), "bbox": box, "score": score(0.3)})
    if crowded_pair:
        # 130 detections of one class in one image (COCO keeps the best 100 per image
        # and class), over a cluster of overlapping objects.
        base = [40.0, 40.0, 90.0, 100.0]
        for k in range(4):
            box = [base[0] + 6 * k, base[1] + 4 * k, base[2] + 6 * k, base[3] + 4 * k]
            gts.append({"image": 0, "class": 1, "bbox": box, "difficult": k == 3})
        for _ in range(130):
            dets.append({"image": 0, "class": 1, "bbox": jitter(base, 0.15), "score": score(0.5)})
    rng.shuffle(dets)
    return {"seed": seed, "classes": classes, "images": images, "ground_truth": gts, "detections": dets}


# ---------------------------------------------------------------- VOC devkit port

def matlab_colon_0_to_1_by_tenths():
    """MATLAB's 0:0.1:1: first half a + k*d, second half b - (n-k)*d."""
    return [k * 0.1 if k <= 5 else 1.0 - (10 - k) * 0.1 for k in range(11)]


def voc_ap(rec, prec, use_07_metric):
    if use_07_metric:
        ap = 0.0
        for t in matlab_colon_0_to_1_by_tenths():
            p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_class(case, cls, use_07_metric, ovthresh=0.5):
    class_recs = {}
    npos = 0
    for image in range(len(case["images"])):
        objs = [g for g in case["ground_truth"] if g["image"] == image and g["class"] == cls]
        bbox = np.array([o["bbox"] for o in objs], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([o["difficult"] for o in objs], dtype=bool)
        npos += int(np.sum(~difficult))
        class_recs[image] = {"bbox": bbox, "difficult": difficult, "det": [False] * len(objs)}
    if npos == 0:
        return None
    dets = [d for d in case["detections"] if d["class"] == cls]
    image_ids = [d["image"] for d in dets]
    confidence = np.array([d["score"] for d in dets], dtype=np.float64)
    BB = np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-confidence, kind="stable")  # MATLAB's sort is stable
    BB = BB[order, :]
    image_ids = [image_ids[x] for x in order]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :]
        ovmax, jmax = -np.inf, -1
        BBGT = R["bbox"]
        if BBGT.size > 0:
            iw = np.minimum(BBGT[:, 2], bb[2]) - np.maximum(BBGT[:, 0], bb[0]) + 1.0
            ih = np.minimum(BBGT[:, 3], bb[3]) - np.maximum(BBGT[:, 1], bb[1]) + 1.0
            inters = iw * ih
            uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0) - inters
            # VOCevaldet.m only considers boxes overlapping in both directions.
            overlaps = np.where((iw > 0) & (ih > 0), inters / uni, -np.inf)
            jmax = int(np.argmax(overlaps))  # first maximum, like MATLAB's strict '>'
            ovmax = overlaps[jmax]
        if ovmax >= ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(rec, prec, use_07_metric)


def voc_reference(case, use_07_metric):
    per_class = [voc_eval_class(case, c, use_07_metric) for c in range(len(case["classes"]))]
    defined = [ap for ap in per_class if ap is not None]
    return {"per_class": per_class, "map": float(np.mean(defined))}


# ---------------------------------------------------------------- pycocotools

def coco_reference(case):
    def xywh(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    gt = {
        "images": [{"id": i + 1, "width": im["width"], "height": im["height"]} for i, im in enumerate(case["images"])],
        "categories": [{"id": c + 1, "name": name} for c, name in enumerate(case["classes"])],
        "annotations": [
            {"id": k + 1, "image_id": g["image"] + 1, "category_id": g["class"] + 1, "bbox": xywh(g["bbox"]),
             "area": xywh(g["bbox"])[2] * xywh(g["bbox"])[3], "iscrowd": int(g["difficult"])}
            for k, g in enumerate(case["ground_truth"])
        ],
    }
    results = [{"image_id": d["image"] + 1, "category_id": d["class"] + 1, "bbox": xywh(d["bbox"]), "score": d["score"]}
               for d in case["detections"]]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        E = COCOeval(coco_gt, coco_dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    precision = E.eval["precision"][:, :, :, 0, 2]  # T x R x K, area "all", maxDets 100

    def per_class(t_index):
        out = []
        for k in range(len(case["classes"])):
            p = precision[:, :, k] if t_index is None else precision[t_index, :, k]
            out.append(float(np.mean(p)) if np.all(p > -1) else None)
        return out

    return {
        "ap": {"per_class": per_class(None), "map": float(E.stats[0])},
        "ap50": {"per_class": per_class(0), "map": float(E.stats[1])},
        "ap75": {"per_class": per_class(5), "map": float(E.stats[2])},
    }


# ---------------------------------------------------------------- segmentation

def make_seg_case(seed, num_classes=7, num_images=4):
    """Blobby masks with unlabelled pixels; predictions are noisy copies. Class 6 is
    absent everywhere; class 7 is only ever predicted (IoU 0, in the mean)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        h, w = int(rng.integers(9, 20)), int(rng.integers(9, 24))
        coarse = rng.choice([0, 1, 2, 3, 4, 5], size=(h // 3 + 1, w // 3 + 1), p=[0.15, 0.3, 0.2, 0.15, 0.1, 0.1])
        gt = np.kron(coarse, np.ones((3, 3), dtype=np.int64))[:h, :w]
        pred = gt.copy()
        noise = rng.random((h, w))
        pred[noise < 0.15] = rng.integers(0, 6, size=int(np.sum(noise < 0.15)))
        pred[(noise > 0.97)] = 7
        images.append({"width": w, "height": h, "gt": gt.ravel().tolist(), "pred": pred.ravel().tolist()})
    return {"seed": seed, "num_classes": num_classes, "images": images}


def seg_reference(case):
    n = case["num_classes"] + 1
    cm = np.zeros((n, n), dtype=np.int64)
    for im in case["images"]:
        gt, pred = np.array(im["gt"]), np.array(im["pred"])
        cm += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)
    labelled = cm[1:, :]  # rows of labelled ground truth; row 0 (unlabelled) is ignored
    inter = np.diag(cm)[1:].astype(np.float64)
    gt_pixels = labelled.sum(axis=1).astype(np.float64)
    pred_pixels = labelled[:, 1:].sum(axis=0).astype(np.float64)
    union = gt_pixels + pred_pixels - inter
    iou = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    acc = [float(i / g) if g > 0 else None for i, g in zip(inter, gt_pixels)]
    return {
        "per_class_iou": iou,
        "miou": float(np.mean([v for v in iou if v is not None])),
        "pixel_acc": float(inter.sum() / gt_pixels.sum()),
        "mean_acc": float(np.mean([v for v in acc if v is not None])),
    }


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    det_cases = [
        make_det_case(7, 12, ["aeroplane", "bicycle", "bird", "boat", "bottle"]),
        make_det_case(2007, 25, ["cat", "chair", "dog", "cow", "sheep", "person"], half_pixels=True),
        make_det_case(42, 8, ["a", "b", "c", "d", "e"], crowded_pair=True),
    ]
    for case in det_cases:
        case["reference"] = {"voc07": voc_reference(case, True), "voc": voc_reference(case, False), "coco": coco_reference(case)}
    seg_case = make_seg_case(11)
    seg_case["reference"] = seg_reference(seg_case)

    for name, data in [("det_cases.json", {"cases": det_cases}), ("seg_case.json", seg_case)]:
        path = os.path.join(FIXTURES, name)
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {os.path.relpath(path)}", file=sys.stderr)
    for case in det_cases:
        r = case["reference"]
        print(f"seed {case['seed']}: {len(case['ground_truth'])} objects, {len(case['detections'])} detections; "
              f"voc07 {r['voc07']['map']:.4f} voc {r['voc']['map']:.4f} coco {r['coco']['ap']['map']:.4f} "
              f"ap50 {r['coco']['ap50']['map']:.4f} ap75 {r['coco']['ap75']['map']:.4f}", file=sys.stderr)
    print(f"seg: miou {seg_case['reference']['miou']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
