#!/usr/bin/env python3
"""PyTorch baseline for `twinhead bench data`: the same work with a torch
`DataLoader(num_workers=N)`, PIL decoding and torchvision transforms.

Per image, as the Rust loader does in training mode:
  decode JPEG (PIL) -> random scale (log-uniform 0.5..1.5 of the letterbox
  scale, bilinear resize) and random placement/crop into a SIZE x SIZE canvas
  padded with grey 114 -> horizontal flip (p = 0.5) -> ColorJitter(0.4, 0.4, 0.4)
  -> ToTensor -> Normalize(ImageNet) ; boxes mapped, flipped, clipped, and
  dropped when thinner than 2 px or less than 25% visible.
Batches are collated (images stacked, boxes as lists), as the Rust batches are.

    pip install torch torchvision pillow
    python3 tools/bench_data_torch.py --voc ../shared/realdata/VOC2007 --threads 2 --size 512
    cargo run --release -- bench data --voc ../shared/realdata/VOC2007 --threads 2 --size 512

Prints images/s over --images images (default 512, cycling through every image
listed in any ImageSets/Main split), timed from creating the loader iterator to
receiving the last batch.
"""

import argparse
import math
import os
import random
import time
import xml.etree.ElementTree as ET

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def resolve_root(path):
    candidates = (path, os.path.join(path, "VOC2007"), os.path.join(path, "VOCdevkit", "VOC2007"), os.path.join(path, "voc"))
    for candidate in candidates:
        if os.path.isdir(os.path.join(candidate, "Annotations")):
            return candidate
    raise SystemExit(f"{path}: not a VOC dataset")


def read_records(root):
    main = os.path.join(root, "ImageSets", "Main")
    ids = set()
    for name in os.listdir(main):
        if name.endswith(".txt") and "_" not in name:
            with open(os.path.join(main, name)) as f:
                ids.update(line.split()[0] for line in f if line.strip())
    records = []
    for image_id in sorted(ids):
        tree = ET.parse(os.path.join(root, "Annotations", image_id + ".xml"))
        boxes, labels = [], []
        for obj in tree.findall("object"):
            b = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([xmin - 1, ymin - 1, xmax, ymax])
            labels.append(obj.find("name").text)
        records.append((os.path.join(root, "JPEGImages", image_id + ".jpg"), np.array(boxes, np.float32).reshape(-1, 4), labels))
    return records


class VocBench(Dataset):
    def __init__(self, records, size, images, seed):
        self.records, self.size, self.images, self.seed = records, size, images, seed
        self.jitter = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)

    def __len__(self):
        return self.images

    def __getitem__(self, i):
        path, boxes, labels = self.records[i % len(self.records)]
        rng = random.Random(self.seed * 1_000_003 + i)
        img = Image.open(path).convert("RGB")
        w, h = img.size
        size = self.size
        scale = size / max(w, h) * math.exp(rng.uniform(math.log(0.5), math.log(1.5)))
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        px, py = round((size - nw) * rng.random()), round((size - nh) * rng.random())
        canvas = Image.new("RGB", (size, size), (114, 114, 114))
        canvas.paste(img, (px, py))
        b = boxes * scale + np.array([px, py, px, py], np.float32)
        if rng.random() < 0.5:
            canvas = F.hflip(canvas)
            b = np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], axis=1)
        full = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        c = np.clip(b, 0, size)
        cw, ch = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
        keep = (cw >= 2) & (ch >= 2) & (cw * ch >= 0.25 * full)
        canvas = self.jitter(canvas)
        tensor = F.normalize(F.to_tensor(canvas), MEAN, STD)
        return tensor, torch.from_numpy(c[keep]), [l for l, k in zip(labels, keep) if k]


def collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch], [b[2] for b in batch]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc", default="../shared/realdata/VOC2007")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = read_records(resolve_root(args.voc))
    dataset = VocBench(records, args.size, args.images, args.seed)
    torch.manual_seed(args.seed)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.threads,
        collate_fn=collate,
    )
    start = time.perf_counter()
    done = 0
    checksum = 0.0
    for images, _boxes, _labels in loader:
        checksum += float(images[:, 0, 0, 0].sum())
        done += images.shape[0]
    seconds = time.perf_counter() - start
    print(
        f"torch DataLoader: {done} images ({len(records)} in the set, {args.voc}) at {args.size} px, "
        f"batch {args.batch_size}, {args.threads} worker(s): {seconds:.2f} s, {done / seconds:.1f} images/s "
        f"(torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, "
        f"Pillow {Image.__version__})"
    )


if __name__ == "__main__":
    main()
