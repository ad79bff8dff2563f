#!/usr/bin/env python3
"""Writes a large COCO detection dataset for the reader's benchmark.

    python3 tools/coco_big.py OUT [--images 100000] [--boxes-per-image 8]

OUT/annotations/instances_train.json lists IMAGES images of 64x48 pixels with
BOXES_PER_IMAGE boxes each (80 categories with COCO's gappy ids 1..90, a
polygon `segmentation` per box as COCO has, 1 % crowd boxes); OUT/images/train/
holds a few real PNGs hard-linked under every file name, so the images exist
without filling the disk. Then time the reader with

    /usr/bin/time -v target/release/twinhead data check --voc OUT --json > /dev/null

Standard library only; deterministic.
"""
import argparse
import json
import os
import random
import struct
import zlib


def tiny_png(width, height):
    """A grey PNG, written without PIL."""
    raw = b"".join(b"\x00" + bytes([128]) * (width * 3) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes-per-image", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(0)
    width, height = 64, 48
    image_dir = os.path.join(args.out, "images", "train")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(args.out, "annotations"), exist_ok=True)
    links_per_source = 50_000  # file systems cap a file's links (ext4: 65,000)
    category_ids = sorted(rng.sample(range(1, 91), 80))
    images, annotations = [], []
    for i in range(args.images):
        name = f"{i:012d}.png"
        path = os.path.join(image_dir, name)
        source = os.path.join(args.out, f"source-{i // links_per_source}.png")
        if not os.path.exists(source):
            with open(source, "wb") as f:
                f.write(tiny_png(width, height))
        if not os.path.exists(path):
            os.link(source, path)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height, "license": 1})
        for _ in range(args.boxes_per_image):
            w, h = rng.uniform(2, 30), rng.uniform(2, 20)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            polygon = [round(v, 2) for v in (x, y, x + w, y, x + w, y + h, x, y + h)]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": rng.choice(category_ids),
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2),
                "segmentation": [polygon], "iscrowd": int(rng.random() < 0.01),
            })
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in category_ids]
    path = os.path.join(args.out, "annotations", "instances_train.json")
    with open(path, "w") as f:
        json.dump({"info": {"description": "tools/coco_big.py"}, "images": images, "annotations": annotations, "categories": categories}, f)
    print(f"{path}: {len(images)} images, {len(annotations)} boxes, {os.path.getsize(path) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
