#!/usr/bin/env python3
"""Reference checkpoints for `tests/it/resnet_import.rs`, written by real torch + torchvision.

Builds two width-reduced torchvision ResNets, using torchvision's own BasicBlock,
Bottleneck and `_make_layer`, so every state_dict key is a genuine torchvision name
(conv1.weight, layer2.0.downsample.1.running_var, fc.bias, ...):

  tiny_resnet18   BasicBlock  [2, 2, 2, 2]  (the resnet18 layout)
  tiny_bottleneck Bottleneck  [1, 1, 1, 1]  (resnet50's block, one per stage)

Both use stem width 4 instead of 64 (keeps fixtures a few hundred KB; the 45 MB
resnet18 .pth cannot be committed). BatchNorm statistics are calibrated on random
batches and the affine parameters randomised, so a frozen BN that ignored any of
the four tensors would fail the comparison. Each model is saved as
`<name>.pth` (torch.save of the state_dict), `<name>.safetensors` and `<name>.json`
holding the eval-mode c2..c5 feature maps (layer1..layer4) for a fixed input that
the Rust test recomputes: x.flatten()[i] = sin(0.731 * i).

Usage: python3 tools/resnet_reference.py [out_dir]   (default tests/fixtures/resnet)
Needs: pip install torch torchvision safetensors
"""

import json
import math
import sys
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

INPUT_SHAPE = (2, 3, 40, 48)  # odd feature sizes (10x12, 5x6, 3x3, 2x2) exercise padding


class TinyResNet(ResNet):
    """torchvision's ResNet with stem width `width` instead of the hard-coded 64.

    Mirrors ResNet.__init__ (torchvision 0.2x) line for line, only the widths change;
    the blocks and `_make_layer` are torchvision's.
    """

    def __init__(self, block, layers, width, num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # torchvision's width_per_group: Bottleneck inner width = planes
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": c5}


def fixed_input():
    n = math.prod(INPUT_SHAPE)
    values = [math.sin(0.731 * i) for i in range(n)]  # float64 sin, then cast: same as Rust
    return torch.tensor(values, dtype=torch.float32).reshape(INPUT_SHAPE)


def make_model(block, layers, width):
    model = TinyResNet(block, layers, width)
    # Non-trivial running stats: a cumulative average over a few random batches,
    # then random affine parameters on top.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(4, *INPUT_SHAPE[1:]))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.add_(torch.randn_like(m.running_mean) * 0.05)
    return model.eval()


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/resnet")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = fixed_input()
    variants = [
        ("tiny_resnet18", BasicBlock, [2, 2, 2, 2]),
        ("tiny_bottleneck", Bottleneck, [1, 1, 1, 1]),
    ]
    for name, block, layers in variants:
        width = 4
        model = make_model(block, layers, width)
        state = model.state_dict()
        torch.save(state, out / f"{name}.pth")
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / f"{name}.safetensors"))
        with torch.no_grad():
            feats = model.features(x)
        reference = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "block": block.__name__,
            "blocks": layers,
            "base_width": width,
            "input_shape": list(INPUT_SHAPE),
            "input": "x.flatten()[i] = sin(0.731 * i), computed in float64, stored as float32",
            "features": {
                k: {
                    "shape": list(v.shape),
                    "sum": float(v.double().sum()),
                    "values": [float(f) for f in v.flatten()],
                }
                for k, v in feats.items()
            },
        }
        (out / f"{name}.json").write_text(json.dumps(reference))
        print(f"{name}: {len(state)} tensors -> {out}")


if __name__ == "__main__":
    main()
