#!/usr/bin/env python3
"""Reference values for twinhead's losses, assigner and box overlaps (src/train/loss,
src/train/assigner.rs).

Builds small seeded cases, computes the expected results independently of the
Rust code (numpy in float64; PyTorch autograd, when installed, for the gradients
of the detection loss) and writes case + results as JSON under
tests/fixtures/loss/, which `cargo test --lib` checks the Rust code against to
1e-4. The Rust tests never run Python.

  pip install numpy          # torch optional: adds the gradient checks
  python3 tools/loss_reference.py

Definitions (the papers', with YOLOv8's eps placements so values agree to
float precision):
- IoU / GIoU (Rezatofighi 2019) / CIoU (Zheng 2020): height + 1e-7, union + 1e-7,
  enclosing area and squared diagonal + 1e-7; CIoU's alpha = v / (v - IoU + 1 + 1e-7).
- BCE with logits: log(1 + e^x) - z x.
- Cross-entropy with ignore label 255, mean over scored pixels; OHEM keeps the
  scored pixels with loss > threshold or >= the ceil(fraction * scored)-th
  highest loss; soft Dice 1 - mean_c (2 sum pg + 1) / (sum p + sum g + 1) over
  the batch's scored pixels.
- Classification: cross-entropy with label smoothing eps, the target
  (1 - eps) onehot + eps / C, mean over the batch (torch's label_smoothing).
- KD: T^2 * mean_pixels KL(softmax(t/T) || softmax(s/T)); detection KD: binary
  KL(sigmoid(t) || sigmoid(s)) summed, and w-weighted SmoothL1(beta 1) of the raw
  boxes, w = max_c sigmoid(t), both over max(sum w, 1).
- Task-aligned assigner (TOOD / YOLOv8) as in src/train/assigner.rs, written
  here with dense [GT, anchor] masks the way YOLOv8 organises it.
- Detection loss: softplus(raw) * stride decoding, BCE against the soft scores
  and score-weighted (1 - CIoU or GIoU), both over max(sum of scores, 1).
"""

import json
import math
import os

import numpy as np

try:
    import torch
except ImportError:  # gradients are only checked when PyTorch is available
    torch = None

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "loss")
EPS = 1e-7
IGNORE = 255


