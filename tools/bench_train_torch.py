#!/usr/bin/env python3
"""PyTorch baseline for `twinhead bench train`: Twinhead's network and training
step re-implemented in PyTorch and timed the same way, to compare the speed of
the two side by side.

    pip install torch==2.15.0
    python3 tools/bench_train_torch.py                       # the quick preset's shape
    cargo run --release -- bench train --preset quick
    python3 tools/bench_train_torch.py --size s --image-size 512 --batch 8 \\
        --det-classes 20 --seg-classes 150                   # voc-ade's model and classes

The same as Twinhead (src/model, src/train):
- the network, layer for layer: the CSP backbone (YOLOv8 C2f stages + SPPF),
  the FPN+PAN neck, the decoupled anchor-free detection head (prior bias
  -ln 99) and the semantic-FPN segmentation head with its fixed bilinear 4x
  upsampling (the FCN bilinear kernel; borders see fewer taps, so it is not
  F.interpolate(mode="bilinear")); every ConvNormAct is a bias-free
  convolution + GroupNorm(norm_groups(c)) + SiLU. Widths, depths and group
  counts follow ModelConfig, so the parameter counts are equal (checked
  at start-up for the quick shape); `log_vars` (2 parameters of the trainee,
  trained only by uncertainty weighting) is kept out of the network total as
  Twinhead's `num_params` of the TwinNet does;
- a detection step runs the network without the stride-4 level and the
  segmentation head (`forward_det`), a segmentation step the full neck and the
  segmentation head (`forward_seg`); `alternate` (period 1) switches task every
  step, detection first; `joint` does both on two batches with one backward;
- the detection loss: softplus(raw)*stride box decoding, the task-aligned
  assigner (top-k 10, alpha 0.5, beta 6, same tie-breaking) on the detached
  predictions, BCE-with-logits against the soft scores and score-weighted
  (1 - CIoU), both over max(sum of scores, 1), weights cls 0.5 / box 7.5;
- the segmentation loss: cross-entropy, ignore label 255, mean over the scored
  pixels (the default: no OHEM, no Dice);
- the optimiser: AdamW (betas 0.9/0.999, eps 1e-5, decoupled weight decay
  5e-4 on every parameter), the backbone and the rest as two groups, each
  gradient clipped to norm 10 per tensor (burn's GradientClipping::Norm:
  g * min(10 / (|g| + tiny), 1)); learning rate 2e-3 with a 50-step linear
  warm-up and cosine decay over warm-up + timed steps, as the bench's run has;
- the loss value is read back every step (the trainer checks it is finite);
- timing: like `twinhead bench train`, the mean over the timed steps after the
  warm-up ones, images/s counting one batch per alternate step, and the peak
  resident set (VmHWM) of the process.

Not the same:
- the data: random tensors made once up front (images drawn in [0, 1] and
  normalised with the ImageNet mean/std, 1-6 random boxes with random classes
  per detection image, random class maps with ~10% ignore pixels), cycled
  through a few batches. Data loading is not timed here; Twinhead's loader
  decodes and augments on other threads and prefetches, so its steps mostly
  do not wait on it either, but on a 2-core machine those threads do compete
  with the training step for the cores;
- the assigner runs vectorised on tensors (dense [GT, anchor] masks, as
  YOLOv8 does) instead of Twinhead's per-image loops on the CPU; same result;
- the operations are PyTorch's own, with the same values: nearest 2x
  upsampling is F.interpolate (Twinhead: reshape + expand), GroupNorm + SiLU
  is nn.GroupNorm then F.silu (Twinhead: one fused op, src/backend/), the 4x
  bilinear upsampling is a depthwise transposed convolution with the FCN kernel
  (Twinhead: two products with interpolation matrices, which give the same
  values), cross-entropy is F.cross_entropy; and weights are
  initialised with PyTorch's defaults (the same Kaiming-uniform bounds as
  burn's defaults, not the same random numbers);
- the peak memory includes the Python interpreter and the PyTorch libraries;
- no evaluation, checkpoints or events (the bench keeps those out of the
  timed steps too).

PyTorch's CPU threads (GNU OpenMP) spin while they wait for work: on a machine
where other processes also use the cores, steps can get several times slower
and very noisy. `OMP_WAIT_POLICY=PASSIVE python3 tools/bench_train_torch.py`
makes them sleep instead (measured on a 2-core machine during a cargo build:
~350 ms instead of ~2400 ms per quick step). Compare like with like: both
programs on an otherwise idle machine, or both under the same load.
"""

