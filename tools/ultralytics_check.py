#!/usr/bin/env python3
"""Ultralytics trains one epoch on a YOLO dataset Twinhead wrote.

Run from a folder other than the dataset's: Ultralytics resolves the splits of
data.yaml against the file's folder only when `path` is absent, so this fails
if the export ever writes `path: .` again. Checks that Ultralytics found every
image and every box of both splits, as synth.json and the label files count
them, and that the epoch ran. tools/ultralytics_check.sh sets it up.

Usage: python3 tools/ultralytics_check.py SYNTH_DIR   (the output of `twinhead data synth --det-format yolo`)
Needs: pip install ultralytics
"""

import json
import os
import sys
from pathlib import Path

from ultralytics import YOLO


def boxes_in(labels: Path) -> int:
    return sum(1 for f in labels.glob("*.txt") for line in f.read_text().splitlines() if line.strip())


def main() -> None:
    synth = Path(sys.argv[1]).resolve()
    summary = json.loads((synth / "synth.json").read_text())["summary"]
    yaml = synth / "yolo" / "data.yaml"
    assert Path.cwd() != yaml.parent, "run from another folder"
    model = YOLO("yolov8n.yaml")
    model.train(data=str(yaml), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False,
                project=str(Path.cwd() / "ultralytics"), name="check", exist_ok=True, verbose=False)
    trainer = model.trainer
    found = {
        "train": trainer.train_loader.dataset,
        "val": trainer.validator.dataloader.dataset if trainer.validator else None,
    }
    for split, expected in (("train", summary["det_train"]), ("val", summary["det_val"])):
        dataset = found[split]
        assert dataset is not None, f"{split}: Ultralytics built no dataset"
        boxes = sum(len(label["cls"]) for label in dataset.labels)
        ours = boxes_in(synth / "yolo" / "labels" / split)
        assert len(dataset.labels) == expected, f"{split}: Ultralytics found {len(dataset.labels)} images, Twinhead wrote {expected}"
        assert boxes == ours, f"{split}: Ultralytics read {boxes} boxes, Twinhead wrote {ours}"
        print(f"{split}: {expected} images, {ours} boxes, as written")
    assert trainer.epoch == 0 and (Path(trainer.save_dir) / "weights" / "last.pt").is_file(), "the epoch did not finish"
    print(f"Ultralytics trained one epoch on {yaml} from {os.getcwd()}")


if __name__ == "__main__":
    main()
