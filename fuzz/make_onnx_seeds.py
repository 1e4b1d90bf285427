#!/usr/bin/env python3
"""Writes small ONNX seeds for the `onnx` fuzz target into fuzz/seeds/onnx/.

The fixtures of tests/fixtures/onnx/ are real networks (80-780 KB, mostly weights); libFuzzer
mutates small inputs far faster, so these seeds exercise every import path with a few hundred
weights each (4x8x8 inputs, 8 channels): grouped and depthwise convs with stride, padding and
dilation, batch norm, ReLU / ReLU6 (Clip) / Sigmoid / HardSigmoid / HardSwish, squeeze-excitation
(ReduceMean or GlobalAveragePool, Mul), residual Add, max / average pools, a channel shuffle
(Reshape, Transpose, Reshape), chunk / split / slice / index_select along channels, Concat,
Flatten, Gemm, MatMul + Add and Softmax; TorchScript exporter at opsets 13 and 17, the dynamo
exporter at opset 18 (shape sub-graphs, dynamic batch). Deterministic weights; the bytes may
differ between torch versions, which does not matter for seeds.

Needs torch and onnx (CI does not: the seeds are committed). From the repository root:

  python3 fuzz/make_onnx_seeds.py
"""

import os
import warnings

import onnx
import torch
from torch import nn

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "onnx")
SHAPE = (4, 8, 8)


def shuffle(x, g):
    n, c, h, w = x.shape
    return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class Shuffle(nn.Module):
    """ShuffleNetV2-like unit: chunk, depthwise on one half, concat, channel shuffle."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(4, 8, 3, 1, 1, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(4, 4, 3, 2, 1, groups=4)
        self.pw = nn.Conv2d(4, 4, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.mix = nn.Conv2d(8, 8, 1, groups=2)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        a, b = x.chunk(2, dim=1)
        y = torch.cat([self.pool(a), torch.relu(self.pw(self.dw(b)))], 1)
        return self.fc(torch.flatten(self.mix(shuffle(y, 2)), 1))


class Mobile(nn.Module):
    """MobileNetV3-like: hard swish, SE with hard sigmoid, ReLU6, residual add, average pools."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, 2, 1)
        self.dw = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=8)
        self.se1 = nn.Conv2d(8, 4, 1)
        self.se2 = nn.Conv2d(4, 8, 1)
        self.pw = nn.Conv2d(8, 8, 1, groups=4)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = nn.functional.hardswish(self.c1(x))
        y = self.dw(x)
        s = nn.functional.adaptive_avg_pool2d(y, 1)
        y = y * nn.functional.hardsigmoid(self.se2(torch.relu(self.se1(s))))
        y = torch.clamp(self.pw(y), 0, 6) + x
        y = nn.functional.avg_pool2d(y, 2, 2)
        return torch.softmax(self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)), -1)


class Gates(nn.Module):
    """Slices and index_select along channels, a sigmoid gate from ReduceMean, MatMul + Add."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 8, 1, bias=False)
        self.g = nn.Conv2d(8, 8, 1)
        self.register_buffer("perm", torch.tensor([3, 1, 0, 2, 7, 5, 6, 4]))
        self.w = nn.Parameter(torch.randn(6 * 8 * 8, 4) * 0.05)
        self.b = nn.Parameter(torch.randn(4) * 0.1)

    def forward(self, x):
        y = torch.index_select(torch.relu(self.c(x)), 1, self.perm)
        y = y * torch.sigmoid(self.g(y.mean((2, 3), keepdim=True)))
        y = torch.cat([y[:, 2:6], y[:, :2]], 1)
        return torch.flatten(y, 1) @ self.w + self.b


def export(model, name, opset, dynamo):
    path = os.path.join(OUT, f"{name}.onnx")
    x = torch.zeros(1, *SHAPE)
    if dynamo:
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=opset, input_names=["x"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
        onnx.save(onnx.load(path), path, save_as_external_data=False)
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))
    print(f"{name}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for cls in [Shuffle, Mobile, Gates]:
        m = cls().eval()
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.running_mean.data = torch.rand(b.num_features) * 0.2
                b.running_var.data = torch.rand(b.num_features) + 0.5
        base = cls.__name__.lower()
        export(m, f"{base}_op13", 13, False)
        export(m, f"{base}_op17", 17, False)
        export(m, f"{base}_dynamo", 18, True)


if __name__ == "__main__":
    main()