import argparse
import json
import math
import time
import warnings

# torch warns on import when numpy is absent; this script does not need numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

IGNORE_INDEX = 255
DET_STRIDES = (8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The quick preset's shape: the synthetic twin sets have 6 detection classes
# (src/data/synth.rs DET_CLASSES) and 9 segmentation classes (SEG_CLASSES).
QUICK_DET_CLASSES = 6
QUICK_SEG_CLASSES = 9
# Twinhead's parameter counts for the quick shape (n, 6 and 9 classes).
QUICK_PARAMS = {"backbone": 1_272_656, "neck": 996_288, "det_head": 528_030, "seg_head": 388_553, "total": 3_185_527}


# ------------------------------------------------------------------ configuration (src/model/config.rs)

def rust_round(x):
    """f32::round: halves away from zero (Python's round() rounds halves to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


class ModelConfig:
    # (width multiplier, depth multiplier, channel cap) per size preset.
    SCALING = {"n": (0.25, 0.34, 256), "s": (0.5, 0.34, 512), "m": (0.75, 0.67, 768)}

    def __init__(self, size, det_classes, seg_classes):
        self.width, self.depth_mult, self.cap = self.SCALING[size]
        self.det_classes = det_classes
        self.seg_classes = seg_classes

    def channels(self, base):
        return min(max(rust_round(base * self.width / 8.0) * 8, 8), self.cap)

    def depth(self, base):
        return max(rust_round(base * self.depth_mult), 1)


# ------------------------------------------------------------------ blocks (src/model/blocks.rs)

def norm_groups(channels):
    """At most 32 groups of at least 4 channels."""
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


class ConvNormAct(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.norm = nn.GroupNorm(norm_groups(c_out), c_out)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, channels, shortcut):
        super().__init__()
        self.cv1 = ConvNormAct(channels, channels, 3)
        self.cv2 = ConvNormAct(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    def __init__(self, c_in, c_out, depth, shortcut):
        super().__init__()
        self.hidden = c_out // 2
        self.cv1 = ConvNormAct(c_in, 2 * self.hidden, 1)
        self.cv2 = ConvNormAct((2 + depth) * self.hidden, c_out, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(depth))

    def forward(self, x):
        parts = list(self.cv1(x).split(self.hidden, 1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class Sppf(nn.Module):
    def __init__(self, channels):
        super().__init__()
        hidden = channels // 2
        self.cv1 = ConvNormAct(channels, hidden, 1)
        self.cv2 = ConvNormAct(hidden * 4, channels, 1)

    def forward(self, x):
        x = self.cv1(x)
        y1 = F.max_pool2d(x, 5, 1, 2)
        y2 = F.max_pool2d(y1, 5, 1, 2)
        y3 = F.max_pool2d(y2, 5, 1, 2)
        return self.cv2(torch.cat([x, y1, y2, y3], 1))


def upsample2x(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


# ------------------------------------------------------------------ backbone, neck (backbone.rs, neck.rs)

class CspBackbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stem = cfg.channels(64)
        c2, c3, c4, c5 = (cfg.channels(b) for b in (128, 256, 512, 1024))
        self.stem = ConvNormAct(3, stem, 3, 2)
        self.down2 = ConvNormAct(stem, c2, 3, 2)
        self.stage2 = C2f(c2, c2, cfg.depth(3), True)
        self.down3 = ConvNormAct(c2, c3, 3, 2)
        self.stage3 = C2f(c3, c3, cfg.depth(6), True)
        self.down4 = ConvNormAct(c3, c4, 3, 2)
        self.stage4 = C2f(c4, c4, cfg.depth(6), True)
        self.down5 = ConvNormAct(c4, c5, 3, 2)
        self.stage5 = C2f(c5, c5, cfg.depth(3), True)
        self.sppf = Sppf(c5)

    def forward(self, images):
        x = self.stem(images)
        c2 = self.stage2(self.down2(x))
        c3 = self.stage3(self.down3(c2))
        c4 = self.stage4(self.down4(c3))
        c5 = self.sppf(self.stage5(self.down5(c4)))
        return c2, c3, c4, c5


class PanFpn(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c2, c3, c4, c5 = (cfg.channels(b) for b in (128, 256, 512, 1024))  # CSP feature channels
        p2, p3, p4, p5 = c2, c3, c4, c5  # pyramid channels (the same bases)
        d = cfg.depth(3)
        self.top_down4 = C2f(c5 + c4, p4, d, False)
        self.top_down3 = C2f(p4 + c3, p3, d, False)
        self.top_down2 = C2f(p3 + c2, p2, d, False)
        self.down3 = ConvNormAct(p3, p3, 3, 2)
        self.bottom_up4 = C2f(p3 + p4, p4, d, False)
        self.down4 = ConvNormAct(p4, p4, 3, 2)
        self.bottom_up5 = C2f(p4 + c5, p5, d, False)

    def forward(self, features, with_p2):
        c2, c3, c4, c5 = features
        t4 = self.top_down4(torch.cat([upsample2x(c5), c4], 1))
        p3 = self.top_down3(torch.cat([upsample2x(t4), c3], 1))
        p2 = self.top_down2(torch.cat([upsample2x(p3), c2], 1)) if with_p2 else None
        p4 = self.bottom_up4(torch.cat([self.down3(p3), t4], 1))
        p5 = self.bottom_up5(torch.cat([self.down4(p4), c5], 1))
        return p2, p3, p4, p5


# ------------------------------------------------------------------ heads (det_head.rs, seg_head.rs)

class LevelHead(nn.Module):
    def __init__(self, c, cls_hidden, box_hidden, num_classes, prior_bias):
        super().__init__()
        self.cls1 = ConvNormAct(c, cls_hidden, 3)
        self.cls2 = ConvNormAct(cls_hidden, cls_hidden, 3)
        self.cls_out = nn.Conv2d(cls_hidden, num_classes, 1)
        self.box1 = ConvNormAct(c, box_hidden, 3)
        self.box2 = ConvNormAct(box_hidden, box_hidden, 3)
        self.box_out = nn.Conv2d(box_hidden, 4, 1)
        nn.init.constant_(self.cls_out.bias, prior_bias)


def flatten_cells(x):
    """[N, K, H, W] -> [N, H*W, K]."""
    return x.flatten(2).transpose(1, 2)


class DetHead(nn.Module):
    PRIOR_PROBABILITY = 0.01

    def __init__(self, cfg):
        super().__init__()
        p3, p4, p5 = (cfg.channels(b) for b in (256, 512, 1024))
        cls_hidden = max(p3, min(cfg.det_classes, 100))
        box_hidden = max(p3 // 2, 32)
        prior = -math.log((1 - self.PRIOR_PROBABILITY) / self.PRIOR_PROBABILITY)
        self.levels = nn.ModuleList(LevelHead(c, cls_hidden, box_hidden, cfg.det_classes, prior) for c in (p3, p4, p5))

    def forward(self, pyramid):
        cls, boxes = [], []
        for head, x in zip(self.levels, pyramid[1:]):
            cls.append(flatten_cells(head.cls_out(head.cls2(head.cls1(x)))))
            boxes.append(flatten_cells(head.box_out(head.box2(head.box1(x)))))
        return torch.cat(cls, 1), torch.cat(boxes, 1)


def bilinear_kernel(factor, channels):
    """The FCN construction: a fixed bilinear kernel for a depthwise transposed convolution."""
    kernel = 2 * factor - factor % 2
    center = factor - 1.0 if kernel % 2 == 1 else factor - 0.5
    r = 1.0 - (torch.arange(kernel, dtype=torch.float32) - center).abs() / factor
    return (r[:, None] * r[None, :]).expand(channels, 1, kernel, kernel).contiguous()


class SegHead(nn.Module):
    OUTPUT_STRIDE = 4

    def __init__(self, cfg):
        super().__init__()
        hidden = cfg.channels(256)
        inputs = [(cfg.channels(b), ups) for b, ups in ((128, 0), (256, 1), (512, 2), (1024, 3))]
        self.branches = nn.ModuleList(
            nn.ModuleList(ConvNormAct(c if i == 0 else hidden, hidden, 3) for i in range(max(ups, 1)))
            for c, ups in inputs
        )
        self.classifier = nn.Conv2d(hidden, cfg.seg_classes, 1)
        self.num_classes = cfg.seg_classes
        # Fixed, not a parameter (no gradient, not counted).
        self.register_buffer("upsample_weight", bilinear_kernel(self.OUTPUT_STRIDE, cfg.seg_classes), persistent=False)

    def forward(self, pyramid):
        fused = None
        for level, (branch, x) in enumerate(zip(self.branches, pyramid)):
            y = x
            for step in branch:
                y = step(y)
                if level > 0:
                    y = upsample2x(y)
            fused = y if fused is None else fused + y
        logits = self.classifier(fused)
        f = self.OUTPUT_STRIDE
        padding = (self.upsample_weight.shape[-1] - f) // 2
        return F.conv_transpose2d(logits, self.upsample_weight, stride=f, padding=padding, groups=self.num_classes)


class TwinNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = CspBackbone(cfg)
        self.neck = PanFpn(cfg)
        self.det_head = DetHead(cfg)
        self.seg_head = SegHead(cfg)

    def forward_det(self, images):
        return self.det_head(self.neck(self.backbone(images), with_p2=False))

    def forward_seg(self, images):
        return self.seg_head(self.neck(self.backbone(images), with_p2=True))


class Trainee(nn.Module):
    """The network plus the uncertainty-weighting `log σ²` per task (src/train/trainee.rs)."""

    def __init__(self, cfg):
        super().__init__()
        self.net = TwinNet(cfg)
        self.log_vars = nn.Parameter(torch.zeros(2))


def count(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------ anchors (src/model/anchors.rs)

def anchor_layout(size, strides, device):
    """Cell centres [A, 2] (levels in stride order, row-major) and each anchor's stride [A, 1]."""
    points, out_strides = [], []
    for s in strides:
        g = -(-size // s)
        ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32), indexing="ij")
        points.append(torch.stack([(xs.flatten() + 0.5) * s, (ys.flatten() + 0.5) * s], 1))
        out_strides.append(torch.full((g * g, 1), float(s)))
    return torch.cat(points).to(device), torch.cat(out_strides).to(device)


