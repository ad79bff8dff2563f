#!/usr/bin/env python3
"""Reference checkpoints for `tests/yolov8_import.rs`, written by Ultralytics itself.

Builds a width-reduced YOLOv8 detector from Ultralytics' own `yolov8.yaml`
(scale n's depth 0.33, width 0.0625 instead of 0.25: channels 8, 8, 16, 32,
64, so the fixtures stay a few hundred KB) with 20 classes, randomises every
BatchNorm's affine parameters and statistics (a loader that ignored any of
the four tensors, or their eps of 1e-3, fails the comparison), and writes:

  tiny_yolov8.pt            the checkpoint as Ultralytics' trainer writes it
                            and `strip_optimizer` finalises it (the format of
                            the released yolov8n.pt: the pickled model object,
                            half precision, under `model`, `ema` None)
  tiny_yolov8_state.pt      torch.save of the fp32 state_dict of layers 0-21
                            (backbone and neck: the head is most of the file)
  tiny_yolov8.safetensors   the same state_dict as safetensors
  tiny_yolov8.json          eval-mode outputs of layers 4, 6, 9 (backbone,
                            strides 8, 16, 32) and 15, 18, 21 (neck) of the
                            model Ultralytics loads back from tiny_yolov8.pt,
                            for a fixed input the Rust test recomputes:
                            x.flatten()[i] = sin(0.731 * i)
  tiny_yolov8_seg.pt        the same backbone under a YOLOv8 segmentation
                            head (must be refused)
  tiny_yolo11.pt            a YOLO11 checkpoint of the same scale (must be refused)
  tiny_yolov8m.safetensors  scale m's depth 0.67 and channel cap 768 (applied
                            before the width, as YOLOv8m's 576 channels come
                            about) at the same width: the fp32 state_dict of
                            layers 0-21, for `model.max_channels`
  tiny_yolov8m.json         its layers 9 and 21 for the same kind of input,
                            shape (1, 3, 64, 64)

Nothing is downloaded: the models are built from the yaml files inside the
ultralytics package.

Usage: python3 tools/yolov8_reference.py [out_dir]   (default tests/fixtures/yolov8)
Needs: pip install torch ultralytics safetensors
"""

import copy
import json
import math
import sys
from datetime import datetime
from pathlib import Path

import torch
import ultralytics
from safetensors.torch import save_file
from ultralytics.nn.tasks import DetectionModel, SegmentationModel, load_checkpoint, yaml_model_load
from ultralytics.utils.torch_utils import strip_optimizer

INPUT_SHAPE = (2, 3, 64, 96)
LAYERS = [4, 6, 9, 15, 18, 21]
SCALE = [0.33, 0.0625, 1024]  # depth, width, max channels
SCALE_M = [0.67, 0.0625, 768]
INPUT_SHAPE_M = (1, 3, 64, 64)
LAYERS_M = [9, 21]
CLASSES = 20


def config(name, scale=SCALE):
    """An Ultralytics model yaml with the reduced scale `t` added and chosen."""
    cfg = copy.deepcopy(yaml_model_load(name))
    cfg["scales"]["t"] = scale
    cfg["scale"] = "t"
    return cfg


def randomise(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / module.weight[0].numel()) ** 0.5)
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))


def layer_outputs(model, shape, layers):
    """Eval-mode outputs of `layers` for x.flatten()[i] = sin(0.731 * i)."""
    count = math.prod(shape)
    x = torch.sin(0.731 * torch.arange(count, dtype=torch.float64)).float().reshape(shape)
    outputs = {}
    hooks = [
        model.model[i].register_forward_hook(lambda _m, _i, y, i=i: outputs.__setitem__(i, y.detach()))
        for i in layers
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return outputs


def write_reference(model, shape, layers, scale, path):
    """The outputs of `layers` as JSON, with what they were computed by."""
    outputs = layer_outputs(model, shape, layers)
    reference = {
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "input_shape": list(shape),
        "classes": CLASSES,
        "depth": scale[0],
        "width": scale[1],
        "max_channels": scale[2],
        "outputs": {
            f"model.{i}": {"shape": list(outputs[i].shape), "values": outputs[i].flatten().tolist()} for i in layers
        },
    }
    path.write_text(json.dumps(reference))


def save_like_the_trainer(model, path):
    """What `BaseTrainer.save_model` writes, then `strip_optimizer` as after training."""
    checkpoint = {
        "epoch": 0,
        "best_fitness": None,
        "model": None,
        "ema": copy.deepcopy(model).half(),
        "updates": 0,
        "optimizer": None,
        "train_args": {},
        "train_metrics": {},
        "train_results": {},
        "date": datetime.now().isoformat(),
        "version": ultralytics.__version__,
    }
    torch.save(checkpoint, path)
    strip_optimizer(path)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/yolov8")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = DetectionModel(config("yolov8.yaml"), ch=3, nc=CLASSES, verbose=False)
    randomise(model, 1)
    save_like_the_trainer(model, out / "tiny_yolov8.pt")

    # The reference is what Ultralytics computes from the file it wrote
    # (half-precision weights, computed in float32).
    loaded, _ = load_checkpoint(str(out / "tiny_yolov8.pt"), device="cpu", fuse=False)
    loaded = loaded.float().eval()
    # The state-dict variants hold the backbone and neck (layers 0-21) only:
    # the detection head, most of the file, is covered by the .pt.
    state = {k: v.contiguous() for k, v in loaded.state_dict().items() if int(k.split(".")[1]) <= 21}
    torch.save(state, out / "tiny_yolov8_state.pt")
    save_file(state, out / "tiny_yolov8.safetensors")

    write_reference(loaded, INPUT_SHAPE, LAYERS, SCALE, out / "tiny_yolov8.json")

    segmenter = SegmentationModel(config("yolov8-seg.yaml"), ch=3, nc=CLASSES, verbose=False)
    randomise(segmenter, 2)
    save_like_the_trainer(segmenter, out / "tiny_yolov8_seg.pt")
    yolo11 = DetectionModel(config("yolo11.yaml"), ch=3, nc=CLASSES, verbose=False)
    randomise(yolo11, 3)
    save_like_the_trainer(yolo11, out / "tiny_yolo11.pt")

    capped = DetectionModel(config("yolov8.yaml", SCALE_M), ch=3, nc=CLASSES, verbose=False)
    randomise(capped, 4)
    capped = capped.float().eval()
    state = {k: v.contiguous() for k, v in capped.state_dict().items() if int(k.split(".")[1]) <= 21}
    save_file(state, out / "tiny_yolov8m.safetensors")
    write_reference(capped, INPUT_SHAPE_M, LAYERS_M, SCALE_M, out / "tiny_yolov8m.json")

    for path in sorted(out.iterdir()):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