def f32(a):
    """Inputs are float32 in Rust: quantise them, compute in float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def write(name, obj):
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(os.path.join(FIXTURES, name)))


# ------------------------------------------------------------------ overlaps

def overlap(a, b, kind, xp=np):
    """IoU / GIoU / CIoU of corresponding boxes [..., 4] (numpy or torch)."""
    ax0, ay0, ax1, ay1 = (a[..., i] for i in range(4))
    bx0, by0, bx1, by1 = (b[..., i] for i in range(4))
    aw, ah = ax1 - ax0, ay1 - ay0 + EPS
    bw, bh = bx1 - bx0, by1 - by0 + EPS
    iw = (xp.minimum(ax1, bx1) - xp.maximum(ax0, bx0)).clip(min=0)
    ih = (xp.minimum(ay1, by1) - xp.maximum(ay0, by0)).clip(min=0)
    inter = iw * ih
    union = aw * ah + bw * bh - inter + EPS
    iou = inter / union
    if kind == "Iou":
        return iou
    cw = xp.maximum(ax1, bx1) - xp.minimum(ax0, bx0)
    ch = xp.maximum(ay1, by1) - xp.minimum(ay0, by0)
    if kind == "Giou":
        c_area = cw * ch + EPS
        return iou - (c_area - union) / c_area
    c2 = cw ** 2 + ch ** 2 + EPS
    rho2 = ((bx0 + bx1 - ax0 - ax1) ** 2 + (by0 + by1 - ay0 - ay1) ** 2) / 4
    v = (4 / math.pi ** 2) * (xp.arctan(bw / bh) - xp.arctan(aw / ah)) ** 2
    alpha = v / (v - iou + (1 + EPS))
    if xp is torch:
        alpha = alpha.detach()
    return iou - (rho2 / c2 + v * alpha)


def plain_iou_matrix(a, b):
    """[G, 4] x [A, 4] -> [G, A], no eps (the assigner's and NMS's IoU)."""
    a, b = a[:, None, :], b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = lambda r: np.clip(r[..., 2] - r[..., 0], 0, None) * np.clip(r[..., 3] - r[..., 1], 0, None)
    union = area(a) + area(b) - iw * ih
    return np.where(union > 0, iw * ih / np.where(union > 0, union, 1), 0)


def iou_cases():
    rng = np.random.default_rng(7)
    pairs = [
        ([0, 0, 1, 1], [0.5, 0, 1.5, 1]),  # IoU 1/3
        ([0, 0, 1, 1], [0, 0, 1, 1]),  # identical
        ([0, 0, 1, 1], [2, 0, 3, 1]),  # disjoint: GIoU -1/3
        ([0, 0, 10, 10], [2, 3, 5, 4]),  # contained
        ([0, 0, 4, 1], [0, 0, 1, 4]),  # crossing, different aspect ratios
        ([10, 20, 50, 40], [30, 10, 70, 90]),
    ]
    for _ in range(14):
        a0 = rng.uniform(0, 50, 2)
        b0 = a0 + rng.uniform(-20, 20, 2)
        pairs.append((list(np.r_[a0, a0 + rng.uniform(1, 40, 2)]), list(np.r_[b0, b0 + rng.uniform(1, 40, 2)])))
    cases = []
    for a, b in pairs:
        a, b = f32(a), f32(b)
        cases.append({"a": flat(a), "b": flat(b),
                      "iou": float(plain_iou_matrix(a[None], b[None])[0, 0]),
                      "giou": float(overlap(a, b, "Giou")), "ciou": float(overlap(a, b, "Ciou"))})
    # The tensor IoU (with eps) and the plain one agree to float precision on these.
    for c in cases:
        assert abs(c["iou"] - float(overlap(f32(c["a"]), f32(c["b"]), "Iou"))) < 1e-6
    return cases


# ------------------------------------------------------------------ BCE

def bce(x, z):
    return np.logaddexp(0.0, x) - z * x


def bce_case():
    rng = np.random.default_rng(11)
    x = f32(np.r_[rng.normal(0, 4, 20), [0.0, 30.0, -30.0, 80.0, -80.0]])
    z = f32(np.r_[rng.uniform(0, 1, 15), [0, 1, 0, 1, 0], [0.5, 0.0, 1.0, 0.25, 0.75]])
    return {"logits": flat(x), "targets": flat(z), "loss": flat(bce(x, z))}


# ------------------------------------------------------------------ segmentation

def log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def seg_case():
    rng = np.random.default_rng(23)
    n, c, h, w = 2, 5, 4, 5
    logits = f32(rng.normal(0, 2, (n, c, h, w)))
    targets = rng.integers(0, c, (n, h, w))
    targets[rng.uniform(size=(n, h, w)) < 0.2] = IGNORE
    valid = targets != IGNORE
    idx = np.where(valid, targets, 0)
    logp = np.take_along_axis(log_softmax(logits, 1), idx[:, None], 1)[:, 0]
    loss = -logp
    scored = loss[valid]
    ce = scored.mean()

    def ohem(threshold, fraction):
        k = min(max(math.ceil(fraction * scored.size), 1), scored.size)
        kth = np.sort(scored)[::-1][k - 1]
        keep = (scored > threshold) | (scored >= kth)
        return scored[keep].mean(), scored, kth

    threshold, fraction = 1.5, 0.25
    ohem_ce, _, _ = ohem(threshold, fraction)
    assert np.abs(scored - threshold).min() > 1e-3, "a pixel loss sits on the threshold: change the seed"
    assert (scored > threshold).sum() > math.ceil(fraction * scored.size), "threshold should dominate here"
    ohem_topk_ce, _, _ = ohem(1e9, fraction)

    p = np.exp(log_softmax(logits, 1)) * valid[:, None]
    g = np.zeros_like(p)
    for ci in range(c):
        g[:, ci] = (targets == ci) & valid
    inter = (p * g).sum(axis=(0, 2, 3))
    dice_c = (2 * inter + 1) / (p.sum(axis=(0, 2, 3)) + g.sum(axis=(0, 2, 3)) + 1)
    return {"dims": [n, c, h, w], "logits": flat(logits), "targets": [int(t) for t in targets.ravel()],
            "ce": float(ce), "ohem_threshold": threshold, "ohem_fraction": fraction,
            "ohem_ce": float(ohem_ce), "ohem_topk_ce": float(ohem_topk_ce), "dice": float(1 - dice_c.mean())}


# ------------------------------------------------------------------ distillation

def cls_cases():
    rng = np.random.default_rng(11)
    cases = []
    for n, c, eps in [(4, 5, 0.1), (3, 12, 0.0), (6, 3, 0.3)]:
        logits = f32(rng.normal(0.0, 2.0, (n, c)))
        labels = rng.integers(0, c, n)
        log_p = log_softmax(logits, 1)
        target = np.full((n, c), eps / c)
        target[np.arange(n), labels] += 1.0 - eps
        loss = float(-(target * log_p).sum(1).mean())
        if torch is not None:
            want = torch.nn.functional.cross_entropy(
                torch.tensor(logits), torch.tensor(labels), label_smoothing=eps
            ).item()
            assert abs(want - loss) < 1e-9, (want, loss)
        cases.append({"logits": [flat(row) for row in logits], "labels": [int(v) for v in labels], "smoothing": eps, "loss": loss})
    return cases


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def distill_case():
    rng = np.random.default_rng(31)
    dims = (2, 4, 3, 3)
    s, t, temp = f32(rng.normal(0, 2, dims)), f32(rng.normal(0, 2, dims)), 2.0
    lp, lq = log_softmax(t / temp, 1), log_softmax(s / temp, 1)
    kd_seg = (np.exp(lp) * (lp - lq)).sum(1).mean() * temp ** 2

    n, a, c = 2, 6, 3
    sc, tc = f32(rng.normal(-2, 2, (n, a, c))), f32(rng.normal(-2, 2, (n, a, c)))
    sb, tb = f32(rng.normal(0, 1.5, (n, a, 4))), f32(rng.normal(0, 1.5, (n, a, 4)))
    p, q = sigmoid(tc), sigmoid(sc)
    kl = p * (np.log(p) - np.log(q)) + (1 - p) * (np.log(1 - p) - np.log(1 - q))
    wgt = p.max(-1)
    norm = max(wgt.sum(), 1.0)
    d = np.abs(sb - tb)
    sl1 = np.where(d < 1, 0.5 * d ** 2, d - 0.5)
    return {"seg_dims": list(dims), "seg_student": flat(s), "seg_teacher": flat(t), "temperature": temp,
            "kd_seg": float(kd_seg), "det_dims": [n, a], "student_cls": flat(sc), "teacher_cls": flat(tc),
            "student_box": flat(sb), "teacher_box": flat(tb),
            "kd_det_cls": float(kl.sum() / norm), "kd_det_box": float((sl1.sum(-1) * wgt).sum() / norm)}


# ------------------------------------------------------------------ assigner and detection loss

def anchor_layout(size, strides):
    points, out_strides = [], []
    for s in strides:
        g = -(-size // s)
        ys, xs = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        points.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], 1))
        out_strides.append(np.full(g * g, float(s)))
    return np.concatenate(points), np.concatenate(out_strides)


def decode(raw, points, strides):
    d = np.logaddexp(0.0, raw) * strides[:, None]
    return np.stack([points[:, 0] - d[:, 0], points[:, 1] - d[:, 1], points[:, 0] + d[:, 2], points[:, 1] + d[:, 3]], 1)


def assign(points, scores, pred_boxes, gt_boxes, gt_labels, top_k, alpha, beta):
    """Dense-mask task-aligned assignment for one image: list of (anchor, gt, label, score)."""
    g_count, a_count = len(gt_boxes), len(points)
    if g_count == 0:
        return []
    gb = np.asarray(gt_boxes, dtype=np.float64)
    px, py = points[None, :, 0], points[None, :, 1]
    inside = (px > gb[:, 0:1]) & (px < gb[:, 2:3]) & (py > gb[:, 1:2]) & (py < gb[:, 3:4])  # [G, A]
    ious = plain_iou_matrix(gb, pred_boxes)
    s = scores[:, gt_labels].T  # [G, A]
    align = np.where(inside, s ** alpha * ious ** beta, 0.0)

    mask = np.zeros((g_count, a_count), dtype=bool)
    for g in range(g_count):
        cand = np.flatnonzero(inside[g])
        order = sorted(cand, key=lambda i: (-align[g, i], i))
        chosen = order[:top_k]
        if len(order) > top_k:  # the Rust f32 ranking must see the same order
            assert align[g, order[top_k - 1]] - align[g, order[top_k]] > 1e-4 * align[g, order[top_k - 1]], "near tie"
        mask[g, chosen] = True

    fg = mask.any(0)
    contested = np.flatnonzero(mask.sum(0) > 1)
    winner = np.argmax(np.where(mask, ious, -1.0), axis=0)  # first max: lower GT index
    for a in contested:
        claim = np.sort(ious[mask[:, a], a])[::-1]
        assert claim[0] - claim[1] > 1e-4, "near tie between GTs"
    mask = (np.arange(g_count)[:, None] == winner[None, :]) & fg[None, :]

    align_pos = align * mask
    max_align = align_pos.max(1, keepdims=True)
    max_iou = (ious * mask).max(1, keepdims=True)
    norm = (align_pos * max_iou / (max_align + 1e-9)).max(0)
    return [(int(a), int(winner[a]), int(gt_labels[winner[a]]), float(norm[a])) for a in np.flatnonzero(fg)]


def det_loss_reference(case, points, strides, positives):
    """Forward (numpy) and, with PyTorch, gradients of the total."""
    n, c = len(case["gt_boxes"]), case["num_classes"]
    a = len(points)
    cls = f32(case["cls_logits"]).reshape(n, a, c)
    raw = f32(case["box_raw"]).reshape(n, a, 4)
    tgt = np.zeros((n, a, c))
    rows, tboxes, weights = [], [], []
    for i, pos in enumerate(positives):
        for (anchor, gt, label, score) in pos:
            tgt[i, anchor, label] = score
            rows.append((i, anchor))
            tboxes.append(case["gt_boxes"][i][gt])
            weights.append(score)
    norm = max(sum(weights), 1.0)
    kind = case["box_loss"]

    cls_loss = bce(cls, tgt).sum() / norm
    if rows:
        pred = np.stack([decode(raw[i], points, strides)[anchor] for i, anchor in rows])
        box_loss = ((1 - overlap(pred, f32(tboxes), kind)) * np.array(weights)).sum() / norm
    else:
        box_loss = 0.0
    total = case["cls_weight"] * cls_loss + case["box_weight"] * box_loss
    out = {"cls": float(cls_loss), "boxes": float(box_loss), "total": float(total),
           "grad_cls_logits": [], "grad_box_raw": []}

    if torch is not None:
        tc = torch.tensor(cls, dtype=torch.float64, requires_grad=True)
        tr = torch.tensor(raw, dtype=torch.float64, requires_grad=True)
        p, st = torch.tensor(points), torch.tensor(strides)
        d = torch.logaddexp(torch.zeros(()), tr) * st[None, :, None]
        boxes = torch.stack([p[:, 0] - d[..., 0], p[:, 1] - d[..., 1], p[:, 0] + d[..., 2], p[:, 1] + d[..., 3]], -1)
        lc = torch.nn.functional.binary_cross_entropy_with_logits(tc, torch.tensor(tgt), reduction="sum") / norm
        lb = torch.zeros((), dtype=torch.float64)
        if rows:
            ii = torch.tensor([r[0] for r in rows])
            aa = torch.tensor([r[1] for r in rows])
            o = overlap(boxes[ii, aa], torch.tensor(f32(tboxes)), kind, xp=torch)
            lb = ((1 - o) * torch.tensor(weights, dtype=torch.float64)).sum() / norm
        lt = case["cls_weight"] * lc + case["box_weight"] * lb
        lt.backward()
        assert abs(lt.item() - total) < 1e-9, (lt.item(), total)
        out["grad_cls_logits"] = flat(tc.grad.numpy())
        out["grad_box_raw"] = flat(tr.grad.numpy())
    return out


def det_case(name, seed, image_size, strides, num_classes, gts, top_k, box_loss):
    rng = np.random.default_rng(seed)
    points, anchor_strides = anchor_layout(image_size, strides)
    n, a = len(gts), len(points)
    cls = f32(rng.normal(-3, 1.5, (n, a, num_classes)))
    raw = f32(rng.normal(0.5, 0.8, (n, a, 4)))
    case = {"name": name, "image_size": image_size, "strides": strides, "num_classes": num_classes,
            "top_k": top_k, "alpha": 0.5, "beta": 6.0, "box_loss": box_loss, "cls_weight": 0.5, "box_weight": 7.5,
            "cls_logits": flat(cls), "box_raw": flat(raw),
            "gt_boxes": [[flat(f32(b)) for b in boxes] for boxes, _ in gts],
            "gt_labels": [labels for _, labels in gts]}
    positives = []
    for i, (boxes, labels) in enumerate(gts):
        pred = decode(raw[i], points, anchor_strides)
        positives.append(assign(points, sigmoid(cls[i]), pred, f32(boxes).reshape(-1, 4),
                                np.asarray(labels, dtype=int), top_k, 0.5, 6.0))
    case["positives"] = [[{"anchor": a_, "gt": g, "label": l, "score": s} for a_, g, l, s in pos] for pos in positives]
    case.update(det_loss_reference(case, points, anchor_strides, positives))
    print(f"  {name}: {a} anchors, positives per image {[len(p) for p in positives]}, total {case['total']:.6f}")
    return case


def det_cases():
    return [
        # 16 px input, strides 4 and 8 (20 anchors), 2 overlapping GTs that both
        # claim 4 anchors, top-k 4 so each GT's selection is cut.
        det_case("two_gts_16px", 5, 16, [4, 8], 3,
                 [([[1.3, 2.1, 11.7, 13.2], [5.2, 4.6, 15.1, 14.3]], [0, 2]),
                  ([[0.5, 0.5, 9.5, 7.5]], [1])], 4, "Giou"),
        # 64 px, the real strides (84 anchors), top-k 10; an image without
        # objects, and a GT too small to hold any anchor point.
        det_case("three_images_64px", 9, 64, [8, 16, 32], 4,
                 [([[3.0, 6.0, 40.0, 50.0], [20.0, 18.0, 62.0, 60.0], [30.5, 2.0, 47.0, 13.0]], [0, 3, 3]),
                  ([], []),
                  ([[1.0, 33.0, 63.0, 63.0], [50.2, 50.2, 51.8, 51.8]], [2, 1])], 10, "Ciou"),
    ]


def main():
    print("torch:", torch.__version__ if torch is not None else "not installed (no gradient checks)")
    write("iou.json", iou_cases())
    write("bce.json", bce_case())
    write("seg.json", seg_case())
    write("distill.json", distill_case())
    write("cls.json", cls_cases())
    write("det.json", det_cases())


if __name__ == "__main__":
    main()