def decode_boxes(box_raw, points, strides):
    """[N, A, 4] raw l/t/r/b -> x0, y0, x1, y1 with distances softplus(raw) * stride."""
    d = F.softplus(box_raw) * strides
    centres = points.repeat(1, 2)  # cx, cy, cx, cy
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=box_raw.device)
    return centres + d * signs


# ------------------------------------------------------------------ losses (src/train/loss, assigner.rs)

IOU_EPS = 1e-7


def ciou(a, b):
    """CIoU of corresponding boxes [..., 4], YOLOv8's eps placements, alpha detached (loss/iou.rs)."""
    ax0, ay0, ax1, ay1 = a.unbind(-1)
    bx0, by0, bx1, by1 = b.unbind(-1)
    aw, ah = ax1 - ax0, ay1 - ay0 + IOU_EPS
    bw, bh = bx1 - bx0, by1 - by0 + IOU_EPS
    iw = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp_min(0)
    ih = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp_min(0)
    inter = iw * ih
    union = aw * ah + bw * bh - inter + IOU_EPS
    iou = inter / union
    cw = torch.maximum(ax1, bx1) - torch.minimum(ax0, bx0)
    ch = torch.maximum(ay1, by1) - torch.minimum(ay0, by0)
    diagonal2 = cw ** 2 + ch ** 2 + IOU_EPS
    centre2 = ((bx0 + bx1 - ax0 - ax1) ** 2 + (by0 + by1 - ay0 - ay1) ** 2) / 4
    v = (torch.atan(bw / bh) - torch.atan(aw / ah)) ** 2 * (4 / math.pi ** 2)
    alpha = (v / (v - iou + (1 + IOU_EPS))).detach()
    return iou - (centre2 / diagonal2 + v * alpha)


def plain_iou(a, b):
    """IoU without eps (the assigner's iou_f32), broadcasting [..., 4]."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_min(0)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]).clamp_min(0) * (r[..., 3] - r[..., 1]).clamp_min(0)
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-30), torch.zeros_like(inter))


@torch.no_grad()
def assign(scores, pred_boxes, points, gt_boxes, gt_labels, gt_valid, top_k=10, alpha=0.5, beta=6.0):
    """Task-aligned assignment of a batch (src/train/assigner.rs, vectorised).

    scores [N, A, C] probabilities, pred_boxes [N, A, 4], points [A, 2],
    gt_boxes [N, G, 4], gt_labels [N, G], gt_valid [N, G] (GTs padded per batch).
    Returns the foreground mask [N, A], each anchor's label [N, A], GT box
    [N, A, 4] and soft score [N, A] (meaningful where foreground).
    """
    n, a, _ = scores.shape
    g = gt_boxes.shape[1]
    gb = gt_boxes[:, :, None, :]  # [N, G, 1, 4]
    px, py = points[:, 0], points[:, 1]
    # 1. Candidates: anchor points strictly inside the GT box.
    inside = (px > gb[..., 0]) & (px < gb[..., 2]) & (py > gb[..., 1]) & (py < gb[..., 3]) & gt_valid[:, :, None]
    # 2. Alignment s^alpha * u^beta.
    ious = plain_iou(gb, pred_boxes[:, None, :, :])  # [N, G, A]
    s = scores.gather(2, gt_labels[:, None, :].expand(n, a, g)).transpose(1, 2)  # [N, G, A]
    align = s.pow(alpha) * ious.pow(beta)
    # 3. Top-k candidates per GT by alignment, ties to the lower anchor index
    #    (stable sort); non-candidates rank last and are masked out again.
    k = min(top_k, a)
    order = torch.where(inside, align, torch.full_like(align, -1.0)).sort(dim=2, descending=True, stable=True).indices
    selected = torch.zeros_like(inside).scatter_(2, order[..., :k], True) & inside
    # 4. An anchor kept by several GTs goes to the one it overlaps most (ties: lower GT index).
    fg = selected.any(1)  # [N, A]
    winner = torch.where(selected, ious, torch.full_like(ious, -1.0)).argmax(1)  # [N, A]
    mask = (torch.arange(g, device=scores.device)[None, :, None] == winner[:, None, :]) & fg[:, None, :]
    # 5. Soft score t * max_u / max_t over the GT's final positives.
    align_pos = align * mask
    max_align = align_pos.amax(2, keepdim=True)
    max_iou = (ious * mask).amax(2, keepdim=True)
    score = (align_pos * max_iou / (max_align + 1e-9)).amax(1)  # [N, A]
    labels = gt_labels.gather(1, winner)
    boxes = gt_boxes.gather(1, winner[..., None].expand(n, a, 4))
    return fg, labels, boxes, score


def det_loss(cls_logits, box_raw, points, strides, targets, cls_weight=0.5, box_weight=7.5):
    """src/train/loss/det.rs: BCE against soft scores + score-weighted (1 - CIoU), over max(sum of scores, 1)."""
    gt_boxes, gt_labels, gt_valid = targets
    pred_boxes = decode_boxes(box_raw, points, strides)
    fg, labels, boxes, score = assign(cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_boxes, gt_labels, gt_valid)
    score = score * fg
    target_scores = torch.zeros_like(cls_logits).scatter_(2, labels[..., None], score[..., None])
    norm = score.sum().clamp_min(1.0)
    cls = F.binary_cross_entropy_with_logits(cls_logits, target_scores, reduction="sum") / norm
    # An empty selection still yields a (zero) loss attached to the graph.
    overlap = ciou(pred_boxes[fg], boxes[fg])
    box = ((1 - overlap) * score[fg]).sum() / norm
    return cls_weight * cls + box_weight * box


def seg_loss(logits, masks):
    """src/train/loss/seg.rs, default config: cross-entropy over the scored pixels (0 if none)."""
    ce = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX, reduction="sum")
    return ce / (masks != IGNORE_INDEX).sum().clamp_min(1)


# ------------------------------------------------------------------ optimiser (optim.rs, schedule.rs, config.rs)

LR, WARMUP_STEPS, MIN_LR_FACTOR = 2e-3, 50, 0.05
WEIGHT_DECAY, GRAD_CLIP, BACKBONE_LR_FACTOR = 5e-4, 10.0, 1.0
F32_MIN_POSITIVE = 1.1754943508222875e-38


def learning_rate(step, total, lr=LR, warmup=WARMUP_STEPS, min_factor=MIN_LR_FACTOR):
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    floor = lr * min_factor
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def clip_per_tensor(params, max_norm):
    """burn's GradientClipping::Norm, applied to each gradient tensor on its own."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    coefs = torch._foreach_norm(grads)
    torch._foreach_add_(coefs, F32_MIN_POSITIVE)
    torch._foreach_reciprocal_(coefs)
    torch._foreach_mul_(coefs, max_norm)
    torch._foreach_clamp_max_(coefs, 1.0)
    torch._foreach_mul_(grads, coefs)


# ------------------------------------------------------------------ synthetic data

def make_batches(args, device, pool):
    """`pool` detection and segmentation batches, made once (fixed seed)."""
    gen = torch.Generator().manual_seed(0)
    size, n = args.image_size, args.batch
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def images():
        return ((torch.rand(n, 3, size, size, generator=gen) - mean) / std).to(device)

    det, seg = [], []
    for _ in range(pool):
        counts = torch.randint(1, 7, (n,), generator=gen)
        g = int(counts.max())
        wh = torch.rand(n, g, 2, generator=gen) * 0.6 * size + 0.1 * size
        x0y0 = torch.rand(n, g, 2, generator=gen) * (size - wh)
        boxes = torch.cat([x0y0, x0y0 + wh], -1)
        labels = torch.randint(0, args.det_classes, (n, g), generator=gen)
        valid = torch.arange(g)[None, :] < counts[:, None]
        det.append((images(), (boxes.to(device), labels.to(device), valid.to(device))))
        masks = torch.randint(0, args.seg_classes, (n, size, size), generator=gen)
        masks[torch.rand(n, size, size, generator=gen) < 0.1] = IGNORE_INDEX
        seg.append((images(), masks.to(device)))
    return det, seg


# ------------------------------------------------------------------ bench

def peak_memory_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=96, help="square input size (a multiple of 32)")
    p.add_argument("--batch", type=int, default=16, help="images per task batch")
    p.add_argument("--size", choices=["n", "s", "m"], default="n", help="model size preset")
    p.add_argument("--det-classes", type=int, default=QUICK_DET_CLASSES)
    p.add_argument("--seg-classes", type=int, default=QUICK_SEG_CLASSES)
    p.add_argument("--strategy", choices=["alternate", "joint"], default="alternate",
                   help="alternate (period 1): one task per step; joint: both batches, one backward")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--warmup", type=int, default=5, help="steps run before timing starts")
    p.add_argument("--steps", type=int, default=20, help="steps timed")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args()
    if args.image_size < 32 or args.image_size % 32:
        p.error("--image-size must be a multiple of 32 (the coarsest stride)")
    if args.steps < 1:
        p.error("--steps must be at least 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    cfg = ModelConfig(args.size, args.det_classes, args.seg_classes)
    trainee = Trainee(cfg).to(device).train()
    net = trainee.net
    params = {name: count(getattr(net, name)) for name in ("backbone", "neck", "det_head", "seg_head")}
    params["total"] = count(net)
    quick_shape = (args.size, args.det_classes, args.seg_classes) == ("n", QUICK_DET_CLASSES, QUICK_SEG_CLASSES)
    if quick_shape and params != QUICK_PARAMS:
        raise SystemExit(f"parameter counts {params} differ from Twinhead's {QUICK_PARAMS}")

    backbone_params = list(net.backbone.parameters())
    backbone_ids = {id(q) for q in backbone_params}
    rest_params = [q for q in trainee.parameters() if id(q) not in backbone_ids]
    all_params = backbone_params + rest_params
    # Two groups as Twinhead's two optimisers; parameters without a gradient
    # this step (the other head, p2's C2f, log_vars) are skipped, as burn does.
    optim = torch.optim.AdamW(
        [{"params": backbone_params, "lr_factor": BACKBONE_LR_FACTOR}, {"params": rest_params, "lr_factor": 1.0}],
        lr=LR, betas=(0.9, 0.999), eps=1e-5, weight_decay=WEIGHT_DECAY,
    )

    points, strides = anchor_layout(args.image_size, DET_STRIDES, device)
    pool = 2
    det_batches, seg_batches = make_batches(args, device, pool)
    total_steps = args.warmup + args.steps

    def step(i):
        lr = learning_rate(i, total_steps)
        for group in optim.param_groups:
            group["lr"] = lr * group["lr_factor"]
        tasks = ("det", "seg") if args.strategy == "joint" else (("det",) if i % 2 == 0 else ("seg",))
        loss = None
        for task in tasks:
            if task == "det":
                images, targets = det_batches[i % pool]
                cls_logits, box_raw = net.forward_det(images)
                part = det_loss(cls_logits, box_raw, points, strides, targets)
            else:
                images, masks = seg_batches[i % pool]
                part = seg_loss(net.forward_seg(images), masks)
            value = part.item()  # the trainer reads every loss back (finite check)
            if not math.isfinite(value):
                raise SystemExit(f"step {i}: the {task} loss became {value}")
            loss = part if loss is None else loss + part  # fixed weighting, weights 1
        optim.zero_grad(set_to_none=True)
        loss.backward()
        clip_per_tensor(all_params, GRAD_CLIP)
        optim.step()
        if cuda:
            torch.cuda.synchronize(device)
        return args.batch * len(tasks)

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    images = sum(step(i) for i in range(args.warmup, total_steps))
    elapsed = time.perf_counter() - start

    peak = peak_memory_mib()
    result = {
        "framework": "torch",
        "torch": torch.__version__,
        "device": str(device),
        "threads": args.threads,
        "image_size": args.image_size,
        "batch": args.batch,
        "model_size": args.size,
        "det_classes": args.det_classes,
        "seg_classes": args.seg_classes,
        "strategy": args.strategy,
        "params": params,
        "warmup": args.warmup,
        "steps": args.steps,
        "images_per_sec": images / max(elapsed, 1e-9),
        "step_time_ms": 1000 * elapsed / args.steps,
        "peak_memory_mib": peak,
    }
    if cuda:
        result["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    if args.json:
        print(json.dumps(result))
        return
    print(f"torch {torch.__version__} on {device} ({args.threads} threads): {args.image_size} px, batch {args.batch}, "
          f"model {args.size} ({args.det_classes} det / {args.seg_classes} seg classes), strategy {args.strategy}")
    print(f"params        backbone {params['backbone']:,}, neck {params['neck']:,}, det head {params['det_head']:,}, "
          f"seg head {params['seg_head']:,}, total {params['total']:,} (+ {trainee.log_vars.numel()} log_vars)")
    print(f"images/s      {result['images_per_sec']:.1f}")
    print(f"step time     {result['step_time_ms']:.1f} ms (mean of {args.steps} steps after {args.warmup} warm-up)")
    if peak is not None:
        print(f"peak memory   {peak:.0f} MiB (process resident set)")
    else:
        print("peak memory   unknown on this platform")
    if cuda:
        print(f"peak GPU mem  {result['peak_gpu_memory_mib']:.0f} MiB (torch.cuda.max_memory_allocated)")


if __name__ == "__main__":
    main()
